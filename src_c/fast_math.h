/* Vectorizable float32 exp, sigmoid and tanh for whole rows (header only).
 *
 * libm's expf and tanhf are scalar calls that stop the compiler vectorizing a loop; these are branch-free
 * (Cephes polynomials, selects instead of branches), so a row loop compiles to SIMD code (SSE2, the x86-64
 * baseline; GCC 12 would not if-convert the same loops inside an AVX2 target function). Accuracy: within
 * 3 ulp over the whole float range (checked against double precision); NaN propagates. GCC only
 * if-converts the selects with -fno-trapping-math, set here per function.
 */
#ifndef CNN_CORE_FAST_MATH_H
#define CNN_CORE_FAST_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define CNN_VECTORIZABLE __attribute__((optimize("no-trapping-math")))
#else
#define CNN_VECTORIZABLE
#endif

/* exp(x) for x <= 0 (all that sigmoid and tanh need); 0 below -87.33, where exp(x) is below the smallest
 * normal float. Non-positive arguments keep the code free of overflow handling. */
static inline CNN_VECTORIZABLE float cnn_expf_nonpos(float x)
{
    /* x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact), exp(r) by Cephes' degree-7
     * polynomial, 2^n assembled in the exponent bits. */
    const float xc = x < -87.33654475f ? -87.33654475f : x;
    const int32_t n = (int32_t)(xc * 1.44269504088896341f - 0.5f);   /* round(t) for t <= 0 */
    const float fn = (float)n;
    const float r = (xc - fn * 0.693359375f) + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.33654475f ? 0.0f : p * scale;
}

/* z[j] = 1 / (1 + exp(-z[j])) through e = exp(-|z|) only: 1/(1+e) or e/(1+e). Never overflows, and keeps
 * full relative accuracy in both tails. */
static CNN_VECTORIZABLE void cnn_sigmoid_rowf(float *z, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; ++j) {
        const float v = z[j];
        const float e = cnn_expf_nonpos(-fabsf(v));
        const float s = 1.0f / (1.0f + e);
        const float out = v >= 0 ? s : e * s;
        z[j] = v != v ? v : out;
    }
}

/* z[j] = tanh(z[j]): Cephes' odd polynomial below |z| = 0.625, above it (1 - e)/(1 + e) with
 * e = exp(-2|z|) <= 0.29, which does not cancel. */
static CNN_VECTORIZABLE void cnn_tanh_rowf(float *z, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; ++j) {
        const float v = z[j];
        const float av = fabsf(v);
        const float q = v * v;
        float p = -5.70498872745e-3f;
        p = p * q + 2.06390887954e-2f;
        p = p * q - 5.37397155531e-2f;
        p = p * q + 1.33314422036e-1f;
        p = p * q - 3.33332819422e-1f;
        const float small = p * q * v + v;
        const float e = cnn_expf_nonpos(-2.0f * av);
        const float big = copysignf((1.0f - e) / (1.0f + e), v);
        const float out = av < 0.625f ? small : big;
        z[j] = v != v ? v : out;
    }
}

#endif
