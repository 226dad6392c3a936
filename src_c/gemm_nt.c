/* C += A @ B^T with the inner dimension contiguous in both A (M x K) and B (N x K): a convolution's weight
 * gradient delta_n @ cols_n^T. Each entry of C is a dot product of two contiguous rows, so the AVX2 kernel
 * needs no packing: a 4 x 3 block of C keeps 12 vector accumulators running along K (7 loads per 12 FMAs),
 * with one masked load for the K tail and horizontal sums (hadd trees) once per block. The outputs of a weight gradient
 * are few (M x N ~ 2400) while K is long, where the packed GEMM spends its time on packing and edge tiles.
 * At a level without such a kernel (baseline; avx512, whose GEMM is faster: gemm.c) the packed GEMM does the
 * work. */
#include "gemm.h"
#include "gemm_cntx.h"

#if CNN_X86
#include "avx2.h"

#define NT_MR 4
#define NT_NR 3
#define NT_INLINE CNN_AVX2_INLINE

/* The four horizontal sums of a, b, c, d into s[0..3]: hadd trees, cheaper than four separate sums. */
NT_INLINE void s_hsum4(float *s, __m256 a, __m256 b, __m256 c, __m256 d)
{
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

NT_INLINE void d_hsum4(double *s, __m256d a, __m256d b, __m256d c, __m256d d)
{
    const __m256d ab = _mm256_hadd_pd(a, b), cd = _mm256_hadd_pd(c, d);
    _mm256_storeu_pd(s, _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31)));
}

/* One mr x nr block of C (mr <= NT_MR, nr <= NT_NR; constants after inlining, so the accumulator arrays
 * live in registers). */
#define NT_BLOCK(T, V, W, LOAD, MLOAD, FMA, ZERO, MASK, HSUM4)                                            \
    NT_INLINE void T##_nt_block(int mr, int nr, ptrdiff_t k, const V *a, ptrdiff_t lda, const V *b,     \
                                ptrdiff_t ldb, V *c, ptrdiff_t ldc)                                     \
    {                                                                                                   \
        W acc[NT_MR][NT_NR], bv[NT_NR];                                                                 \
        for (int i = 0; i < mr; ++i)                                                                    \
            for (int j = 0; j < nr; ++j)                                                                \
                acc[i][j] = ZERO();                                                                     \
        const ptrdiff_t width = sizeof(W) / sizeof(V);                                                  \
        ptrdiff_t p = 0;                                                                                \
        for (; p + width <= k; p += width) {                                                            \
            for (int j = 0; j < nr; ++j)                                                                \
                bv[j] = LOAD(b + j * ldb + p);                                                          \
            for (int i = 0; i < mr; ++i) {                                                              \
                const W ai = LOAD(a + i * lda + p);                                                     \
                for (int j = 0; j < nr; ++j)                                                            \
                    acc[i][j] = FMA(ai, bv[j], acc[i][j]);                                              \
            }                                                                                           \
        }                                                                                               \
        if (p < k) {                                                                                    \
            const __m256i mask = MASK(k - p);                                                           \
            for (int j = 0; j < nr; ++j)                                                                \
                bv[j] = MLOAD(b + j * ldb + p, mask);                                                   \
            for (int i = 0; i < mr; ++i) {                                                              \
                const W ai = MLOAD(a + i * lda + p, mask);                                              \
                for (int j = 0; j < nr; ++j)                                                            \
                    acc[i][j] = FMA(ai, bv[j], acc[i][j]);                                              \
            }                                                                                           \
        }                                                                                               \
        for (int j = 0; j < nr; ++j) {                                                                  \
            V sum[4];                                                                                   \
            HSUM4(sum, acc[0][j], mr > 1 ? acc[1][j] : ZERO(), mr > 2 ? acc[2][j] : ZERO(),            \
                  mr > 3 ? acc[3][j] : ZERO());                                                         \
            for (int i = 0; i < mr; ++i)                                                                \
                c[i * ldc + j] += sum[i];                                                               \
        }                                                                                               \
    }

NT_BLOCK(s, float, __m256, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_fmadd_ps, _mm256_setzero_ps,
         cnn_lanes_ps, s_hsum4)
NT_BLOCK(d, double, __m256d, _mm256_loadu_pd, _mm256_maskload_pd, _mm256_fmadd_pd, _mm256_setzero_pd,
         cnn_lanes_pd, d_hsum4)

/* Full blocks through the fixed 4 x 3 kernel; edge blocks through the matching smaller instance. Columns
 * outer: the NR rows of B stay in L1 while every row block of A (the smaller operand) passes. */
#define NT_DRIVER(T, V)                                                                                 \
    CNN_AVX2 void cnn_##T##_nt_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,    \
                                    const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc)                     \
    {                                                                                                   \
        for (ptrdiff_t j = 0; j < n; j += NT_NR) {                                                      \
            const int nr = n - j < NT_NR ? (int)(n - j) : NT_NR;                                        \
            for (ptrdiff_t i = 0; i < m; i += NT_MR) {                                                  \
                const int mr = m - i < NT_MR ? (int)(m - i) : NT_MR;                                    \
                const V *ai = a + i * lda, *bj = b + j * ldb;                                           \
                V *cij = c + i * ldc + j;                                                               \
                switch (mr * 4 + nr) {                                                                  \
                case 4 * 4 + 3: T##_nt_block(4, 3, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 4 * 4 + 2: T##_nt_block(4, 2, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 4 * 4 + 1: T##_nt_block(4, 1, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 3 * 4 + 3: T##_nt_block(3, 3, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 3 * 4 + 2: T##_nt_block(3, 2, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 3 * 4 + 1: T##_nt_block(3, 1, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 2 * 4 + 3: T##_nt_block(2, 3, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 2 * 4 + 2: T##_nt_block(2, 2, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 2 * 4 + 1: T##_nt_block(2, 1, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 1 * 4 + 3: T##_nt_block(1, 3, k, ai, lda, bj, ldb, cij, ldc); break;               \
                case 1 * 4 + 2: T##_nt_block(1, 2, k, ai, lda, bj, ldb, cij, ldc); break;               \
                default:        T##_nt_block(1, 1, k, ai, lda, bj, ldb, cij, ldc); break;               \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }

NT_DRIVER(s, float)
NT_DRIVER(d, double)

#endif /* CNN_X86 */

/* The level's unpacked kernel where it has one, else the packed GEMM (C = 1 * A @ B^T + 1 * C). */
#define NT_ENTRY(T, V)                                                                                  \
    int cnn_##T##gemm_nt_acc(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const V *a, ptrdiff_t lda,          \
                             const V *b, ptrdiff_t ldb, V *c, ptrdiff_t ldc)                            \
    {                                                                                                   \
        const T##_nt_t nt = cnn_gemm_context()->T##_nt;                                                 \
        if (nt != NULL) {                                                                               \
            nt(m, n, k, a, lda, b, ldb, c, ldc);                                                        \
            return 0;                                                                                   \
        }                                                                                               \
        return cnn_##T##gemm(0, 1, m, n, k, 1, a, lda, b, ldb, 1, c, ldc);                              \
    }

NT_ENTRY(s, float)
NT_ENTRY(d, double)
