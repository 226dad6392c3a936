"""Short-row helpers (inline, header only): copy and fill, shared by the im2col and pooling loops; a row's first
maximum, shared by the cross-entropy pass (kernels/_loss.pyx) and fit's scoring (kernels/_augment.pyx)."""
from cython cimport floating
from libc.math cimport isfinite
from libc.string cimport memcpy, memset

# Rows here are short (often 10-30 elements; padding edges 1-3), where a memcpy/memset call per row
# dominates, and the compiler turns plain copy/fill loops back into such calls. So rows move in fixed
# 16-byte chunks (one SSE2 move each, SSE2 being baseline x86-64); the last chunk is aligned to the row's
# end and may rewrite a few elements, which is harmless since src and dst never overlap. Rows shorter
# than a chunk use straight-line stores.

cdef inline void copy_row(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t t = 0, chunk = 16 // sizeof(floating)
    if n >= chunk:
        while t + chunk < n:
            memcpy(dst + t, src + t, 16)
            t += chunk
        memcpy(dst + n - chunk, src + n - chunk, 16)
    else:
        if n > 0:
            dst[0] = src[0]
        if n > 1:
            dst[1] = src[1]
        if n > 2:
            dst[2] = src[2]


cdef inline void zero_row(floating* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t t = 0, chunk = 16 // sizeof(floating)
    if n >= chunk:
        while t + chunk < n:
            memset(dst + t, 0, 16)
            t += chunk
        memset(dst + n - chunk, 0, 16)
    else:
        if n > 0:
            dst[0] = 0
        if n > 1:
            dst[1] = 0
        if n > 2:
            dst[2] = 0


cdef inline Py_ssize_t first_max(const floating* row, Py_ssize_t n, bint finite_only) noexcept nogil:
    """The index of the first maximum of row[0:n] (n >= 1), as NumPy's argmax for a finite row. With
    finite_only, -1 as soon as a value is NaN or infinity: the caller's check, in the same pass (a constant
    at every call site, so the inlined loop has the test or not)."""
    cdef Py_ssize_t j, best = 0
    cdef floating v, m = row[0]
    for j in range(n):
        v = row[j]
        if finite_only and not isfinite(v):
            return -1
        if v > m:
            m = v
            best = j
    return best
