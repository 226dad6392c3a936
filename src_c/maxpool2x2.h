/* Max pooling of one (n, c) plane with 2x2 windows at stride 2 (AVX2; see maxpool2x2.c).
 *
 * x is the H x W plane (row-major), out and argmax the OH x OW outputs (OH = H / 2, OW = W / 2 or fewer);
 * argmax gets the flat index h*W + w of each window's first maximum (a NaN wins and propagates). The plane
 * functions return 1 when they did the work, 0 when the CPU lacks AVX2 or the SIMD path is switched off
 * (the caller then runs its general loop).
 */
#ifndef CNN_CORE_MAXPOOL2X2_H
#define CNN_CORE_MAXPOOL2X2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int cnn_smaxpool2x2_plane(const float *x, float *out, int64_t *argmax, ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW);
int cnn_dmaxpool2x2_plane(const double *x, double *out, int64_t *argmax, ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW);

/* 1 when the AVX2 path is in use. */
int cnn_maxpool2x2_simd(void);
/* Allow (1) or forbid (0) the AVX2 path; returns whether it is in use. For tests of the general loop;
 * not thread-safe against concurrent pooling calls. */
int cnn_maxpool2x2_set_simd(int enable);

#ifdef __cplusplus
}
#endif

#endif
