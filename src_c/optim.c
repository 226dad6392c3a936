/* SGD's and Adam's update, one loop per dtype and instruction-set level (see optim.h). The loops are plain
 * C that the compiler vectorizes for each target: a literal use_wd, mode and nesterov give each case its own
 * branch-free loop (one shared loop with the tests inside ran scalar, 2.5x slower than NumPy's four ufuncs
 * on a 100 x 784 weight). Measured on a Zen 4 core (CPU time, loaded
 * machine), a 100 x 784 float32 weight: SGD with momentum 13.6 us baseline, 11.5 AVX2 and AVX-512 (memory
 * bound: p, g and the buffer are ~1 MB together); Adam 34.7 us (AVX-512) against 138.8 us for the ufuncs. */
#include "optim.h"

#include <float.h>
#include <math.h>
#if CNN_X86
#include <xmmintrin.h>
#endif

#define ALWAYS_INLINE __attribute__((always_inline)) static inline

#define SGD_LOOPS(T, SFX, TGT, ATTR)                                                                       \
    ATTR ALWAYS_INLINE void sgd_loop_##SFX##_##TGT(T *p, const T *g, T *buf, ptrdiff_t n, T lr, T mu,      \
                                                    T damp1, T wd, const int use_wd, const int mode,       \
                                                    const int nesterov)                                    \
    {                                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) {                                                                \
            T gi = g[i];                                                                                   \
            if (use_wd)                                                                                    \
                gi = gi + p[i] * wd;                                                                       \
            if (mode == 1)                                                                                 \
                buf[i] = gi;                                                                               \
            else if (mode == 2)                                                                            \
                buf[i] = buf[i] * mu + gi;                                                                 \
            else if (mode == 3)                                                                            \
                buf[i] = buf[i] * mu + gi * damp1;                                                         \
            if (mode != 0)                                                                                 \
                gi = nesterov ? gi + buf[i] * mu : buf[i];                                                 \
            p[i] = p[i] - gi * lr;                                                                         \
        }                                                                                                  \
    }                                                                                                      \
    /* mode with a literal use_wd and nesterov */                                                          \
    ATTR ALWAYS_INLINE void sgd_mode_##SFX##_##TGT(T *p, const T *g, T *buf, ptrdiff_t n, T lr, T mu,      \
                                                    T damp1, T wd, int use_wd, const int mode,             \
                                                    int nesterov)                                          \
    {                                                                                                      \
        if (use_wd && nesterov)                                                                            \
            sgd_loop_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, 1, mode, 1);                           \
        else if (use_wd)                                                                                   \
            sgd_loop_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, 1, mode, 0);                           \
        else if (nesterov)                                                                                 \
            sgd_loop_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, 0, mode, 1);                           \
        else                                                                                               \
            sgd_loop_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, 0, mode, 0);                           \
    }                                                                                                      \
    ATTR static void sgd_##SFX##_##TGT(T *p, const T *g, T *buf, ptrdiff_t n, T lr, T mu, T damp1, T wd,   \
                                       int use_wd, int mode, int nesterov)                                 \
    {                                                                                                      \
        switch (mode) {                                                                                    \
        case 0: sgd_mode_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, use_wd, 0, 0); break;              \
        case 1: sgd_mode_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, use_wd, 1, nesterov); break;       \
        case 2: sgd_mode_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, use_wd, 2, nesterov); break;       \
        default: sgd_mode_##SFX##_##TGT(p, g, buf, n, lr, mu, damp1, wd, use_wd, 3, nesterov);             \
        }                                                                                                  \
    }

/* Adam: the operations of cnn_core.optim.Adam's ufunc sequence, in its order and rounding (decay 0: none,
 * 1: coupled, g + p * wd; 2: decoupled, p * (1 - lr * wd) first), each case its own loop. np.maximum's
 * NaN propagation for amsgrad: a NaN in either operand is the result. A moment below its floor is stored
 * as zero (m_floor, v_floor: cnn_adam_f32's comment says why and when). */
