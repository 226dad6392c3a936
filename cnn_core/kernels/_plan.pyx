# distutils: sources = src_c/plan.c src_c/winograd.c src_c/gemm.c src_c/gemm_nt.c src_c/gemm_avx512.c src_c/activations.c
# distutils: depends = src_c/plan.h src_c/plan_template.h src_c/winograd.h src_c/winograd_template.h src_c/gemm.h src_c/gemm_cntx.h src_c/gemm_template.h src_c/activations.h src_c/avx2.h src_c/avx512.h src_c/cpu.h src_c/threads.h src_c/thresholds.h
"""Cython binding of the plan interpreter in src_c/plan.c: an op array built once (Program), run over a
batch with the GIL released (cnn_core/plan.py builds the ops and validates every call)."""
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
import numpy as np

from cnn_core._config cimport cnn_team_count, simd_level, team_barrier, team_size, team_start


cdef extern from "plan.h" nogil:
    ctypedef int (*cnn_team_size_fn)(ptrdiff_t work) noexcept nogil
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    ctypedef void (*cnn_team_start_fn)(int t) noexcept nogil
    enum: CNN_PLAN_NPARAM
    ctypedef struct cnn_plan_op:
        int kind, act
        double alpha
        ptrdiff_t src, src2, dst, tmp, tmp2
        ptrdiff_t p[CNN_PLAN_NPARAM]
        const void *w
        const void *b
        const void *w2
        const void *b2
        const ptrdiff_t *tab
    void cnn_plan_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
    void cnn_plan_set_team_start(cnn_team_start_fn team_start)
    int cnn_plan_run_f32(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,
                         ptrdiff_t x_row, float *y, ptrdiff_t y_row, float *arena, ptrdiff_t arena_row,
                         int max_threads, int team_threads, double work_per_sample)
    int cnn_plan_run_f64(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,
                         ptrdiff_t x_row, double *y, ptrdiff_t y_row, double *arena, ptrdiff_t arena_row,
                         int max_threads, int team_threads, double work_per_sample)
    int cnn_plan_threads(ptrdiff_t n, ptrdiff_t chunk, int max_threads, double work_per_sample)
    int cnn_plan_chunk_team(const cnn_plan_op *ops, int nops, ptrdiff_t m, double work_per_sample, int max_threads)
    ptrdiff_t cnn_plan_linear_block(int dtype)

cdef extern from "gemm.h" nogil:
    int cnn_gemm_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
    void cnn_gemm_set_team_start(cnn_team_start_fn team_start)
    ctypedef void (*cnn_team_barrier_fn)(cnn_team_count *c, int target) noexcept nogil
    void cnn_gemm_set_barrier(cnn_team_barrier_fn barrier)

cdef extern from "activations.h" nogil:
    void cnn_act_init(cnn_simd_level_fn simd_level)

cdef extern from "thresholds.h":
    enum: CNN_PLAN_WINO_MIN_CHANNELS
    enum: CNN_PLAN_WINO_MIN_FILTERS
    enum: CNN_PLAN_WINO_MIN_GAIN

cdef extern from "winograd.h" nogil:
    void cnn_wino_init(cnn_simd_level_fn simd_level)


# This module carries its own copies of the GEMM, the activation loops and the Winograd transforms (one
# extension, one C call per forward pass): they read the process-wide thread count and SIMD level of
# cnn_core._config, as the _gemm, _activations and _conv modules' copies do.
if cnn_gemm_init(team_size, simd_level) != 0:
    raise ImportError("cnn_core.kernels._plan: could not create the thread-local key of the packing buffers")
cnn_act_init(simd_level)
cnn_wino_init(simd_level)
cnn_plan_init(team_size, simd_level)
cnn_plan_set_team_start(team_start)
cnn_gemm_set_team_start(team_start)
cnn_gemm_set_barrier(team_barrier)

NPARAM = CNN_PLAN_NPARAM
# when the plan runs a convolution as Winograd (thresholds.h): the fewest input channels and filters, and
# the fewest times fewer products (per mille)
WINO_MIN_CHANNELS = CNN_PLAN_WINO_MIN_CHANNELS
WINO_MIN_FILTERS = CNN_PLAN_WINO_MIN_FILTERS
WINO_MIN_GAIN = CNN_PLAN_WINO_MIN_GAIN
IN = -1
OUT = -2


def linear_block(bint double) -> int:
    """Columns a Linear op's transposed weights are padded to (a multiple of): the small-batch kernel's
    widest row block."""
    return cnn_plan_linear_block(double)


def threads(Py_ssize_t n, Py_ssize_t chunk, int max_threads, double work_per_sample) -> int:
    """Threads a run over n samples in chunks of `chunk` would use (at most max_threads)."""
    return cnn_plan_threads(n, chunk, max_threads, work_per_sample)


def same_bytes(list arrays, list saved) -> bool:
    """Whether arrays[i] holds the same bytes as saved[i] for every i (C-contiguous arrays; a NaN equals
    itself): predict's check that a cached plan's model still has the weights it was compiled from."""
    cdef Py_buffer ba, bs
    cdef int same
    cdef Py_ssize_t i
    if len(arrays) != len(saved):
        return False
    for i in range(len(arrays)):
        try:
            PyObject_GetBuffer(arrays[i], &ba, PyBUF_SIMPLE)
        except BufferError:                   # not contiguous: not provably the same
            return False
        try:
            PyObject_GetBuffer(saved[i], &bs, PyBUF_SIMPLE)
            try:
                same = ba.len == bs.len and memcmp(ba.buf, bs.buf, ba.len) == 0
            finally:
                PyBuffer_Release(&bs)
        finally:
            PyBuffer_Release(&ba)
        if not same:
            return False
    return True


