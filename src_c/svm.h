/* The two passes of an SMO step over the active slots (LIBSVM's solver; cnn_core/kernels/_svm.pyx):
 * the gradient update fused with the next maximal violating i, and the second-order choice of j.
 *
 * Slot s holds variable ix[s] of a row of K (float32 or float64: K's own precision); g, up, low and q are
 * per-slot float64 arrays (g = -y G, up / low = 0 for members of I_up / I_low, -inf for the others, q = K's
 * diagonal). Both passes return the LAST slot attaining their optimum, as a scalar loop comparing with >= /
 * <= picks it, and compute every value with the scalar loop's operations in its order (no fused
 * multiply-add): every instruction-set level gives the same bits, so the solver's path does not depend on
 * the level.
 */
#ifndef CNN_CORE_SVM_H
#define CNN_CORE_SVM_H

#include <stddef.h>

#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* g[s] -= Ki[ix[s]] * di + Kj[ix[s]] * dj for s < m; returns the last s maximizing g[s] + up[s], with that
 * maximum in *gmax, or -1 (and *gmax = -inf) when every g[s] + up[s] is -inf or m == 0. */
ptrdiff_t cnn_ssvm_update(const float *Ki, const float *Kj, const int *ix, ptrdiff_t m, double di, double dj,
                          double *g, const double *up, double *gmax);
ptrdiff_t cnn_dsvm_update(const double *Ki, const double *Kj, const int *ix, ptrdiff_t m, double di, double dj,
                          double *g, const double *up, double *gmax);

/* With lv_s = low[s] - g[s] (y G of slot s, -inf outside I_low): *gmax2 = max_s lv_s, and returns the last s
 * minimizing obj_s = -(gd_s * gd_s) / quad_s over the slots with gd_s = Gmax + lv_s > 0, where quad_s =
 * Kii + q[s] - 2 Ki[ix[s]] (tau when <= 0); -1 when there is no such slot. */
ptrdiff_t cnn_ssvm_select(const float *Ki, const int *ix, ptrdiff_t m, double Kii, double Gmax, double tau,
                          const double *g, const double *low, const double *q, double *gmax2);
ptrdiff_t cnn_dsvm_select(const double *Ki, const int *ix, ptrdiff_t m, double Kii, double Gmax, double tau,
                          const double *g, const double *low, const double *q, double *gmax2);

/* Once, at import (the _svm module): where the kernels read the instruction-set level in use
 * (cnn_core._config's process-wide one); baseline until then. */
void cnn_svm_init(cnn_simd_level_fn simd_level);

#ifdef __cplusplus
}
#endif

#endif
