/* The problem sizes below which a kernel stays on one thread, in one place: the C GEMM reads them here,
 * the Cython modules through `cdef extern from "thresholds.h"`. Waking an OpenMP team costs a few
 * microseconds (far more on a loaded machine); each threshold is where a thread's share of the work
 * starts to outweigh that. */
#ifndef CNN_CORE_THRESHOLDS_H
#define CNN_CORE_THRESHOLDS_H

/* GEMM: multiply-adds per thread (about 20 us of single-core work); below that, thread start-up and the
 * the shared packing's barriers cost more than they save. */
#define CNN_GEMM_MIN_WORK_PER_THREAD (1 << 20)

/* GEMM on a team: multiply-adds up to which C is split statically into one panel per thread, each thread
 * packing its own operands (gemm_template.h's gemm_static), instead of sharing packed panels behind two
 * barriers per row group (gemm_parallel). Up to 2^25 on the Zen 4 machine where the shared panels were
 * first measured; on an Intel Xeon with AVX-512 (2 MiB L2 per core, 2 vCPUs) the shared panels, each
 * packed by one thread and read by both, ran at about one thread's speed where the static split ran at
 * two (2 threads, forced partitions alternated in one process, 3 runs, ms, shared / static / numpy.matmul):
 * float32 (64x288)@(288x50176) 15.5-16.1 / 8.0-8.6 / 10.3-11.3, (128x576)@(576x3136) 3.7-4.0 / 1.7 /
 * 1.9, 1024^3 8.1-14.1 / 6.8-7.0 / 7.1-7.3, 2048^3 65-68 / 59-61 / 59-60; float64 the same rows 33.8-35.1
 * / 19.0-19.3 / 19.7-20.5, 5.1-9.2 / 3.5-4.1 / 3.6-3.8, 19.7-20.1 / 16.5-17.8 / 16.2-17.4, 155-158 /
 * 139-144 / 131-138. So the static split up to 2048^3; the shared panels above, where every thread
 * packing all of the other operand (32 MiB of float64 at 2048) would double its memory traffic. */
#define CNN_GEMM_STATIC_MAX_WORK (1LL << 33)

/* GEMM: multiply-adds up to which a product is small: the unpacked path's and the static split's products
 * of at most this size run on one thread after a team whose threads all started on one CPU (below). */
#define CNN_GEMM_SMALL_MAX_WORK (1 << 25)

/* GEMM: small products run on one thread after a team whose threads all started on one CPU (other
 * processes held the rest): that many, then a team is tried again (gemm.c, "teams that share one core").
 * An MLP step makes 3-5 such products. */
#define CNN_GEMM_SHARED_CORE_BACKOFF 64

/* The small-job pool (threads.c): how long an idle worker spins for the next job, in microseconds, while
 * the process is alone on its cores (then it sleeps on a futex). An MLP 784-100-10 step at batch 64 issues
 * its two team products ~100-300 us apart on a quiet 2-core machine; a longer window only burns CPU. */
#define CNN_POOL_SPIN_US 400
/* How often (nanoseconds) the pool re-reads whether the process is alone on its cores (the running-task
 * count of /proc/loadavg against the cores it may use): a read costs a few microseconds. */
#define CNN_POOL_BUSY_CHECK_NS 2000000
/* Busy looks in a row after which the process counts as not alone (then kernels start no team, the team
 * members' masks are given back whole and idle workers sleep at once): one look alone is no evidence. On the quiet 2-vCPU machine (load 0.5-0.75),
 * looks every 2 ms with two tasks running saw a third for 96-135 of ~4500 looks in 10 s, 60-80 of them
 * single looks and 13-15 runs of two or more; a single such look had un-steered the masks and sent 5 of 18
 * small-product rows of bench_gemm.py's 2-thread sweep into the back-off (3 interleaved runs; 2 of 18 when
 * two busy looks in a row were needed). */
