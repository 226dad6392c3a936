/* C += A @ B^T with the inner dimension contiguous in both A (M x K) and B (N x K): a convolution's weight
 * gradient delta_n @ cols_n^T. Each entry of C is a dot product of two contiguous rows, so the kernel needs
 * no packing: a 4 x 3 block of C keeps 12 vector accumulators running along K (7 loads per 12 FMAs, so the
 * FMA units, not the loads, bound it), with one masked load for the K tail and horizontal sums once per
 * block. The outputs of a weight gradient are few (M x N ~ 2400) while K is long, where the packed GEMM
 * spends its time on packing and edge tiles. One definition, instantiated for AVX2 (8 floats or 4 doubles
 * a vector) and AVX-512 (16 or 8); at a level without such a kernel (baseline) the packed GEMM of gemm.c
 * does the work. The two levels sum K in different lane groupings, so their results differ by rounding. */
#include "gemm.h"
#include "gemm_cntx.h"

#if CNN_X86
#include "avx2.h"
#include "avx512.h"

#define NT_MR 4
#define NT_NR_AVX2 3
#define NT_NR_AVX512 6

/* The four horizontal sums of a, b, c, d into s[0..3]: hadd trees, cheaper than four separate sums. */
CNN_AVX2_INLINE void s_hsum4_avx2(float *s, __m256 a, __m256 b, __m256 c, __m256 d)
{
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

CNN_AVX2_INLINE void d_hsum4_avx2(double *s, __m256d a, __m256d b, __m256d c, __m256d d)
{
    const __m256d ab = _mm256_hadd_pd(a, b), cd = _mm256_hadd_pd(c, d);
    _mm256_storeu_pd(s, _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31)));
}

/* AVX-512: each zmm folded to a ymm (its two halves added), then AVX2's trees. */
CNN_AVX512_INLINE __m256 s_fold512(__m512 v)
{
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}

CNN_AVX512_INLINE __m256d d_fold512(__m512d v)
{
    return _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
}

CNN_AVX512_INLINE void s_hsum4_avx512(float *s, __m512 a, __m512 b, __m512 c, __m512 d)
{
    s_hsum4_avx2(s, s_fold512(a), s_fold512(b), s_fold512(c), s_fold512(d));
}

CNN_AVX512_INLINE void d_hsum4_avx512(double *s, __m512d a, __m512d b, __m512d c, __m512d d)
{
    d_hsum4_avx2(s, d_fold512(a), d_fold512(b), d_fold512(c), d_fold512(d));
}

/* Masked loads of the K tail, as (address, lanes below r): the lanes past the row's end read nothing. */
CNN_AVX2_INLINE __m256 s_tail_avx2(const float *p, ptrdiff_t r)
{
    return _mm256_maskload_ps(p, cnn_lanes_ps(r));
}

CNN_AVX2_INLINE __m256d d_tail_avx2(const double *p, ptrdiff_t r)
{
    return _mm256_maskload_pd(p, cnn_lanes_pd(r));
}

CNN_AVX512_INLINE __m512 s_tail_avx512(const float *p, ptrdiff_t r)
{
    return _mm512_maskz_loadu_ps(cnn_mask_ps(r), p);
}

CNN_AVX512_INLINE __m512d d_tail_avx512(const double *p, ptrdiff_t r)
{
    return _mm512_maskz_loadu_pd(cnn_mask_pd(r), p);
}

/* One mr x nr block of C (mr <= NT_MR, nr <= NT_NR; constants after inlining, so the accumulator arrays
 * live in registers): acc[i][j] holds lane-wise partial sums of row i of A times row j of B, bv[j] the
 * current vector of B's row j. */
#define NT_BLOCK(T, V, W, LOAD, TAIL, FMA, ZERO, HSUM4, TGT, INLINE, NR)                               \
    INLINE void T##_nt_block_##TGT(int mr, int nr, ptrdiff_t k, const V *a, ptrdiff_t lda, const V *b, \
                                   ptrdiff_t ldb, V *c, ptrdiff_t ldc)                                 \
    {                                                                                                  \
        W acc[NT_MR][NR], bv[NR];                                                                      \
        for (int i = 0; i < mr; ++i)                                                                   \
            for (int j = 0; j < nr; ++j)                                                               \
                acc[i][j] = ZERO();                                                                    \
        const ptrdiff_t width = sizeof(W) / sizeof(V);                                                 \
        ptrdiff_t p = 0;                                                                               \
        for (; p + width <= k; p += width) {                                                           \
            for (int j = 0; j < nr; ++j)                                                               \
                bv[j] = LOAD(b + j * ldb + p);                                                         \
            for (int i = 0; i < mr; ++i) {                                                             \
                const W ai = LOAD(a + i * lda + p);                                                    \
                for (int j = 0; j < nr; ++j)                                                           \
                    acc[i][j] = FMA(ai, bv[j], acc[i][j]);                                             \
            }                                                                                          \
        }                                                                                              \
        if (p < k) {                                                                                   \
            for (int j = 0; j < nr; ++j)                                                               \
                bv[j] = TAIL(b + j * ldb + p, k - p);                                                  \
            for (int i = 0; i < mr; ++i) {                                                             \
                const W ai = TAIL(a + i * lda + p, k - p);                                             \
                for (int j = 0; j < nr; ++j)                                                           \
                    acc[i][j] = FMA(ai, bv[j], acc[i][j]);                                             \
            }                                                                                          \
        }                                                                                              \
        for (int j = 0; j < nr; ++j) {                                                                 \
            V sum[4];                                                                                  \
            HSUM4(sum, acc[0][j], mr > 1 ? acc[1][j] : ZERO(), mr > 2 ? acc[2][j] : ZERO(),            \
                  mr > 3 ? acc[3][j] : ZERO());                                                        \
            for (int i = 0; i < mr; ++i)                                                               \
                c[i * ldc + j] += sum[i];                                                              \
        }                                                                                              \
    }

