/* Helpers shared by the AVX2 kernels (gemm.c, gemm_nt.c, maxpool2x2.c); include only where CNN_X86. */
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

#endif
