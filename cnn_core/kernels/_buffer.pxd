"""Buffer-protocol helpers for the kernels that take arrays without NumPy's per-call cost (header only)."""
from cpython.buffer cimport Py_buffer


cdef inline int float_kind(const Py_buffer *v) noexcept:
    """4 for float32, 8 for float64 in native byte order, 0 for anything else (from v's struct format)."""
    cdef const char *f = v.format
    if f == NULL:
        return 0
    if (f[0] == b'=' or f[0] == b'@' or f[0] == b'<') and f[1] != 0:
        f += 1
    if f[1] != 0:
        return 0
    if f[0] == b'f' and v.itemsize == 4:
        return 4
    if f[0] == b'd' and v.itemsize == 8:
        return 8
    return 0


cdef inline bint is_int64(const Py_buffer *v) noexcept:
    """Whether v's struct format is a native 8-byte signed integer ('q', or 'l' where long has 8 bytes)."""
    cdef const char *f = v.format
    if f == NULL or v.itemsize != 8:
        return False
    if (f[0] == b'=' or f[0] == b'@' or f[0] == b'<') and f[1] != 0:
        f += 1
    return f[1] == 0 and (f[0] == b'q' or f[0] == b'l')


cdef inline Py_ssize_t row_size(const Py_buffer *v, Py_ssize_t n) noexcept nogil:
    """Elements per row (along the first axis) of v, an array of n elements; 1 for 0-D and 1-D arrays."""
    return n // v.shape[0] if v.ndim >= 2 and v.shape[0] > 0 else 1
