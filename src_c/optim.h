/* The training step's elementwise kernels (kernels/_optim.pyx): SGD's update of one parameter and the
 * finiteness scan of the gradients, float32 and float64, over n contiguous elements, one loop per
 * instruction-set level (cpu.h). No multiply-add is fused (optim.c is built with -ffp-contract=off and the
 * loops use none), so every level rounds as NumPy's ufuncs do: results are equal bit for bit. */
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

/* 1 when one of the n values (as their bit patterns) is NaN or +-inf: exponent bits all ones. */
int cnn_nonfinite_f32(const uint32_t *b, ptrdiff_t n);
int cnn_nonfinite_f64(const uint64_t *b, ptrdiff_t n);
#endif
