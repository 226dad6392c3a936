/* The GEMM's kernels per instruction-set level (BLIS's context), shared by gemm.c and gemm_nt.c.
 *
 * Every packed micro-kernel has one signature per dtype: C[MR x NR] = alpha * A_panel @ B_panel + beta * C
 * over depth k, never reading C when beta == 0; edges and blocking belong to gemm_template.h. */
#ifndef CNN_CORE_GEMM_CNTX_H
#define CNN_CORE_GEMM_CNTX_H

#include <stddef.h>

#define CNN_GEMM_KERNEL_TYPES(T, V)                                                                       \
    /* packed micro-kernel (gemm_template.h's contract) */                                               \
    typedef void (*T##_ukr_t)(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc, V alpha, V beta); \
    /* unpacked micro-kernel: A through its strides, B rows contiguous, an mr x nr (edge) tile */         \
    typedef void (*T##_sup_t)(ptrdiff_t k, const V *a, ptrdiff_t rsa, ptrdiff_t csa, const V *b,         \
                              ptrdiff_t rsb, V *c, ptrdiff_t ldc, V alpha, V beta, ptrdiff_t mr,         \
                              ptrdiff_t nr);                                                             \
    /* C += A @ B^T, K contiguous in both (gemm_nt.c) */                                                  \
    typedef void (*T##_nt_t)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,           \
                             const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc);
CNN_GEMM_KERNEL_TYPES(s, float)
CNN_GEMM_KERNEL_TYPES(d, double)
#undef CNN_GEMM_KERNEL_TYPES

/* One level's kernels; NULL where the level has no such kernel (the packed GEMM then does the work). */
typedef struct {
    s_ukr_t s_ukr;
    d_ukr_t d_ukr;
    s_sup_t s_sup;
    d_sup_t d_sup;
    s_nt_t s_nt;
    d_nt_t d_nt;
} cnn_gemm_cntx;

/* The kernels of the level in use (gemm.c). A call reads it once, so a GEMM never mixes levels. */
const cnn_gemm_cntx *cnn_gemm_context(void);

/* gemm_nt.c's AVX2+FMA kernels, for gemm.c's table. */
void cnn_s_nt_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                   ptrdiff_t ldb, float *c, ptrdiff_t ldc);
void cnn_d_nt_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda, const double *b,
                   ptrdiff_t ldb, double *c, ptrdiff_t ldc);

#endif
