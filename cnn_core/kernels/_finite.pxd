"""The per-element NaN/inf test of the finiteness scans (kernels/_augment.pyx for one array, kernels/_optim.pyx
for a step's gradients), header only."""
from libc.stdint cimport uint32_t, uint64_t


cdef inline int bad32(const uint32_t* b, Py_ssize_t n) noexcept nogil:
    """1 when one of the n float32 bit patterns at b is NaN or +-inf, else 0."""
    # NaN and +-inf are the floats whose exponent bits are all ones; an integer OR-reduction vectorizes
    cdef uint32_t bad = 0
    cdef Py_ssize_t i
    for i in range(n):
        bad |= (b[i] & 0x7f800000u) == 0x7f800000u
    return bad


cdef inline int bad64(const uint64_t* b, Py_ssize_t n) noexcept nogil:
    """1 when one of the n float64 bit patterns at b is NaN or +-inf, else 0."""
    cdef uint64_t bad = 0
    cdef Py_ssize_t i
    for i in range(n):
        bad |= (b[i] & 0x7ff0000000000000u) == 0x7ff0000000000000u
    return <int>bad
