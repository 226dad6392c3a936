"""The finiteness scan for other compiled modules (cimport): see _finite.pyx."""


cdef int nonfinite(const void *buf, Py_ssize_t n, int itemsize) noexcept nogil
