/* Helpers shared by the AVX-512 kernels (gemm_avx512.c); include only where CNN_X86. */
#ifndef CNN_CORE_AVX512_H
#define CNN_CORE_AVX512_H

#include <stddef.h>
#include <immintrin.h>

/* Every AVX-512 kernel is compiled for the avx512 level of cpu.h (F, VL, BW, DQ) plus FMA, function by
 * function: the rest of the module, and so the wheel, stays portable. */
#define CNN_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define CNN_AVX512_INLINE __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma"), always_inline)) \
    static inline

/* Mask of the float (16) or double (8) lanes below r: r <= 0 gives no lane, r >= the lane count every
 * lane. Masked stores leave the other lanes' memory untouched (and never fault on it). */
CNN_AVX512_INLINE __mmask16 cnn_mask_ps(ptrdiff_t r)
{
    return r <= 0 ? (__mmask16)0 : r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

CNN_AVX512_INLINE __mmask8 cnn_mask_pd(ptrdiff_t r)
{
    return r <= 0 ? (__mmask8)0 : r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << r) - 1u);
}

#endif