#define CNN_POOL_BUSY_LOOKS 2
/* An idle spin that saw a gap this long (nanoseconds) between two looks at the clock was preempted: some
 * other thread wanted its core, so the worker sleeps, as on a busy machine. */
#define CNN_POOL_PREEMPTED_NS 50000

/* Elementwise activations: they run at ~1 ns per element or less, so arrays below 2^20 elements (an MLP
 * batch) stay serial; above, threads take chunks of CNN_ACT_CHUNK elements. */
#define CNN_ACT_MIN_PARALLEL (1 << 20)
#define CNN_ACT_CHUNK 32768

/* SGD's step: parameter elements per thread (on the small-job pool, whose workers spin between a step's
 * kernels; an OpenMP team's wake-up had made a split step slower than a serial one). Each thread updates the
 * part of the weights it last read or wrote (the Linear layers' row shares), instead of one core pulling the
 * other's lines: MLP 784-100-10's first weight (78,400) runs on 2, its epoch through fit 0.23-0.25 s against
 * 0.25-0.29 s serial (bench_train --no-torch, 2 alternating runs of 3 epochs, 2-vCPU Xeon). LeNet-5's fc1
 * and fc2 weights (48,000 and 10,080), whose gradients the GEMM writes on row shares, run on 2 from 2^12: its
 * whole step in fit (10 parameters, one compiled call) 91-92 us at 2^15 (both serial), 70-73 at 2^11, 66-67 at
 * 2^12, 67-70 at 2^13 (line timing, 20,000 samples, 2 runs each). The finiteness scan (cnn_core/_finite.pyx)
 * splits every array it screens at this size too, in the step's shares, so fit's gradient scan reads what
 * each thread wrote (check_finite, 2 threads, us, 2^15 / 2^12: (64, 784) 1.9 / 2.1, (64, 6, 12, 12) 3.2 /
 * 2.7, (64, 16, 4, 4) 1.2 / 1.5, (64, 120) 0.6 / 0.6). */
#define CNN_OPTIM_MIN_PER_THREAD (1 << 12)

/* Winograd's weight transform (_conv.wino_weights: once a forward and once an input gradient, serial until
 * the eighteenth session): filter-channel pairs per thread, on the small-job pool. Measured (2-vCPU Xeon, model
 * 0xCF, 600 alternating calls, medians, one / two threads, us, F(2x2) then F(4x4)): float32 16 x 16 pairs
 * 5.7 / 6.4 and 11.5 / 8.5, 32 x 16 10.4 / 8.1 and 21.2 / 15.5, 32 x 32 17.6 / 12.3 and 35.2 / 22.7, 64 x 32
 * 35.2 / 19.5 and 63.7 / 36.1, 128 x 64 156 / 86 and 305 / 163; float64 16 x 16 8.5 / 7.2 and 16.0 / 11.6,
 * 128 x 64 156 / 82 and 433 / 212. A Conv2d step of 64 -> 128 channels at 7x7 makes two F(4x4) transforms. */
#define CNN_WINO_WEIGHT_MIN_PAIRS 256

/* Its adjoint, the weight gradient's last step (wino_dw3x3: gw += G^T du G per pair, once a backward):
 * pairs per thread. One thread (best of 300 calls, 2-vCPU Xeon model 0xCF, us, F(2x2) / F(4x4)): 32 x 32
 * pairs 7.1 / 10.1, 64 x 32 13.9 / 20.7, 128 x 64 61.6 / 98.4, about a third of the weight transform's cost
 * a pair; handing half to the pool's worker costs ~3.5 us (the weight transform's 16 x 16 pairs: 5.7 us on
 * one thread, 6.4 on two). */
#define CNN_WINO_FINISH_MIN_PAIRS 1024

