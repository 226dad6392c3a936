/* The problem sizes below which a kernel stays on one thread, in one place: the C GEMM reads them here,
 * the Cython modules through `cdef extern from "thresholds.h"`. Waking an OpenMP team costs a few
 * microseconds (far more on a loaded machine); each threshold is where a thread's share of the work
 * starts to outweigh that. */
#ifndef CNN_CORE_THRESHOLDS_H
#define CNN_CORE_THRESHOLDS_H

/* GEMM: multiply-adds per thread (about 20 us of single-core work); below that, thread start-up and the
 * duplicated packing cost more than they save. */
#define CNN_GEMM_MIN_WORK_PER_THREAD (1 << 20)

/* Elementwise activations: they run at ~1 ns per element or less, so arrays below 2^20 elements (an MLP
 * batch) stay serial; above, threads take chunks of CNN_ACT_CHUNK elements. */
#define CNN_ACT_MIN_PARALLEL (1 << 20)
#define CNN_ACT_CHUNK 32768

#endif
