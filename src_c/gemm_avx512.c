/* AVX-512 micro-kernels of the packed GEMM (gemm_template.h's contract, gemm_cntx.h's signatures), one
 * definition for float and double.
 *
 * A tile is MR = 14 rows of C by two zmm vectors (NR = 32 floats or 16 doubles). The accumulators
 * acc0[i], acc1[i] hold row i, vectors 0 and 1: 28 of the 32 zmm registers, plus 2 for the B row of the
 * current depth step and 1 for the broadcast of A's value (the compiler keeps the fully unrolled arrays in
 * registers). Per depth step: 2 loads of B, 14 broadcasts, 28 FMAs.
 *
 * Edge tiles (fewer rows or columns at the matrix's bottom or right edge) run the same code with the row
 * count and the vector count (1 for at most one vector of columns) compile-time constants (one instance
 * each, chosen by a switch, so no FMA is spent on rows or vectors that do not exist) and masked stores
 * for the columns: the packed panels are zero-padded, so the loads
 * need no mask. An element of C gets the same operations in the same order in an edge tile as in a full
 * one. */
#include "gemm_cntx.h"
#include "cpu.h"

#if CNN_X86
#include "avx512.h"

/* Rows i < mr of the tile over depth k, nv (1 or 2) vectors of columns: A panel MR values per step (row
 * i at a[i]), B panel 2*LANES values per step (the second vector skipped when nv == 1: an edge of at most
 * LANES columns); store row i's first columns (masks m0, m1) as alpha * acc + beta * C. */