#define ADAM_LOOPS(T, SFX, SQRT, FABS, TGT, ATTR)                                                          \
    ATTR ALWAYS_INLINE void adam_loop_##SFX##_##TGT(T *p, const T *g, T *m, T *v, T *vmax, ptrdiff_t n,    \
                                                     const cnn_adam_params_##SFX *h, T m_floor, T v_floor, \
                                                     const int decay, const int ams)                       \
    {                                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) {                                                                \
            T pi = p[i], gi = g[i];                                                                        \
            if (decay == 1)                                                                                \
                gi = gi + pi * h->wd;                                                                      \
            else if (decay == 2)                                                                           \
                pi = pi * h->decay;                                                                        \
            T mi = m[i] * h->beta1 + gi * h->one_minus_beta1;                                              \
            T vi = v[i] * h->beta2 + gi * gi * h->one_minus_beta2;                                         \
            mi = FABS(mi) < m_floor ? (T)0 : mi;                                                           \
            vi = FABS(vi) < v_floor ? (T)0 : vi;                                                           \
            m[i] = mi;                                                                                     \
            v[i] = vi;                                                                                     \
            if (ams) {                                                                                     \
                T a = vmax[i];                                                                             \
                a = FABS(a) < v_floor ? (T)0 : a;                                                          \
                vi = a != a ? a : vi != vi ? vi : a > vi ? a : vi;                                         \
                vmax[i] = vi;                                                                              \
            }                                                                                              \
            const T t = mi / (SQRT(vi) / h->bias2_sqrt + h->eps);                                          \
            p[i] = pi - t * h->step_size;                                                                  \
        }                                                                                                  \
    }                                                                                                      \
    ATTR static void adam_##SFX##_##TGT(T *p, const T *g, T *m, T *v, T *vmax, ptrdiff_t n,                \
                                        const cnn_adam_params_##SFX *h, T m_floor, T v_floor)             \
    {                                                                                                      \
        const int ams = vmax != NULL;                                                                      \
        switch (h->decay_mode * 2 + ams) {                                                                 \
        case 0: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 0, 0); break;            \
        case 1: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 0, 1); break;            \
        case 2: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 1, 0); break;            \
        case 3: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 1, 1); break;            \
        case 4: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 2, 0); break;            \
        default: adam_loop_##SFX##_##TGT(p, g, m, v, vmax, n, h, m_floor, v_floor, 2, 1);                  \
        }                                                                                                  \
    }

#define OPTIM_LOOPS(TGT, ATTR)                                                                             \
    SGD_LOOPS(float, f32, TGT, ATTR)                                                                       \
    SGD_LOOPS(double, f64, TGT, ATTR)                                                                      \
    ADAM_LOOPS(float, f32, sqrtf, fabsf, TGT, ATTR)                                                        \
    ADAM_LOOPS(double, f64, sqrt, fabs, TGT, ATTR)

