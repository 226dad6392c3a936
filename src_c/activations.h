/* Elementwise activations and their backward pieces, float32 and float64, over n contiguous elements.
 * Output buffers may be the very same buffer as an input (in place); no other overlap is allowed. */
#ifndef CNN_CORE_ACTIVATIONS_H
#define CNN_CORE_ACTIVATIONS_H
#include <stddef.h>

#include "cpu.h"

typedef enum { CNN_SIGMOID = 0, CNN_TANH = 1, CNN_RELU = 2, CNN_ELU = 3 } cnn_act_t;

/* Once, at import (the _activations module): where the loops read the instruction-set level in use
 * (cnn_core._config's process-wide one); baseline until then. */
void cnn_act_init(cnn_simd_level_fn simd_level);

void cnn_act_forward_f32(cnn_act_t op, const float *z, float *a, ptrdiff_t n, float alpha);
void cnn_act_forward_f64(cnn_act_t op, const double *z, double *a, ptrdiff_t n, double alpha);
void cnn_act_backward_f32(cnn_act_t op, const float *dy, const float *a, float *out, ptrdiff_t n, float alpha);
void cnn_act_backward_f64(cnn_act_t op, const double *dy, const double *a, double *out, ptrdiff_t n,
                          double alpha);
#endif