/* A Linear layer's forward in training: the largest output z (batch x out_features elements) computed as
 * z.T = w @ x.T on the weight's row shares (threads.h's cnn_row_share) and transposed back in one serial
 * pass; larger ones take the plain z = x @ w.T. The row shares spare the optimizer's step the lines of w the
 * other core has read, but every thread packs all of x and the transposing pass grows with z. Forward + SGD
 * step on 2 threads, float32, us, plain / row shares (2-vCPU Xeon VM, AVX-512): 784 -> 100 at batch 64
 * 107 / 53, 256: 251 / 158, 1024: 628 / 722; 512 -> 128 at 128 (16,384 outputs) 88 / 78, 256: 203 / 139;
 * 256 -> 256 at 64 (16,384) 42 / 45, 256: 122 / 133; 128 -> 512 at 64 (32,768) 51 / 57, 256: 130 / 188. */
#define CNN_DENSE_ROW_SHARES_MAX_OUTPUTS (1 << 14)

/* Pooling: input elements per thread. A 2x2 max pooling reads ~0.3 ns per element on one core (AMD EPYC,
 * AVX2), so 2^17 elements are ~40 us of work: below that a thread's share costs less than waking it
 * (a few us on a quiet machine; a scheduler time slice on a busy one, where the team's other thread has
 * to wait for a core). LeNet-5 at batch 64: the first pooling (301,056 elements) runs on 2 threads, the
 * second (102,400) on 1. */
#define CNN_POOL_MIN_PER_THREAD (1 << 17)

/* im2col / col2im: column-matrix elements per thread (row copies, well under 1 ns an element). A LeNet-5
 * image alone (batch 1: 19,600 and 15,000 elements) stays on one thread, where waking a team had cost more
 * than the copy itself; batch 64 (1.25M and 0.96M) runs on 2. */
#define CNN_IM2COL_MIN_PER_THREAD (1 << 17)

/* Inference plan (plan.c): multiply-adds of a chunk per thread from which a plan that runs one chunk at a
 * time runs it on a team (one parallel region per call, every op split among the threads, a barrier
 * between ops) instead of on one thread. */
#define CNN_PLAN_TEAM_MIN_WORK (1 << 20)

/* Inference plan: a 3x3 stride-1 one-group convolution runs as Winograd F(2x2, 3x3) (plan_template.h's
 * wconv) instead of the direct kernels from CNN_PLAN_WINO_MIN_CHANNELS input channels and
 * CNN_PLAN_WINO_MIN_FILTERS filters on, when one image's products are at least CNN_PLAN_WINO_MIN_GAIN (per
 * mille) times fewer: 9*OH*OW direct against 16 per tile, the tiles rounded up to half vectors (plan.py).
 * Measured (one image, float32, avx512, one thread, CPU time of the plan alone, direct -> Winograd, us):
 * C->F@OHxOW 32->64@14 71 -> 59, 64->64@14 134 -> 102, 64->128@7 69 -> 61, 128->128@7 133 -> 110,
 * 32->64@7 23.3 -> 22.2, 64->64@28 530 -> 339, 128->128@14 518 -> 340 (all taken); 16->64@14 39 -> 36,
 * 16->32@28 77 -> 65 (small gains left out), 32->32@14 37 -> 37, 24->32@14 30 -> 32, 16->32@14 21 -> 22,
 * 32->16@14 20 -> 26, 32->32@7 11 -> 15, 64->32@7 22 -> 39, 16->16@14 12 -> 15, 1->32@28 18 -> 22 (the
 * transforms cost more than the products saved: the input transform's ~0.3 us per 7x7 plane is spent per
 * channel, the products saved scale with channels x filters); 64->64@9 57 -> 62 and 64->64@5 20 -> 33
 * (25 tiles rounded to 32 and 9 to 16: 1.42x and 0.88x fewer products). small_cnn's one image 450 -> 370. */
#define CNN_PLAN_WINO_MIN_CHANNELS 32
#define CNN_PLAN_WINO_MIN_FILTERS 64
#define CNN_PLAN_WINO_MIN_GAIN 1600

#endif