OPTIM_LOOPS(base, )
#if CNN_X86
OPTIM_LOOPS(avx2, __attribute__((target("avx2"))))
OPTIM_LOOPS(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512"))))
#endif

/* The loops of each instruction-set level. */
static const struct {
    void (*sgd_f32)(float *, const float *, float *, ptrdiff_t, float, float, float, float, int, int, int);
    void (*sgd_f64)(double *, const double *, double *, ptrdiff_t, double, double, double, double, int, int,
                    int);
    void (*adam_f32)(float *, const float *, float *, float *, float *, ptrdiff_t, const cnn_adam_params_f32 *,
                     float, float);
    void (*adam_f64)(double *, const double *, double *, double *, double *, ptrdiff_t, const cnn_adam_params_f64 *,
                     double, double);
} cnn_optim_table[CNN_SIMD_NLEVELS] = {
#define OPTIM_ROW(TGT) {sgd_f32_##TGT, sgd_f64_##TGT, adam_f32_##TGT, adam_f64_##TGT}
    [CNN_SIMD_BASELINE] = OPTIM_ROW(base),
#if CNN_X86
    [CNN_SIMD_AVX2] = OPTIM_ROW(avx2),
    [CNN_SIMD_AVX512] = OPTIM_ROW(avx512),
#else
    [CNN_SIMD_AVX2] = OPTIM_ROW(base),
    [CNN_SIMD_AVX512] = OPTIM_ROW(base),
#endif
#undef OPTIM_ROW
};

static int cnn_optim_baseline(void) { return CNN_SIMD_BASELINE; }

static cnn_simd_level_fn cnn_optim_level = cnn_optim_baseline;

void cnn_optim_init(cnn_simd_level_fn simd_level) { cnn_optim_level = simd_level; }

#define OPTIM_CNTX() (&cnn_optim_table[optim_level()])

static inline int optim_level(void)
{
    const int level = cnn_optim_level();
    return level >= 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE;
}

/* SGD runs with subnormal values taken as zero: MXCSR's DAZ (subnormal operands read as zero) and FTZ
 * (subnormal results written as zero) bits, set on the running thread for the loop and restored after it.
 * Why: where a weight's gradient is zero step after step (a dead ReLU unit's row), its momentum buffer
 * decays by mu per step down through the subnormal range, and every vector instruction touching a
 * subnormal takes a microcode assist. An MLP 784-100-10 on Fashion-MNIST (SGD, lr 0.05, momentum 0.9, one
 * thread, 2-vCPU Xeon model 0xCF at AVX-512): 3,200-4,000 subnormal entries in the first weight's buffer
 * after each epoch, and the step took 36, 71, 84, 88 us in epochs 1-4; with the modes set for the whole
 * thread, 28, 29, 28, 27 us, epochs 2-4 0.28, 0.28, 0.26 s against 0.31, 0.35, 0.35 s, the same training
 * losses to 6 digits; with them set for this loop alone, 32-34 us in every epoch (one thread, the VM in a
 * slow phase) and 21-31 us on two threads. The model's other kernels are not flushed: only this loop.
 * What it changes: a buffer entry below the smallest normal (2^-126 in float32, 2^-1022 in float64) moves
 * its parameter by lr times that, less than half an ulp of any parameter above ~2^-100 (float32, lr <= 1),
 * so the parameters keep NumPy's bits unless they are that small themselves; such buffer entries reach
 * zero sooner. SGD has no division, so no result grows from a flushed value (Adam, which has one, floors its
 * moments by compares instead: below). x86 only (elsewhere nothing is set). */
#if CNN_X86
#define MXCSR_DAZ_FTZ 0x8040u
#define FLUSH_SUBNORMALS(call)                                                                             \
    do {                                                                                                   \
        const unsigned csr_ = _mm_getcsr();                                                                \
        _mm_setcsr(csr_ | MXCSR_DAZ_FTZ);                                                                  \
        call;                                                                                              \
        _mm_setcsr(csr_);                                                                                  \
    } while (0)
#else
#define FLUSH_SUBNORMALS(call) call
#endif

void cnn_sgd_f32(float *p, const float *g, float *buf, ptrdiff_t n, float lr, float mu, float damp1, float wd,
                 int use_wd, int mode, int nesterov)
{
    FLUSH_SUBNORMALS(OPTIM_CNTX()->sgd_f32(p, g, buf, n, lr, mu, damp1, wd, use_wd, mode, nesterov));
}

void cnn_sgd_f64(double *p, const double *g, double *buf, ptrdiff_t n, double lr, double mu, double damp1,
                 double wd, int use_wd, int mode, int nesterov)
{
    FLUSH_SUBNORMALS(OPTIM_CNTX()->sgd_f64(p, g, buf, n, lr, mu, damp1, wd, use_wd, mode, nesterov));
}

/* Adam stores a moment below the smallest normal number (FLT_MIN, DBL_MIN) as zero, by a compare in the
 * loop (no change of the floating-point mode): m decays by beta1 per step where the gradient stays zero
 * (a dead ReLU unit's weights), v by beta2 (0.999: thousands of steps) through the subnormals, where every
 * vector instruction reading one takes a microcode assist. An MLP 784-100-10 on Fashion-MNIST (Adam, lr
 * 1e-3, one thread, 2-vCPU Xeon model 0xCF): the step took 103, 196, 185, 210 us in epochs 1-4, and
 * 98, 83, 75, 78 us with the moments floored (epochs 2-4 0.47-0.63 s against 0.35-0.43 s), the same
 * training losses to 6 digits.
 * What it changes, and when v is spared: p - m / (sqrt(v) / bias2_sqrt + eps) * step_size. A zeroed m
 * (|m| < FLT_MIN) moves p by at most FLT_MIN / eps * step_size less: below half an ulp of any p above
 * ~2^-100 / eps * step_size. A zeroed v changes sqrt(v) / bias2_sqrt by less than sqrt(FLT_MIN) /
 * bias2_sqrt; where that is below a quarter ulp of eps, the denominator rounds to eps either way (bit for
 * bit the same); otherwise (a tiny eps, or bias2_sqrt tiny: beta2 near 1 in the first steps) v and v_max
 * keep their subnormals (v_floor 0). cnn_core.optim.Adam's ufuncs apply the same floors, from these
 * functions. */
float cnn_adam_v_floor_f32(float eps, float bias2_sqrt)
{
    return eps > 0 && sqrtf(FLT_MIN) / bias2_sqrt < (nextafterf(eps, INFINITY) - eps) / 4 ? FLT_MIN : 0.0f;
}

double cnn_adam_v_floor_f64(double eps, double bias2_sqrt)
{
    return eps > 0 && sqrt(DBL_MIN) / bias2_sqrt < (nextafter(eps, INFINITY) - eps) / 4 ? DBL_MIN : 0.0;
}

void cnn_adam_f32(float *p, const float *g, float *m, float *v, float *vmax, ptrdiff_t n, const cnn_adam_params_f32 *h)
{
    OPTIM_CNTX()->adam_f32(p, g, m, v, vmax, n, h, FLT_MIN, cnn_adam_v_floor_f32(h->eps, h->bias2_sqrt));
}

void cnn_adam_f64(double *p, const double *g, double *m, double *v, double *vmax, ptrdiff_t n,
                  const cnn_adam_params_f64 *h)
{
    OPTIM_CNTX()->adam_f64(p, g, m, v, vmax, n, h, DBL_MIN, cnn_adam_v_floor_f64(h->eps, h->bias2_sqrt));
}
