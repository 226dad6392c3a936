# The process-wide team size for the other extension modules' parallel regions (src_c/threads.h):
# `from cnn_core._config cimport team_size`, then `prange(..., num_threads=team_size(work))`.
from libc.stddef cimport ptrdiff_t

# min(get_num_threads(), work), at least 1; 1 inside a parallel region or in a fork-serial child.
cdef int team_size(ptrdiff_t work) noexcept nogil
