/* Winograd F(2x2, 3x3) convolution (Lavin & Gray 2016): stride 1, dilation 1, one group, any padding.
 *
 * Each 2x2 block of outputs (a tile) comes from a 4x4 input patch d: Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 * 16 multiplies per tile and channel pair instead of 36 (2.25x fewer). Over a batch the elementwise products
 * become 16 GEMMs, one per position xi of the 4x4 transformed tile:
 *   U[xi] (F, C) = (G g G^T)[xi] per filter and channel    (cnn_*wino_weights, once per weight update)
 *   V[xi] (C, T) = (B^T d B)[xi] per channel and tile      (input transform, T tiles)
 *   M[xi] (F, T) = U[xi] @ V[xi]                           (the caller's GEMM)
 *   y = A^T M A per filter and tile                       (output transform, + bias)
 * with  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *       A^T = [1 1 1 0; 0 1 -1 -1].
 * The input gradient of a 3x3 stride-1 convolution is itself one (a 3x3 convolution of delta with the
 * flipped kernel, channels transposed, padding 2 - p): cnn_*wino_weights with `flip` set transforms the
 * weight for it. The weight gradient is the adjoint of the forward transforms: G^T [sum over tiles
 * (A dy A^T) .* (B^T d B)] G, 16 NT products summing over the tiles (cnn_*wino_dw3x3, cnn_*wino_dw_finish).
 *
 * Layer-free: pointers, sizes and strides; no threads of its own (a caller runs calls on disjoint samples in
 * parallel, each with its own scratch); the GEMM is passed in (cnn_sgemm's signature, called serially:
 * 16 products per call) so that every extension module can use the copy of src_c/gemm.c it links.
 * Rounding: the transforms add and halve (B, A: sums of 2-4 terms; G: halves, exact), so float32 results
 * differ from a direct convolution by a few units in the last place of the products' magnitude; see
 * tests/test_conv_winograd.py for the bound tested.
 */
#ifndef CNN_CORE_WINOGRAD_H
#define CNN_CORE_WINOGRAD_H

#include <stddef.h>

#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*cnn_sgemm_fn)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                            float beta, float *c, ptrdiff_t ldc);
typedef int (*cnn_dgemm_fn)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                            double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
                            double beta, double *c, ptrdiff_t ldc);

/* c (m, n) += a (m, k) @ b (n, k)^T, rows of both contiguous along k (cnn_sgemm_nt_acc's signature). */
typedef int (*cnn_sgemm_nt_fn)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                               const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);
typedef int (*cnn_dgemm_nt_fn)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                               const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc);

/* Once, at import: where the kernels read the instruction-set level in use (baseline until then). */
void cnn_wino_init(cnn_simd_level_fn simd_level);

/* u (16, F, C) from w (F, C, 3, 3) contiguous; with flip set, u (16, C, F) of the input-gradient
 * convolution, whose kernel is w'[c, f, i, j] = w[f, c, 2 - i, 2 - j] (C outputs, F inputs). Only rows
 * p0 <= p < p1 of the 16 matrices (p < F, or p < C flipped): each element comes from its own filter-channel
 * pair, so callers split the rows between threads and every split gives the same bits. */
void cnn_swino_weights(const float *w, ptrdiff_t F, ptrdiff_t C, int flip, float *u, ptrdiff_t p0, ptrdiff_t p1);
void cnn_dwino_weights(const double *w, ptrdiff_t F, ptrdiff_t C, int flip, double *u, ptrdiff_t p0,
                       ptrdiff_t p1);

/* Elements of scratch cnn_*wino_conv3x3 needs for n samples of C input and F output channels; elements of
 * the transformed input V (16, C, T) for n samples (cnn_*wino_conv3x3's keep, cnn_*wino_dw3x3's kept). */
ptrdiff_t cnn_wino_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW);
ptrdiff_t cnn_wino_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW);

/* The transforms of cnn_*wino_conv3x3 on their own, for a caller that runs the 16 products itself (the
 * inference plan, src_c/plan_template.h): the input transform of one channel's planes in n samples,
 * V[xi*vs + s*TH*TW + th*TW + tw] = (B^T d B)[xi] (TH, TW = the tiles of an OH x OW output; x, xs_n, H, W, ph,
 * pw as for cnn_*wino_conv3x3; line: cnn_wino_line_in(OH, OW) elements), and the output transform of one
 * filter's tiles in n samples, y + s*ys_n (OH x OW) = A^T m A + b from m[xi*ms + t] (line:
 * cnn_wino_line_out(n, OH, OW) elements). Each runs at the instruction-set level cnn_wino_init's source gives. */
ptrdiff_t cnn_wino_line_in(ptrdiff_t OH, ptrdiff_t OW);
ptrdiff_t cnn_wino_line_out(ptrdiff_t n, ptrdiff_t OH, ptrdiff_t OW);
void cnn_swino_in(ptrdiff_t n, const float *x, ptrdiff_t xs_n, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                  ptrdiff_t OH, ptrdiff_t OW, float *v, ptrdiff_t vs, float *line);
void cnn_dwino_in(ptrdiff_t n, const double *x, ptrdiff_t xs_n, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
                  ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *v, ptrdiff_t vs, double *line);
void cnn_swino_out(ptrdiff_t n, const float *m, ptrdiff_t ms, float b, float *y, ptrdiff_t ys_n, ptrdiff_t OH,
                   ptrdiff_t OW, float *line);