/* Full blocks through the fixed NT_MR x NR kernel; edge blocks through the matching smaller instance (mr
 * and nr constants in each call, so every instance keeps its accumulators in registers). Columns outer: the
 * NR rows of B stay in L1 while every row block of A (the smaller operand) passes. */
#define NT_COLS_6(BLK, MR, nr, ...)                                                                    \
    switch (nr) {                                                                                      \
    case 6: BLK(MR, 6, __VA_ARGS__); break;                                                            \
    case 5: BLK(MR, 5, __VA_ARGS__); break;                                                            \
    case 4: BLK(MR, 4, __VA_ARGS__); break;                                                            \
    case 3: BLK(MR, 3, __VA_ARGS__); break;                                                            \
    case 2: BLK(MR, 2, __VA_ARGS__); break;                                                            \
    default: BLK(MR, 1, __VA_ARGS__); break;                                                           \
    }
#define NT_COLS_3(BLK, MR, nr, ...)                                                                    \
    switch (nr) {                                                                                      \
    case 3: BLK(MR, 3, __VA_ARGS__); break;                                                            \
    case 2: BLK(MR, 2, __VA_ARGS__); break;                                                            \
    default: BLK(MR, 1, __VA_ARGS__); break;                                                           \
    }

#define NT_DRIVER(T, V, TGT, ATTR, NR, COLS)                                                           \
    ATTR void cnn_##T##_nt_##TGT(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,     \
                                 const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc)                       \
    {                                                                                                  \
        for (ptrdiff_t j = 0; j < n; j += NR) {                                                        \
            const int nr = n - j < NR ? (int)(n - j) : NR;                                             \
            for (ptrdiff_t i = 0; i < m; i += NT_MR) {                                                 \
                const V *ai = a + i * lda, *bj = b + j * ldb;                                          \
                V *cij = c + i * ldc + j;                                                              \
                switch (m - i < NT_MR ? (int)(m - i) : NT_MR) {                                        \
                case 4: COLS(T##_nt_block_##TGT, 4, nr, k, ai, lda, bj, ldb, cij, ldc) break;          \
                case 3: COLS(T##_nt_block_##TGT, 3, nr, k, ai, lda, bj, ldb, cij, ldc) break;          \
                case 2: COLS(T##_nt_block_##TGT, 2, nr, k, ai, lda, bj, ldb, cij, ldc) break;          \
                default: COLS(T##_nt_block_##TGT, 1, nr, k, ai, lda, bj, ldb, cij, ldc) break;         \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }

NT_BLOCK(s, float, __m256, _mm256_loadu_ps, s_tail_avx2, _mm256_fmadd_ps, _mm256_setzero_ps, s_hsum4_avx2,
         avx2, CNN_AVX2_INLINE, NT_NR_AVX2)
NT_BLOCK(d, double, __m256d, _mm256_loadu_pd, d_tail_avx2, _mm256_fmadd_pd, _mm256_setzero_pd, d_hsum4_avx2,
         avx2, CNN_AVX2_INLINE, NT_NR_AVX2)
NT_BLOCK(s, float, __m512, _mm512_loadu_ps, s_tail_avx512, _mm512_fmadd_ps, _mm512_setzero_ps, s_hsum4_avx512,
         avx512, CNN_AVX512_INLINE, NT_NR_AVX512)
NT_BLOCK(d, double, __m512d, _mm512_loadu_pd, d_tail_avx512, _mm512_fmadd_pd, _mm512_setzero_pd,
         d_hsum4_avx512, avx512, CNN_AVX512_INLINE, NT_NR_AVX512)

NT_DRIVER(s, float, avx2, CNN_AVX2, NT_NR_AVX2, NT_COLS_3)
NT_DRIVER(d, double, avx2, CNN_AVX2, NT_NR_AVX2, NT_COLS_3)
NT_DRIVER(s, float, avx512, CNN_AVX512, NT_NR_AVX512, NT_COLS_6)
NT_DRIVER(d, double, avx512, CNN_AVX512, NT_NR_AVX512, NT_COLS_6)

#endif /* CNN_X86 */

/* The level's unpacked kernel where it has one, else the packed GEMM (C = 1 * A @ B^T + 1 * C). */
#define NT_ENTRY(T, V)                                                                                 \
    int cnn_##T##gemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,         \
                             const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc)                           \
    {                                                                                                  \
        const T##_nt_t nt = cnn_gemm_context()->T##_nt;                                                \
        if (nt != NULL) {                                                                              \
            nt(m, n, k, a, lda, b, ldb, c, ldc);                                                       \
            return 0;                                                                                  \
        }                                                                                              \
        return cnn_##T##gemm(0, 1, m, n, k, 1, a, lda, b, ldb, 1, c, ldc);                             \
    }

NT_ENTRY(s, float)
NT_ENTRY(d, double)