#define AVX512_TILE(T, V, W, SFX, LANES, MASK, MR_)                                                      \
    CNN_AVX512_INLINE void T##_tile_avx512(const int mr, const int nv, ptrdiff_t k, const V *a,          \
                                           const V *b, V *c, ptrdiff_t ldc, V alpha, V beta, MASK m0,    \
                                           MASK m1)                                                      \
    {                                                                                                    \
        W acc0[MR_], acc1[MR_];                                                                          \
        _Pragma("GCC unroll 16") for (int i = 0; i < mr; ++i) {                                          \
            acc0[i] = _mm512_setzero_##SFX();                                                            \
            acc1[i] = _mm512_setzero_##SFX();                                                            \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                                      \
            if (nv == 2)                                                                                 \
                _mm_prefetch((const char *)(c + i * ldc + 2 * LANES - 1), _MM_HINT_T0);                  \
        }                                                                                                \
        for (ptrdiff_t p = 0; p < k; ++p) {                                                              \
            const W b0 = _mm512_loadu_##SFX(b);                                                          \
            const W b1 = nv == 2 ? _mm512_loadu_##SFX(b + LANES) : b0;                                   \
            _Pragma("GCC unroll 16") for (int i = 0; i < mr; ++i) {                                      \
                const W ai = _mm512_set1_##SFX(a[i]);                                                    \
                acc0[i] = _mm512_fmadd_##SFX(ai, b0, acc0[i]);                                           \
                if (nv == 2)                                                                             \
                    acc1[i] = _mm512_fmadd_##SFX(ai, b1, acc1[i]);                                       \
            }                                                                                            \
            a += MR_;                                                                                    \
            b += 2 * LANES;                                                                              \
        }                                                                                                \
        const W va = _mm512_set1_##SFX(alpha), vb = _mm512_set1_##SFX(beta);                             \
        _Pragma("GCC unroll 16") for (int i = 0; i < mr; ++i) {                                          \
            V *ci = c + i * ldc;                                                                         \
            if (beta == 0) {                                                                             \
                _mm512_mask_storeu_##SFX(ci, m0, _mm512_mul_##SFX(va, acc0[i]));                         \
                if (nv == 2)                                                                             \
                    _mm512_mask_storeu_##SFX(ci + LANES, m1, _mm512_mul_##SFX(va, acc1[i]));             \
            } else {                                                                                     \
                const W c0 = _mm512_maskz_loadu_##SFX(m0, ci);                                           \
                _mm512_mask_storeu_##SFX(ci, m0, _mm512_fmadd_##SFX(va, acc0[i], _mm512_mul_##SFX(vb, c0))); \
                if (nv == 2) {                                                                           \
                    const W c1 = _mm512_maskz_loadu_##SFX(m1, ci + LANES);                               \
                    _mm512_mask_storeu_##SFX(ci + LANES, m1,                                             \
                                             _mm512_fmadd_##SFX(va, acc1[i], _mm512_mul_##SFX(vb, c1))); \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

/* The full-tile kernel (every mask all ones) and the edge kernel: one tile instance per row count and
 * vector count, so an edge of few rows or of at most LANES columns spends no FMA on what is not there. */
#define AVX512_EDGE_ROWS(T, NV)                                                                          \
    switch (mr) {                                                                                        \
    case 14: T##_tile_avx512(14, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                       \
    case 13: T##_tile_avx512(13, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                       \
    case 12: T##_tile_avx512(12, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                       \
    case 11: T##_tile_avx512(11, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                       \
    case 10: T##_tile_avx512(10, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                       \
    case 9: T##_tile_avx512(9, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 8: T##_tile_avx512(8, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 7: T##_tile_avx512(7, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 6: T##_tile_avx512(6, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 5: T##_tile_avx512(5, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 4: T##_tile_avx512(4, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 3: T##_tile_avx512(3, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    case 2: T##_tile_avx512(2, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                         \
    default: T##_tile_avx512(1, NV, k, a, b, c, ldc, alpha, beta, m0, m1); break;                        \
    }

#define AVX512_KERNELS(T, V, MASK, MR_)                                                                  \
    CNN_AVX512 void cnn_##T##_ukr_avx512(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc,       \
                                         V alpha, V beta)                                                \
    {                                                                                                    \
        T##_tile_avx512(MR_, 2, k, a, b, c, ldc, alpha, beta, (MASK)-1, (MASK)-1);                       \
    }                                                                                                    \
                                                                                                         \
    CNN_AVX512 void cnn_##T##_edge_avx512(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc,      \
                                          V alpha, V beta, ptrdiff_t mr, ptrdiff_t nr)                   \
    {                                                                                                    \
        const ptrdiff_t lanes = 64 / (ptrdiff_t)sizeof(V);                                               \
        const MASK m0 = cnn_mask_##T##x(nr), m1 = cnn_mask_##T##x(nr - lanes);                           \
        if (nr <= lanes) {                                                                               \
            AVX512_EDGE_ROWS(T, 1)                                                                       \
        } else {                                                                                         \
            AVX512_EDGE_ROWS(T, 2)                                                                       \
        }                                                                                                \
    }

/* One depth step of the unpacked kernel: row i of the tile += A[i][p] * (b0 | b1). */
#define AVX512_SUP_RANK1(W, SFX)                                                                         \
    _Pragma("GCC unroll 8") for (int i = 0; i < SMR; ++i) {                                              \
        const W ai = _mm512_set1_##SFX(ar[i][pa]);                                                       \
        acc0[i] = _mm512_fmadd_##SFX(ai, b0, acc0[i]);                                                   \
        acc1[i] = _mm512_fmadd_##SFX(ai, b1, acc1[i]);                                                   \
    }

/* Unpacked kernel (gemm_cntx.h's sup, for products too small to repay packing): a tile of
 * CNN_AVX512_SUP_MR = 8 rows of C by two zmm vectors (32 floats, 16 doubles), A read in place through its
 * strides (8 row streams: rows past mr repeat row mr - 1, computed but not stored), B's contiguous rows
 * loaded directly (masked past nr), the whole depth in one pass. acc0[i], acc1[i] hold row i, vectors 0
 * and 1: 16 zmm, plus 2 for the B row and 1 for the broadcast; per depth step 2 loads of B, 8 broadcasts,
 * 16 FMAs. Eight rows, not the packed kernel's 14, so that the row pointers fit the general registers,
 * and M = 16 or 64 (LeNet conv2's filters, batch 64) are whole tiles. Each element of C gets the FMAs of
 * its dot product in depth order, then alpha * acc + beta * C, as in every other kernel of this file.
 * Full-width tiles prefetch, row by row, the B sliver three slivers to the right (the driver's column
 * tiles after next): each of the k rows of a sliver lies on its own page when B is wide, more streams than
 * the hardware prefetchers follow. Measured on an Intel Xeon with AVX-512 (2 MiB L2), one thread, best of 7
 * blocks: (16 x 150) @ (150 x 6400), LeNet conv2's product, float32 441-485 -> 340-364 us, float64
 * 1016-1060 -> 917-943 us (numpy.matmul 423-574 / 666-729) with the sliver two to the right; three to the
 * right (minimum of 9 blocks interleaved with numpy.matmul, 4 runs each, the machine noisy): float64 ratio
 * to NumPy 1.03-1.23 -> 0.87-0.96, float32 0.65-0.71 -> 0.66-0.74; four: float64 1.06-1.09. (6 x 25) @
 * (25 x 50176) unchanged. The AVX2 kernel keeps two (three: 543 -> 583-633 us float32 at that level). */
#define AVX512_SUP(T, V, W, SFX, LANES, MASK)                                                            \
    CNN_AVX512 void cnn_##T##_sup_avx512(ptrdiff_t k, const V *a, ptrdiff_t rsa, ptrdiff_t csa,          \
                                         const V *b, ptrdiff_t rsb, V *c, ptrdiff_t ldc, V alpha, V beta, \
                                         ptrdiff_t mr, ptrdiff_t nr)                                     \
    {                                                                                                    \
        enum { SMR = CNN_AVX512_SUP_MR };                                                                \
        const V *ar[SMR];                                                                                \
        W acc0[SMR], acc1[SMR];                                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < SMR; ++i) {                                          \
            ar[i] = a + (i < mr ? i : mr - 1) * rsa;                                                     \
            acc0[i] = _mm512_setzero_##SFX();                                                            \
            acc1[i] = _mm512_setzero_##SFX();                                                            \
        }                                                                                                \
        const MASK m0 = cnn_mask_##T##x(nr), m1 = cnn_mask_##T##x(nr - LANES);                           \
        ptrdiff_t pa = 0;                                                                                \
        const V *bp = b;                                                                                 \
        if (nr == 2 * LANES) {                                                                           \
            for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb) {                                    \
                const W b0 = _mm512_loadu_##SFX(bp), b1 = _mm512_loadu_##SFX(bp + LANES);               \
                _mm_prefetch((const char *)(bp + 6 * LANES), _MM_HINT_T0);                               \
                _mm_prefetch((const char *)(bp + 7 * LANES), _MM_HINT_T0);                               \
                AVX512_SUP_RANK1(W, SFX);                                                                \
            }                                                                                            \
        } else {                                                                                         \
            for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb) {                                    \
                const W b0 = _mm512_maskz_loadu_##SFX(m0, bp), b1 = _mm512_maskz_loadu_##SFX(m1, bp + LANES); \
                AVX512_SUP_RANK1(W, SFX);                                                                \
            }                                                                                            \
        }                                                                                                \
        const W va = _mm512_set1_##SFX(alpha), vb = _mm512_set1_##SFX(beta);                             \
        _Pragma("GCC unroll 8") for (int i = 0; i < SMR; ++i) {                                          \
            if (i >= mr)                                                                                 \
                break;                                                                                   \
            V *ci = c + i * ldc;                                                                         \
            if (beta == 0) {                                                                             \
                _mm512_mask_storeu_##SFX(ci, m0, _mm512_mul_##SFX(va, acc0[i]));                         \
                _mm512_mask_storeu_##SFX(ci + LANES, m1, _mm512_mul_##SFX(va, acc1[i]));                 \
            } else {                                                                                     \
                const W c0 = _mm512_maskz_loadu_##SFX(m0, ci), c1 = _mm512_maskz_loadu_##SFX(m1, ci + LANES); \
                _mm512_mask_storeu_##SFX(ci, m0, _mm512_fmadd_##SFX(va, acc0[i], _mm512_mul_##SFX(vb, c0))); \
                _mm512_mask_storeu_##SFX(ci + LANES, m1,                                                 \
                                         _mm512_fmadd_##SFX(va, acc1[i], _mm512_mul_##SFX(vb, c1)));     \
            }                                                                                            \
        }                                                                                                \
    }

#define cnn_mask_sx cnn_mask_ps
#define cnn_mask_dx cnn_mask_pd

AVX512_TILE(s, float, __m512, ps, 16, __mmask16, CNN_AVX512_S_MR)
AVX512_TILE(d, double, __m512d, pd, 8, __mmask8, CNN_AVX512_D_MR)
AVX512_KERNELS(s, float, __mmask16, CNN_AVX512_S_MR)
AVX512_KERNELS(d, double, __mmask8, CNN_AVX512_D_MR)
AVX512_SUP(s, float, __m512, ps, 16, __mmask16)
AVX512_SUP(d, double, __m512d, pd, 8, __mmask8)

#endif /* CNN_X86 */