void cnn_dwino_out(ptrdiff_t n, const double *m, ptrdiff_t ms, double b, double *y, ptrdiff_t ys_n, ptrdiff_t OH,
                   ptrdiff_t OW, double *line);

/* y[s, f, oh, ow] = bias[f] + sum_{c,i,j} u-kernel[f, c, i, j] * x[s, c, oh - ph + i, ow - pw + j] for
 * s < n, f < F, oh < OH, ow < OW, x taken as zero outside its H x W planes (ph, pw may be any integers:
 * the padding before; OH, OW bound the padding after). x: sample s, channel c at x + s*xs_n + c*xs_c,
 * rows W apart; y: sample s, filter f at y + s*ys_n + f*ys_f, rows OW apart; bias may be NULL.
 * u from cnn_*wino_weights (16, F, C). keep: NULL, or where the transformed input V goes instead of the
 * scratch (cnn_wino_vsize(n, C, OH, OW) elements), for a later cnn_*wino_dw3x3 of the same x to read as
 * its kept. Returns 0, or the GEMM's nonzero status. */
int cnn_swino_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                      ptrdiff_t xs_c, ptrdiff_t F, const float *u, const float *bias, ptrdiff_t ph, ptrdiff_t pw,
                      ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ys_n, ptrdiff_t ys_f, float *keep,
                      float *scratch, cnn_sgemm_fn gemm);
int cnn_dwino_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                      ptrdiff_t xs_c, ptrdiff_t F, const double *u, const double *bias, ptrdiff_t ph,
                      ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                      double *keep, double *scratch, cnn_dgemm_fn gemm);

/* The weight gradient of the same convolution, in the transformed domain: du (16, F, C) +=
 * sum over the n samples' tiles of (A dy A^T)[xi] (B^T d B)[xi], dy the output gradient (sample s, filter f at
 * dy + s*ys_n + f*ys_f, OH x OW, rows OW apart), x, ph, pw, OH, OW as for cnn_*wino_conv3x3 (same scratch);
 * kept: NULL (V transformed from x), or V as a cnn_*wino_conv3x3 of these n samples of x left it in its keep
 * (x is then not read); then cnn_*wino_dw_finish adds G^T du G (F, C, 3, 3) to gw for the filter-channel
 * pairs q0 <= f*C + c < q1 (each from its own pair: callers split them between threads), du being the sum,
 * added in slot order, of nslots partial sums ss elements apart (one per range of chunks). The 16 products
 * (F, T) @ (C, T)^T sum over the tiles: an NT product (gemm_nt). Returns 0, or the GEMM's nonzero status. */
int cnn_swino_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                    ptrdiff_t xs_c, ptrdiff_t F, const float *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                    ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *du, const float *kept, float *scratch,
                    cnn_sgemm_nt_fn gemm_nt);
int cnn_dwino_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                    ptrdiff_t xs_c, ptrdiff_t F, const double *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                    ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *du, const double *kept, double *scratch,
                    cnn_dgemm_nt_fn gemm_nt);
void cnn_swino_dw_finish(const float *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C, float *gw,
                         ptrdiff_t q0, ptrdiff_t q1);
void cnn_dwino_dw_finish(const double *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C, double *gw,
                         ptrdiff_t q0, ptrdiff_t q1);

/* Winograd F(4x4, 3x3): the same interface on 6x6 tiles 4 apart (36 products, 4x fewer multiplies than a
 * direct convolution per full tile; 7x7 outputs take 2x2 tiles):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * u is (36, F, C) (flipped: (36, C, F)), du (36, F, C), V (36, C, T) (cnn_wino4_vsize elements). The larger
 * coefficients (up to 8 in A^T, 5 in B^T) and the inexact 1/6, 1/12, 1/24 of G make its float32 rounding
 * larger than F(2x2, 3x3)'s relative to the outputs (tests/test_conv_winograd.py states the bound). */
void cnn_swino4_weights(const float *w, ptrdiff_t F, ptrdiff_t C, int flip, float *u, ptrdiff_t p0,
                        ptrdiff_t p1);
void cnn_dwino4_weights(const double *w, ptrdiff_t F, ptrdiff_t C, int flip, double *u, ptrdiff_t p0,
                        ptrdiff_t p1);
ptrdiff_t cnn_wino4_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW);
ptrdiff_t cnn_wino4_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW);
int cnn_swino4_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                       ptrdiff_t xs_c, ptrdiff_t F, const float *u, const float *bias, ptrdiff_t ph, ptrdiff_t pw,
                       ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ys_n, ptrdiff_t ys_f, float *keep,
                       float *scratch, cnn_sgemm_fn gemm);
int cnn_dwino4_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                       ptrdiff_t xs_c, ptrdiff_t F, const double *u, const double *bias, ptrdiff_t ph,
                       ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                       double *keep, double *scratch, cnn_dgemm_fn gemm);
int cnn_swino4_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                     ptrdiff_t xs_c, ptrdiff_t F, const float *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                     ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *du, const float *kept, float *scratch,
                     cnn_sgemm_nt_fn gemm_nt);
int cnn_dwino4_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                     ptrdiff_t xs_c, ptrdiff_t F, const double *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                     ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *du, const double *kept, double *scratch,
                     cnn_dgemm_nt_fn gemm_nt);
void cnn_swino4_dw_finish(const float *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C, float *gw,
                          ptrdiff_t q0, ptrdiff_t q1);
void cnn_dwino4_dw_finish(const double *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C, double *gw,
                          ptrdiff_t q0, ptrdiff_t q1);

#ifdef __cplusplus
}
#endif

#endif
