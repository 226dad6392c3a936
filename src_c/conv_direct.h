/* Direct convolution for few-channel stride-1 convolutions in training (LeNet-5's 1 -> 6 and 6 -> 16 5x5):
 * forward with bias, weight and bias gradient, and the input gradient, without im2col columns or GEMM packing.
 *
 * A sample's input is copied into KW column-shifted, zero-padded copies xs[j][c][r][q] = x[c][r - PH][q + j - PW]
 * (r < Hp = OH + KH - 1, q < OW): output position p = oh*OW + ow reads tap (c, i, j) at
 * xs + j*S + c*Hp*OW + i*OW + p (S = C*Hp*OW), so the taps of consecutive outputs are contiguous vectors and
 * every position computed is an output (a KW-fold copy where im2col makes a KH*KW-fold one).
 *   forward   z[f, p] = b[f] + sum_{c,i,j} w[f, c, i, j] xs[j, c, i*OW + p]
 *             tile: JF filters x VP vectors of positions, acc[j][v] += w[tap][j] * xs[tap + v*VL]
 *   dW        dW[f, (c,i,j)] += sum_p dz[f, p] xs[j, c, i*OW + p], dz zero past the OH*OW outputs;
 *             tile: WJF filters x WJK taps of vector accumulators over a group of samples, summed across lanes
 *   dX        the adjoint of the forward, gathered: dxs[c*KW + j][r*OW + q] = sum_{f,i} w[f, c, i, j] dz[f, (r-i)*OW + q]
 *             (dz zero outside its rows), then folded back, dx[c, h, w] = sum_j dxs[c*KW + j][h + PH, w + PW - j];
 *             tile: XJ planes (c, j) x X_VP vectors of positions, each accumulated over the F filters and KH rows
 *             in registers and stored once (a zero frame of KH-1 rows around dz: (OH + KH - 1) / OH times the
 *             products of a scatter of each output's, without its read-modify-writes of dxs)
 * Filters (and dW's taps, dX's planes) are padded up to whole tiles with zero weights (zero rows of dz), whose
 * results are dropped; positions up to whole vectors (Pw), the extra outputs dropped (dz is zero there). The
 * loops are compiled once per instruction-set level of cpu.h (conv_direct_template.h, vectors of the level's
 * width) and picked by the `level` the caller passes, the same for packing and running.
 *
 * Layer-free: pointers and sizes, no threads of its own (the caller runs calls on disjoint samples in
 * parallel, each with its own scratch; dW sums the samples of one call in order, so a caller that gives each
 * of a fixed set of slots a fixed range of samples and adds the slots in order gets results independent of
 * its thread count).
 */
#ifndef CNN_CORE_CONV_DIRECT_H
#define CNN_CORE_CONV_DIRECT_H

#include <stddef.h>

#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One convolution C -> F, input H x W, padding PH, PW before (any padding after: OH, OW bound it),
 * output OH x OW, stride 1, dilation 1; the rest filled in by cnn_dconv_geom_init for a level. */
typedef struct {
    ptrdiff_t C, H, W, F, KH, KW, PH, PW, OH, OW;
    int level;
    ptrdiff_t Hp, S, K;        /* padded rows; elements of one shifted copy (C*Hp*OW); taps C*KH*KW */
    ptrdiff_t JF, VP, Fp;      /* forward tile: JF filters x VP vectors; filters rounded up to whole tiles */
    ptrdiff_t WJF, WJK, Fq, Kq;/* dW tile: WJF filters x WJK taps; filters and taps rounded up */
    ptrdiff_t Pw;              /* positions computed per sample: OH*OW rounded up to whole vectors */
    ptrdiff_t npad;            /* elements of the padded copy (its slack past the planes is read, never used) */
    ptrdiff_t grp;             /* dW: samples swept together by each tile (from the shapes alone) */
    ptrdiff_t XJ, Kx;          /* dX tile: XJ planes (c, j) of the copies' gradient; C*KW planes rounded up */
    ptrdiff_t PL, Rd;          /* dX: elements per plane of the copies' gradient; per zero-framed output gradient row */
    ptrdiff_t Wr, xp_at;       /* the zero-padded planes the shifted copies come from: row width, offset in scratch */
} cnn_dconv_geom;

/* Fill g's derived fields for `level` (cpu.h; a level this build lacks falls back to baseline). */
void cnn_dconv_geom_init(cnn_dconv_geom *g, int level, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t F,
                         ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t PH, ptrdiff_t PW, ptrdiff_t OH, ptrdiff_t OW);

/* Elements of packed weights (cnn_*dconv_pack) and of scratch per caller thread (forward or dW). */
ptrdiff_t cnn_dconv_packed_size(const cnn_dconv_geom *g);
ptrdiff_t cnn_dconv_scratch(const cnn_dconv_geom *g);

/* wp = w (F, C, KH, KW) packed for the forward tile: (Fp/JF, K, JF), zero past F. */
void cnn_sdconv_pack(const cnn_dconv_geom *g, const float *w, float *wp);
void cnn_ddconv_pack(const cnn_dconv_geom *g, const double *w, double *wp);

/* wp = w (F, C, KH, KW) packed for the input gradient's tile: (Kx/XJ, F, KH, XJ), zero past the C*KW planes. */
void cnn_sdconv_pack_dx(const cnn_dconv_geom *g, const float *w, float *wp);
void cnn_ddconv_pack_dx(const cnn_dconv_geom *g, const double *w, double *wp);

/* A ReLU fused after the convolution: forward's `relu` (nonzero) stores a = max(z, 0) instead of z, and the
 * gradients' `a` (not NULL, the forward's output) takes dy as dC/da, masking it to dC/dz = dy where a > 0
 * (0 elsewhere) as it is read; exactly activations.c's relu and its backward. */

/* dx (n, C, H, W) = dC/dx from dy (n, F, OH, OW) (masked by a when not NULL) and wp from cnn_*dconv_pack_dx. */
void cnn_sdconv_dx(const cnn_dconv_geom *g, ptrdiff_t n, const float *dy, const float *a, const float *wp,
                   float *dx, float *scratch);
void cnn_ddconv_dx(const cnn_dconv_geom *g, ptrdiff_t n, const double *dy, const double *a, const double *wp,
                   double *dx, double *scratch);

/* y (n, F, OH, OW) = conv(x (n, C, H, W), wp) (+ bias when not NULL; max(., 0) when relu), samples
 * contiguous. */
void cnn_sdconv_forward(const cnn_dconv_geom *g, ptrdiff_t n, const float *x, const float *wp, const float *bias,
                        int relu, float *y, float *scratch);
void cnn_ddconv_forward(const cnn_dconv_geom *g, ptrdiff_t n, const double *x, const double *wp,
                        const double *bias, int relu, double *y, double *scratch);

/* gw (F, C*KH*KW) += dC/dw and gb (F,) += dC/db (when not NULL) over n samples in order: x (n, C, H, W),
 * dy (n, F, OH, OW) (masked by a when not NULL). */
void cnn_sdconv_dw(const cnn_dconv_geom *g, ptrdiff_t n, const float *x, const float *dy, const float *a,
                   float *gw, float *gb, float *scratch);
void cnn_ddconv_dw(const cnn_dconv_geom *g, ptrdiff_t n, const double *x, const double *dy, const double *a,
                   double *gw, double *gb, double *scratch);

#ifdef __cplusplus
}
#endif

#endif
