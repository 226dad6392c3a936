"""Short-row copy and fill helpers shared by the im2col and pooling loops (inline, header only)."""
from cython cimport floating
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
