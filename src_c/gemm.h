/* Dense matrix multiply: C = alpha * op(A) @ op(B) + beta * C, row-major, float and double.
 *
 * op(A) is M x K, op(B) is K x N, C is M x N with row stride ldc (elements).
 * The strided entry points read element (i, p) of op(A) at a[i*rsa + p*csa] and element (p, j) of op(B)
 * at b[p*rsb + j*csb], so transposed or sliced views need no copy (strides may be zero or negative).
 * When beta == 0, C is only written (NaN garbage in it does not leak); when alpha == 0 or K == 0, A and B
 * are not read. Every entry point returns 0, or -1 when the packing buffers cannot be allocated.
 */
#ifndef CNN_CORE_GEMM_H
#define CNN_CORE_GEMM_H

#include <stddef.h>

#include "cpu.h"
#include "threads.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Once, before any other call (the _gemm module does it at import): team_size is where a parallel GEMM
 * gets its team size and simd_level where it reads the instruction-set level whose kernels it runs
 * (cnn_core._config's process-wide count and level; until then the GEMM runs serially on portable C),
 * and the thread-exit destructor that frees each thread's packing buffers is registered. Returns 0, or -1
 * when the thread-local key cannot be created. */
int cnn_gemm_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level);
/* The small products' (static partition, unpacked path) team: threads.h's pool (the _gemm module installs
 * cnn_core._config's at import); without one they run on OpenMP teams. */
void cnn_gemm_set_pool(cnn_pool_run_fn pool);
/* threads.h's cnn_threads_team_start, called by every thread of the GEMM's OpenMP teams as its share
 * starts; NULL (the default): nothing is called. */
void cnn_gemm_set_team_start(cnn_team_start_fn team_start);
/* threads.h's cnn_team_barrier, for the barriers of the GEMM's shared-panel OpenMP team; NULL (the
 * default): OpenMP's barrier. */
void cnn_gemm_set_barrier(cnn_team_barrier_fn barrier);

int cnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
              float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
              float beta, float *c, ptrdiff_t ldc);
int cnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
              double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
              double beta, double *c, ptrdiff_t ldc);

/* The same product with C's rows split between the team's threads by threads.h's cnn_row_share: for a
 * product whose rows are a parameter's rows (a Linear layer's w @ x^T and delta^T @ x), so each thread
 * reads or writes the rows the optimizer's step gives it. The same result as cnn_sgemm, bit for bit. */
int cnn_sgemm_row_shares(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                         float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                         float beta, float *c, ptrdiff_t ldc);
int cnn_dgemm_row_shares(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                         double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                         double beta, double *c, ptrdiff_t ldc);

int cnn_sgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb,
                      float beta, float *c, ptrdiff_t ldc);
int cnn_dgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                      const double *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const double *b, ptrdiff_t rsb, ptrdiff_t csb,
                      double beta, double *c, ptrdiff_t ldc);

/* A batch of products sharing A: C_s = alpha * op(A) @ B_s + beta * C_s for s < batch, op(A) M x K (A
 * row-major with row stride lda, transposed when trans_a), B_s = b + s*sb (K x W, rows ldb apart, columns
 * contiguous), C_s = c + s*sc (M x W, rows ldc apart, columns contiguous): one product over the batch's
 * W * batch columns side by side, A packed once per block, the micro-tiles running across the batch (a 1x1
 * convolution's samples, W positions each, straight from and into NCHW arrays). On the calling thread
 * only. Returns 0 or -1. */
int cnn_sgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, float alpha,
                    const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta,
                    float *c, ptrdiff_t ldc, ptrdiff_t sc);
int cnn_dgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, double alpha,
                    const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta,
                    double *c, ptrdiff_t ldc, ptrdiff_t sc);

/* C += A @ B^T for A (M x K, row stride lda) and B (N x K, row stride ldb), K contiguous in both
 * (src_c/gemm_nt.c: the level's unpacked dot-product kernel where it has one, else the packed GEMM).
 * Returns 0 or -1. */
int cnn_sgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);
int cnn_dgemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                     const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc);

/* C = beta * C + sum_s A_s @ B_s^T over s < batch, A_s = a + s*sa (M x K, rows lda apart) and B_s = b + s*sb
 * (N x K, rows ldb apart), K contiguous in both: one packed product of depth K * batch, the batch's depth runs
 * end to end (a 1x1 convolution's weight gradient over a chunk of samples, from NCHW arrays). With beta == 0,
 * C is only written. On the calling thread only. Returns 0 or -1. */
int cnn_sgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const float *a, ptrdiff_t lda,
                       ptrdiff_t sa, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta, float *c, ptrdiff_t ldc);
int cnn_dgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const double *a, ptrdiff_t lda,
                       ptrdiff_t sa, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta, double *c,
                       ptrdiff_t ldc);

/* Small problems skip packing (levels with an unpacked kernel, B rows contiguous): -1 decides by shape
 * (default), 0 never, 1 always where possible. For tests and benchmarks; not thread-safe against
 * concurrent gemm calls. */
void cnn_gemm_set_unpacked(int mode);

/* The parallel packed driver: -1 decides by problem size (default), 0 always shares the packed panels
 * among the team, 1 always partitions C statically into one panel per thread. For tests and benchmarks;
 * not thread-safe against concurrent gemm calls. */
void cnn_gemm_set_partition(int mode);
/* The small products left to run on one thread after a team whose threads all started on one CPU
 * (gemm.c, "teams that share one core"), and its reset to 0. */
int cnn_gemm_backoff_left(void);
void cnn_gemm_reset_backoff(void);

/* The blocking of the level in use for float (dtype 0) or double (1): mr, nr, mc, kc, nc (capped at depth kc by
 * the L2 size) in out[0..4], the L2 size in bytes the cap uses (0: unknown) in out[5], the unpacked path's
 * sup_kmax, sup_ratio and sup_ratio_team in out[6..8]. */
void cnn_gemm_blocking(int dtype, ptrdiff_t out[9]);

/* Seconds taken by a probe of the FMA units (src_c/gemm_peak.c: kind 0 one dependent chain, 1 AVX2 and
 * 2 AVX-512 throughput, over iters steps), or -1 where the CPU lacks it; for the benchmarks' peak. */
double cnn_fma_probe(int kind, long iters);

#ifdef __cplusplus
}
#endif

#endif
