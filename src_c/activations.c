/* Activation kernels written so the compiler vectorizes them: exp and expm1 are computed inline
 * (Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a Taylor polynomial for expm1(r) and 2^n
 * built from exponent bits), every branch is a select. Each loop is compiled twice, for baseline x86-64
 * and for AVX2/FMA, and the table of the instruction-set level in use (cpu.h) picks one at run time (one
 * wheel for any x86-64). These loops are cnn_core's only sigmoid and tanh.
 *
 * Every exp/expm1 here takes a non-positive argument (sigmoid: -|z|, tanh: -2|z|, elu: min(z, 0)), so
 * nothing overflows. Below X_MIN = ~ln(smallest normal) exp flushes to 0 and expm1 is -1. NaN propagates. */
#include "activations.h"

#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* c ? a : b on bits. With floating-point traps honoured (the default), GCC will not turn `c ? a : b` on
 * floats into a vector blend, so the loops would stay scalar; a bitwise select vectorizes everywhere. */
INLINE float sel_f32(int c, float a, float b) {
    uint32_t ua, ub, m = -(uint32_t)(c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

INLINE double sel_f64(int c, double a, double b) {
    uint64_t ua, ub, m = -(uint64_t)(c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

/* ---- float32 ---- */
#define X_MIN_F32 (-87.33654f) /* ln(FLT_MIN) */

/* expm1(r) for |r| <= ln2/2: r + r^2/2! + ... + r^7/7!; the first omitted term r^8/8! is below 2^-24 |r|. */
INLINE float expm1_poly_f32(float r) {
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    return r + r * r * p;
}

/* Reduces x <= 0 to 2^n and r; returns q = expm1(r), so exp(x) = 2^n (1 + q). */
INLINE float reduce_f32(float x, float *two_n) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer kept in the low bits */
    float xc = sel_f32(x < X_MIN_F32, X_MIN_F32, x); /* NaN passes through */
    float t = xc * 1.44269504088896341f + magic;
    float nf = t - magic;
    uint32_t tb, eb;
    memcpy(&tb, &t, sizeof tb);
    eb = (tb - 0x4B400000u + 127u) << 23; /* n + bias in the exponent field */
    memcpy(two_n, &eb, sizeof eb);
    return expm1_poly_f32((xc - nf * 0.693359375f) - nf * -2.12194440e-4f);
}

/* exp and expm1 of x <= 0 from the reduction exp(x) = 2^n (1 + q), and |x|, per dtype. */
#define EXP_NONPOS(T, SFX, X_MIN, ABS)                                                                   \
    INLINE T exp_nonpos_##SFX(T x) {                                                                   \
        T two_n, q = reduce_##SFX(x, &two_n);                                                          \
        T e = two_n + two_n * q;                                                                       \
        return sel_##SFX(x < X_MIN, (T)0, e);                                                          \
    }                                                                                                  \
    INLINE T expm1_nonpos_##SFX(T x) {                                                                 \
        /* 2^n q + (2^n - 1): no cancellation for n = 0, where the result is q itself. */             \
        T two_n, q = reduce_##SFX(x, &two_n);                                                          \
        return two_n * q + (two_n - (T)1);                                                             \
    }                                                                                                  \
    INLINE T ABS(T x) { return sel_##SFX(x < 0, -x, x); }

EXP_NONPOS(float, f32, X_MIN_F32, absf)

/* ---- float64 ---- */
#define X_MIN_F64 (-708.3964185) /* ln(DBL_MIN) */

/* expm1(r) for |r| <= ln2/2 to degree 13; the first omitted term r^14/14! is below 2^-53 |r|. */
INLINE double expm1_poly_f64(double r) {
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return r + r * r * p;
}

INLINE double reduce_f64(double x, double *two_n) {
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = sel_f64(x < X_MIN_F64, X_MIN_F64, x);
    double t = xc * 1.4426950408889634074 + magic;
    double nf = t - magic;
    uint64_t tb, eb;
    memcpy(&tb, &t, sizeof tb);
    eb = (tb - 0x4338000000000000ull + 1023ull) << 52;
    memcpy(two_n, &eb, sizeof eb);
    /* fdlibm's split of ln2: the high part has 32 trailing zero bits, so nf * hi is exact. */
    return expm1_poly_f64((xc - nf * 6.93147180369123816490e-01) - nf * 1.90821492927058770002e-10);
}

EXP_NONPOS(double, f64, X_MIN_F64, absd)

/* ---- loops, instantiated per dtype (T, SFX: f32/f64, ABS) and per target (TGT, ATTR) ---- */
#define SEL(SFX) sel_##SFX
#define COPYSIGN(SFX) copysign_##SFX
#define copysign_f32 __builtin_copysignf
#define copysign_f64 __builtin_copysign
#define ACT_LOOPS(T, SFX, ABS, TGT, ATTR)                                                                \
    ATTR static void sigmoid_##SFX##_##TGT(const T *z, T *a, ptrdiff_t n) {                            \
        for (ptrdiff_t i = 0; i < n; i++) {                                                            \
            T zi = z[i];                                                                               \
            T e = exp_nonpos_##SFX(-ABS(zi));                                                          \
            T s = (T)1 / ((T)1 + e);                                                                   \
            a[i] = SEL(SFX)(zi >= 0, s, e * s);                                                        \
        }                                                                                              \
    }                                                                                                  \
    ATTR static void tanh_##SFX##_##TGT(const T *z, T *a, ptrdiff_t n) {                               \
        /* tanh|z| = -m / (2 + m) with m = expm1(-2|z|): accurate for small |z| too. The sign is z's     \
         * sign bit (copysign, a vectorizable bit operation), so tanh(+0) = +0 and tanh(-0) = -0 even    \
         * though m may be -0 there. */                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                                            \
            T zi = z[i];                                                                               \
            T m = expm1_nonpos_##SFX(-2 * ABS(zi));                                                    \
            a[i] = COPYSIGN(SFX)(-m / (2 + m), zi);                                                    \
        }                                                                                              \
    }                                                                                                  \
    ATTR static void relu_##SFX##_##TGT(const T *z, T *a, ptrdiff_t n) {                               \
        for (ptrdiff_t i = 0; i < n; i++) a[i] = SEL(SFX)(z[i] <= 0, 0, z[i]); /* NaN propagates */    \
    }                                                                                                  \
    ATTR static void elu_##SFX##_##TGT(const T *z, T *a, ptrdiff_t n, T alpha) {                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                                            \
            T zi = z[i];                                                                               \
            T m = alpha * expm1_nonpos_##SFX(SEL(SFX)(zi > 0, 0, zi));                                 \
            a[i] = SEL(SFX)(zi > 0, zi, m);                                                            \
        }                                                                                              \
    }                                                                                                  \
    ATTR static void backward_##SFX##_##TGT(cnn_act_t op, const T *dy, const T *a, T *out,            \
                                            ptrdiff_t n, T alpha) {                                    \
        ptrdiff_t i;                                                                                   \
        switch (op) {                                                                                  \
        case CNN_SIGMOID:                                                                              \
            for (i = 0; i < n; i++) out[i] = dy[i] * (a[i] * (1 - a[i]));                              \
            break;                                                                                     \
        case CNN_TANH:                                                                                 \
            for (i = 0; i < n; i++) out[i] = dy[i] * (1 - a[i] * a[i]);                                \
            break;                                                                                     \
        case CNN_RELU:                                                                                 \
            for (i = 0; i < n; i++) out[i] = SEL(SFX)(a[i] > 0, dy[i], 0);                             \
            break;                                                                                     \
        default: /* ELU: for z <= 0, d/dz alpha (e^z - 1) = alpha e^z = a + alpha */                   \
            for (i = 0; i < n; i++) {                                                                  \
                out[i] = SEL(SFX)(a[i] > 0, dy[i], dy[i] * (a[i] + alpha));                            \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    ATTR static void forward_##SFX##_##TGT(cnn_act_t op, const T *z, T *a, ptrdiff_t n, T alpha) {    \
        switch (op) {                                                                                  \
        case CNN_SIGMOID: sigmoid_##SFX##_##TGT(z, a, n); break;                                       \
        case CNN_TANH: tanh_##SFX##_##TGT(z, a, n); break;                                             \
        case CNN_RELU: relu_##SFX##_##TGT(z, a, n); break;                                             \
        default: elu_##SFX##_##TGT(z, a, n, alpha);                                                    \
        }                                                                                              \
    }

ACT_LOOPS(float, f32, absf, base, )
ACT_LOOPS(double, f64, absd, base, )

#if CNN_X86
#define AVX2_ATTR __attribute__((target("avx2,fma")))
ACT_LOOPS(float, f32, absf, avx2, AVX2_ATTR)
ACT_LOOPS(double, f64, absd, avx2, AVX2_ATTR)
#endif

/* The loops of each instruction-set level. */
static const struct {
    void (*forward_f32)(cnn_act_t, const float *, float *, ptrdiff_t, float);
    void (*forward_f64)(cnn_act_t, const double *, double *, ptrdiff_t, double);
    void (*backward_f32)(cnn_act_t, const float *, const float *, float *, ptrdiff_t, float);
    void (*backward_f64)(cnn_act_t, const double *, const double *, double *, ptrdiff_t, double);
} cnn_act_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {forward_f32_base, forward_f64_base, backward_f32_base, backward_f64_base},
#if CNN_X86
    [CNN_SIMD_AVX2] = {forward_f32_avx2, forward_f64_avx2, backward_f32_avx2, backward_f64_avx2},
    /* no AVX-512 loops yet (issue 10): the AVX2 ones */
    [CNN_SIMD_AVX512] = {forward_f32_avx2, forward_f64_avx2, backward_f32_avx2, backward_f64_avx2},
#else
    [CNN_SIMD_AVX2] = {forward_f32_base, forward_f64_base, backward_f32_base, backward_f64_base},
    [CNN_SIMD_AVX512] = {forward_f32_base, forward_f64_base, backward_f32_base, backward_f64_base},
#endif
};

static int cnn_act_baseline(void) { return CNN_SIMD_BASELINE; }

static cnn_simd_level_fn cnn_act_level = cnn_act_baseline;

void cnn_act_init(cnn_simd_level_fn simd_level) { cnn_act_level = simd_level; }

static inline int act_level(void) {
    const int level = cnn_act_level();
    return level >= 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE;
}

#define ACT_CNTX() (&cnn_act_table[act_level()])

void cnn_act_forward_f32(cnn_act_t op, const float *z, float *a, ptrdiff_t n, float alpha) {
    ACT_CNTX()->forward_f32(op, z, a, n, alpha);
}
void cnn_act_forward_f64(cnn_act_t op, const double *z, double *a, ptrdiff_t n, double alpha) {
    ACT_CNTX()->forward_f64(op, z, a, n, alpha);
}
void cnn_act_backward_f32(cnn_act_t op, const float *dy, const float *a, float *out, ptrdiff_t n, float alpha) {
    ACT_CNTX()->backward_f32(op, dy, a, out, n, alpha);
}
void cnn_act_backward_f64(cnn_act_t op, const double *dy, const double *a, double *out, ptrdiff_t n,
                          double alpha) {
    ACT_CNTX()->backward_f64(op, dy, a, out, n, alpha);
}
