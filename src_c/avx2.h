/* Helpers shared by the AVX2 kernels (gemm.c, gemm_nt.c, maxpool2x2.c, winograd.c); include only where
 * CNN_X86. */
#ifndef CNN_CORE_AVX2_H
#define CNN_CORE_AVX2_H

#include <stddef.h>
#include <immintrin.h>

/* Every AVX2 kernel is compiled for AVX2+FMA (the avx2 level of cpu.h requires both). */
#define CNN_AVX2 __attribute__((target("avx2,fma")))
#define CNN_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* Mask of the int32 lanes (8) or int64 lanes (4) below r: masked loads and stores of a row's last r
 * elements never touch memory past its end. r <= 0 gives no lane, r >= the lane count every lane; |r| must
 * fit an int (callers pass at most two vectors' worth). */
CNN_AVX2_INLINE __m256i cnn_lanes_ps(ptrdiff_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

CNN_AVX2_INLINE __m256i cnn_lanes_pd(ptrdiff_t r)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)r), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* Register transposes: r[0..7] (8 lines x 8 steps) -> r[q] = step q of the 8 lines. */
CNN_AVX2_INLINE void cnn_transpose8_ps(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);       /* lines i, i+1 interleaved: steps 0,1 | 4,5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);   /* steps 2,3 | 6,7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));      /* step 0 | 4 of 4 lines */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));  /* step 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0)); /* step 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2)); /* step 3 | 7 */
    }
    for (int q = 0; q < 4; ++q) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);       /* lines 0-3 | lines 4-7, step q */
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);   /* step q + 4 */
    }
}

/* r[0..3] (4 lines x 4 steps) -> r[q] = step q of the 4 lines. */
CNN_AVX2_INLINE void cnn_transpose4_pd(__m256d r[4])
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

#endif