cdef const void *_data(object a):
    if a is None:
        return NULL
    return <const void *><size_t>a.ctypes.data


cdef class Program:
    """The op array of one network and dtype. `ops` is a list of tuples (kind, act, alpha, src, src2, dst,
    tmp, tmp2, params, w, b, w2, b2, tab): w, b, w2, b2 C-contiguous arrays of the dtype or None, tab an intp
    array or None.
    The arrays are kept alive here; they are never written."""
    cdef cnn_plan_op *ops
    cdef int nops
    cdef list keep
    cdef readonly object dtype
    cdef readonly double work_per_sample

    def __cinit__(self, list ops, dtype, double work_per_sample):
        self.dtype = np.dtype(dtype)
        self.work_per_sample = work_per_sample
        self.nops = len(ops)
        self.keep = []
        self.ops = <cnn_plan_op *>calloc(max(1, self.nops), sizeof(cnn_plan_op))
        if self.ops == NULL:
            raise MemoryError()
        cdef int i, j
        for i, spec in enumerate(ops):
            kind, act, alpha, src, src2, dst, tmp, tmp2, params, w, b, w2, b2, tab = spec
            if len(params) > CNN_PLAN_NPARAM:
                raise ValueError(f"ops[{i}]: expected at most {CNN_PLAN_NPARAM} parameters, got {len(params)}")
            for a, dt in ((w, self.dtype), (b, self.dtype), (w2, self.dtype), (b2, self.dtype),
                          (tab, np.dtype(np.intp))):
                if a is not None and (a.dtype != dt or not a.flags.c_contiguous):
                    raise ValueError(f"ops[{i}]: expected C-contiguous {dt} arrays")
            self.ops[i].kind = kind
            self.ops[i].act = act
            self.ops[i].alpha = alpha
            self.ops[i].src = src
            self.ops[i].src2 = src2
            self.ops[i].dst = dst
            self.ops[i].tmp = tmp
            self.ops[i].tmp2 = tmp2
            for j in range(len(params)):
                self.ops[i].p[j] = params[j]
            self.ops[i].w = _data(w)
            self.ops[i].b = _data(b)
            self.ops[i].w2 = _data(w2)
            self.ops[i].b2 = _data(b2)
            self.ops[i].tab = <const ptrdiff_t *>_data(tab)
            self.keep += [w, b, w2, b2, tab]

    def __dealloc__(self):
        free(self.ops)

    def team(self, Py_ssize_t m, int max_threads) -> int:
        """Threads that would run a chunk of m samples together (every op split among them; 1: none) when
        the batch runs one chunk at a time on at most max_threads threads."""
        return cnn_plan_chunk_team(self.ops, self.nops, m, self.work_per_sample, max_threads)

    def run(self, x, y, arena, Py_ssize_t chunk, int max_threads, int team_threads=0):
        """y[:n] = the network on x[:n] (n = len(x)), in chunks of `chunk` samples, on at most max_threads
        threads: chunks on parallel threads use the arena's rows as their scratch (at most len(arena) of
        them); when the chunks run one at a time, a team of at most team_threads (0: max_threads) may run
        each chunk together, on the first row, or take single ops (1: one thread). Arguments are trusted
        (cnn_core/plan.py checks them): C-contiguous arrays, x of the dtype (or of intp indices in range, for
        a plan that starts with an embedding), y and arena of the dtype, writable and not overlapping x."""
        cdef Py_ssize_t n = x.shape[0]
        cdef Py_ssize_t x_row = x.nbytes // n if n else 0, y_row = y.size // n if n else 0
        cdef Py_ssize_t a_row = arena.shape[1]
        cdef int nt = min(max_threads, arena.shape[0])
        cdef int err
        cdef double work = self.work_per_sample
        cdef Py_buffer bx, by, ba
        if n == 0:
            return
        if team_threads <= 0:
            team_threads = max_threads
        # the buffer protocol: the data pointers for a fraction of what ndarray.ctypes costs
        PyObject_GetBuffer(x, &bx, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(y, &by, PyBUF_SIMPLE | PyBUF_WRITABLE)
            try:
                PyObject_GetBuffer(arena, &ba, PyBUF_SIMPLE | PyBUF_WRITABLE)
                try:
                    if self.dtype.itemsize == 4:
                        with nogil:
                            err = cnn_plan_run_f32(self.ops, self.nops, n, chunk, <const void *>bx.buf, x_row,
                                                   <float *>by.buf, y_row, <float *>ba.buf, a_row, nt,
                                                   team_threads, work)
                    else:
                        with nogil:
                            err = cnn_plan_run_f64(self.ops, self.nops, n, chunk, <const void *>bx.buf,
                                                   x_row, <double *>by.buf, y_row, <double *>ba.buf, a_row, nt,
                                                   team_threads, work)
                finally:
                    PyBuffer_Release(&ba)
            finally:
                PyBuffer_Release(&by)
        finally:
            PyBuffer_Release(&bx)
        if err != 0:
            raise MemoryError("plan: the GEMM could not allocate its packing buffers")
