/* The GEMM's kernels and blocking per instruction-set level (BLIS's context), shared by gemm.c,
 * gemm_nt.c and gemm_avx512.c.
 *
 * Every packed micro-kernel has one signature per dtype: C[MR x NR] = alpha * A_panel @ B_panel + beta * C
 * over depth k, never reading C when beta == 0; the panels are packed MR (A) and NR (B) values per depth
 * step, zero-padded. An edge kernel does the same for the top-left mr x nr corner of the tile (mr <= MR,
 * nr <= NR) and touches no element of C outside it. Loops and blocking belong to gemm_template.h. */
#ifndef CNN_CORE_GEMM_CNTX_H
#define CNN_CORE_GEMM_CNTX_H

#include <stddef.h>

#define CNN_GEMM_KERNEL_TYPES(T, V)                                                                       \
    /* packed micro-kernel (full MR x NR tile) */                                                         \
    typedef void (*T##_ukr_t)(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc, V alpha, V beta); \
    /* packed edge kernel: the mr x nr corner of a tile */                                                \
    typedef void (*T##_edge_t)(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc, V alpha, V beta, \
                               ptrdiff_t mr, ptrdiff_t nr);                                               \
    /* unpacked micro-kernel: A through its strides, B rows contiguous, an mr x nr (edge) tile */         \
    typedef void (*T##_sup_t)(ptrdiff_t k, const V *a, ptrdiff_t rsa, ptrdiff_t csa, const V *b,         \
                              ptrdiff_t rsb, V *c, ptrdiff_t ldc, V alpha, V beta, ptrdiff_t mr,         \
                              ptrdiff_t nr);                                                             \
    /* packing of contiguous lines: dst[p*W + i] = x[i*ls + p] for p < kc, lines i < w (w <= W) and     \
     * zeros for i in [w, W) */                                                                           \
    typedef void (*T##_packt_t)(int W, ptrdiff_t w, ptrdiff_t kc, const V *x, ptrdiff_t ls, V *dst);     \
    /* C += A @ B^T, K contiguous in both (gemm_nt.c) */                                                  \
    typedef void (*T##_nt_t)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,           \
                             const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc);
CNN_GEMM_KERNEL_TYPES(s, float)
CNN_GEMM_KERNEL_TYPES(d, double)
#undef CNN_GEMM_KERNEL_TYPES

/* Blocking of one dtype at one level (BLIS's blocksizes): MR x NR the packed micro-tile, MC x KC the block
 * of A kept in L2, KC x NC the block of B kept in L3; sup_mr x sup_nr the unpacked kernel's tile, used
 * while k <= sup_kmax and (m + n) * ratio >= m * n, ratio = sup_ratio on one thread and sup_ratio_team on
 * a team (gemm_template.h's use_sup says why). The two ratios may differ only where the unpacked and the
 * packed kernels give the same bits (sup_kmax <= KC, one depth block, and the same epilogue), so that
 * the thread count never changes a result. */
typedef struct {
    int mr, nr, mc, kc, nc;
    int sup_mr, sup_nr, sup_kmax, sup_ratio, sup_ratio_team;
} cnn_gemm_blksz;

/* The largest MR and NR of any level (the driver's edge-tile buffer). */
#define CNN_GEMM_MAX_MR 16
#define CNN_GEMM_MAX_NR 32

/* One level's kernels and blocking; a NULL kernel is one the level lacks: no edge kernel, edge tiles go
 * through a buffer; no sup or nt kernel, the packed GEMM does that work; no packt, the packing loops
 * of gemm_template.h copy contiguous lines element by element. */
typedef struct {
    s_ukr_t s_ukr;
    d_ukr_t d_ukr;
    s_edge_t s_edge;
    d_edge_t d_edge;
    s_sup_t s_sup;
    d_sup_t d_sup;
    s_nt_t s_nt;
    d_nt_t d_nt;
    s_packt_t s_packt;
    d_packt_t d_packt;
    cnn_gemm_blksz s_blk;
    cnn_gemm_blksz d_blk;
} cnn_gemm_cntx;

/* The kernels of the level in use (gemm.c). A call reads it once, so a GEMM never mixes levels. */
const cnn_gemm_cntx *cnn_gemm_context(void);

/* gemm_nt.c's AVX2+FMA kernels, for gemm.c's table. */
void cnn_s_nt_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                   ptrdiff_t ldb, float *c, ptrdiff_t ldc);
void cnn_d_nt_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda, const double *b,
                   ptrdiff_t ldb, double *c, ptrdiff_t ldc);

/* gemm_avx512.c's kernels: an MR x NR tile is MR rows of two zmm vectors (32 floats, 16 doubles). */
#define CNN_AVX512_S_MR 14
#define CNN_AVX512_S_NR 32
#define CNN_AVX512_D_MR 14
#define CNN_AVX512_D_NR 16
void cnn_s_ukr_avx512(ptrdiff_t k, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha,
                      float beta);
void cnn_d_ukr_avx512(ptrdiff_t k, const double *a, const double *b, double *c, ptrdiff_t ldc, double alpha,
                      double beta);
void cnn_s_edge_avx512(ptrdiff_t k, const float *a, const float *b, float *c, ptrdiff_t ldc, float alpha,
                       float beta, ptrdiff_t mr, ptrdiff_t nr);
void cnn_d_edge_avx512(ptrdiff_t k, const double *a, const double *b, double *c, ptrdiff_t ldc, double alpha,
                       double beta, ptrdiff_t mr, ptrdiff_t nr);
/* gemm_avx512.c's unpacked kernels: a tile is CNN_AVX512_SUP_MR rows of two zmm vectors. */
#define CNN_AVX512_SUP_MR 8
void cnn_s_sup_avx512(ptrdiff_t k, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                      float *c, ptrdiff_t ldc, float alpha, float beta, ptrdiff_t mr, ptrdiff_t nr);
void cnn_d_sup_avx512(ptrdiff_t k, const double *a, ptrdiff_t rsa, ptrdiff_t csa, const double *b,
                      ptrdiff_t rsb, double *c, ptrdiff_t ldc, double alpha, double beta, ptrdiff_t mr,
                      ptrdiff_t nr);

#endif
