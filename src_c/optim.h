/* The training step's elementwise kernels (kernels/_optim.pyx): SGD's and Adam's update of one parameter,
 * float32 and float64, over n contiguous elements, one loop per instruction-set level (cpu.h). No multiply-add is fused (optim.c is built with -ffp-contract=off and the
 * loops use none), so every level rounds as NumPy's ufuncs do: results are equal bit for bit, but that SGD
 * takes subnormal values as zero (optim.c says why and what that changes; Adam's ufuncs floor its moments
 * as its loops do). */
#ifndef CNN_CORE_OPTIM_H
#define CNN_CORE_OPTIM_H
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

/* Once, at import (the _optim module): where the loops read the level in use; baseline until then. */
void cnn_optim_init(cnn_simd_level_fn simd_level);

/* p -= lr * step, PyTorch's SGD (cnn_core.optim.SGD's docstring), in place:
 *   g' = g + wd * p                                        (use_wd)
 *   mode 1: buf = g'; 2: buf = mu * buf + g'; 3: buf = mu * buf + damp1 * g'; 0: no momentum buffer
 *   step = g' + mu * buf (nesterov) or buf (mode != 0), else g'
 * buf may be NULL when mode == 0. */
void cnn_sgd_f32(float *p, const float *g, float *buf, ptrdiff_t n, float lr, float mu, float damp1, float wd,
                 int use_wd, int mode, int nesterov);
void cnn_sgd_f64(double *p, const double *g, double *buf, ptrdiff_t n, double lr, double mu, double damp1,
                 double wd, int use_wd, int mode, int nesterov);

/* Adam's (and AdamW's) scalars for one step, each already rounded to the arrays' dtype as NumPy rounds a
 * Python float operand: */
#define CNN_ADAM_PARAMS(T)                                                                                 \
    struct {                                                                                               \
        T beta1, one_minus_beta1, beta2, one_minus_beta2;                                                  \
        T wd;           /* decay_mode 1: g' = g + p * wd */                                                \
        T decay;        /* decay_mode 2: p' = p * (1 - lr * wd) */                                         \
        T bias2_sqrt;   /* sqrt(1 - beta2**t) */                                                           \
        T eps;                                                                                             \
        T step_size;    /* lr / (1 - beta1**t) */                                                          \
        int decay_mode; /* 0 none, 1 coupled (Adam), 2 decoupled (AdamW) */                                \
    }
typedef CNN_ADAM_PARAMS(float) cnn_adam_params_f32;
typedef CNN_ADAM_PARAMS(double) cnn_adam_params_f64;

/* One Adam step of one parameter, cnn_core.optim.Adam's formulas in the order of its NumPy sequence:
 *   g' = g + p * wd (mode 1);  p' = p * decay (mode 2)
 *   m = m * beta1 + g' * (1 - beta1);  v = v * beta2 + g' * g' * (1 - beta2)
 *   v_max = max(v_max, v), used for v below (vmax != NULL: amsgrad)
 *   p = p' - m / (sqrt(v) / bias2_sqrt + eps) * step_size */
void cnn_adam_f32(float *p, const float *g, float *m, float *v, float *vmax, ptrdiff_t n,
                  const cnn_adam_params_f32 *h);
void cnn_adam_f64(double *p, const double *g, double *m, double *v, double *vmax, ptrdiff_t n,
                  const cnn_adam_params_f64 *h);
/* The value below which Adam stores v (and v_max) as zero for these eps and bias2_sqrt: the smallest normal
 * number, or 0 where v keeps its subnormals (optim.c says when); m's is always the smallest normal number. */
float cnn_adam_v_floor_f32(float eps, float bias2_sqrt);
double cnn_adam_v_floor_f64(double eps, double bias2_sqrt);

#endif
