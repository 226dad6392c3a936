# The process-wide settings the other extension modules' kernels read (src_c/threads.h, src_c/cpu.h):
# `from cnn_core._config cimport team_size`, then `prange(..., num_threads=team_size(work))`; the C
# kernels receive team_size and simd_level as function pointers at import.
from libc.stddef cimport ptrdiff_t

# min(get_num_threads(), work), at least 1; 1 inside a parallel region or in a fork-serial child.
cdef int team_size(ptrdiff_t work) noexcept nogil
# The instruction-set level in use (src_c/cpu.h's cnn_simd_level: 0 baseline, 1 avx2, 2 avx512).
cdef int simd_level() noexcept nogil
