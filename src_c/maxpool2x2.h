/* Max pooling of one (n, c) plane with 2x2 windows at stride 2 (AVX2; see maxpool2x2.c).
 *
 * x is the H x W plane (row-major), out and argmax the OH x OW outputs (OH = H / 2, OW = W / 2 or fewer);
 * argmax gets the flat index h*W + w of each window's first maximum (a NaN wins and propagates). The plane
 * functions return 1 when they did the work, 0 when the instruction-set level in use has no such kernel
 * (baseline; the caller then runs its general loop).
 */
#ifndef CNN_CORE_MAXPOOL2X2_H
#define CNN_CORE_MAXPOOL2X2_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

int cnn_smaxpool2x2_plane(const float *x, float *out, int64_t *argmax, ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW);
int cnn_dmaxpool2x2_plane(const double *x, double *out, int64_t *argmax, ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW);

/* Once, at import (the _pooling module): where the kernels read the instruction-set level in use
 * (cnn_core._config's process-wide one); baseline until then. */
void cnn_maxpool2x2_init(cnn_simd_level_fn simd_level);

#ifdef __cplusplus
}
#endif

#endif
