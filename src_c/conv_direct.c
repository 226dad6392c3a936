/* Direct convolution for few-channel stride-1 convolutions in training (conv_direct.h): the geometry, the
 * weight packing, and one table of loops per instruction-set level (conv_direct_template.h compiled under
 * each level's target, vectors of its width: BLIS's one definition per kernel). */
#include "conv_direct.h"

#include <string.h>

/* Tiles per level, as data. Forward: two tiles, A with 6 filters (LeNet's conv1, and the input gradient of
 * conv2, have 6 outputs) and B with a power of two (16 filters), the geometry picking the one that pads the
 * filters least; each with as many position vectors as the registers hold (JF*VP accumulators + VP inputs +
 * a broadcast weight). dW: W_JF filters x W_JK taps of accumulators + W_JF output-gradient vectors + one input.
 * avx512 (32 zmm): A 6 x 4, B 8 x 3, dW 6 x 4; avx2 (16 ymm) and baseline (16 xmm; SSE2 has no FMA, so one more
 * temporary): A 6 x 2, B 4 x 3, dW 3 x 4 (avx2) and 3 x 3 (baseline). dX: X_JT planes x X_VP vectors of positions
 * (+ X_VP output-gradient vectors + a broadcast weight): 6 x 3 at avx512 (LeNet's conv2: 30 planes in 5 blocks, 144
 * positions in 3 tiles), 4 x 2 below. */
static const struct {
    int fa_jf, fa_vp, fb_jf, fb_vp, w_jf, w_jk, x_jt, vb;
} dconv_tiles[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {6, 2, 4, 3, 3, 3, 4, 16},
    [CNN_SIMD_AVX2] = {6, 2, 4, 3, 3, 4, 4, 32},
    [CNN_SIMD_AVX512] = {6, 4, 8, 3, 6, 4, 6, 64},
};

#define T float
#define D(name) s_base_##name
#define VB 16
#define FA_JF 6
#define FA_VP 2
#define FB_JF 4
#define FB_VP 3
#define W_JF 3
#define W_JK 3
#define X_VP 2
#define X_JT 4
#include "conv_direct_template.h"
#undef T
#undef D
#define T double
#define D(name) d_base_##name
#include "conv_direct_template.h"
#undef T
#undef D
#undef VB
#undef FA_JF
#undef FA_VP
#undef FB_JF
#undef FB_VP
#undef W_JF
#undef W_JK
#undef X_JT
#undef X_VP

#if CNN_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VB 32
#define FA_JF 6
#define FA_VP 2
#define FB_JF 4
#define FB_VP 3
#define W_JF 3
#define W_JK 4
#define X_VP 2
#define X_JT 4
#define T float
#define D(name) s_avx2_##name
#include "conv_direct_template.h"
#undef T
#undef D
#define T double
#define D(name) d_avx2_##name
#include "conv_direct_template.h"
#undef T
#undef D
#undef VB
#undef FA_JF
#undef FA_VP
#undef FB_JF
#undef FB_VP
#undef W_JF
#undef W_JK
#undef X_JT
#undef X_VP
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define VB 64
#define FA_JF 6
#define FA_VP 4
#define FB_JF 8
#define FB_VP 3
#define W_JF 6
#define W_JK 4
#define X_VP 3
#define X_JT 6
#define T float
#define D(name) s_avx512_##name
#include "conv_direct_template.h"
#undef T
#undef D
#define T double
#define D(name) d_avx512_##name
#include "conv_direct_template.h"
#undef T
#undef D
#undef VB
#undef FA_JF
#undef FA_VP
#undef FB_JF
#undef FB_VP
#undef W_JF
#undef W_JK
#undef X_JT
#undef X_VP
#pragma GCC pop_options
#endif

static const struct {
    void (*fwd_s)(const cnn_dconv_geom *, ptrdiff_t, const float *, const float *, const float *, int, float *,
                  float *);
    void (*fwd_d)(const cnn_dconv_geom *, ptrdiff_t, const double *, const double *, const double *, int, double *,
                  double *);
    void (*dw_s)(const cnn_dconv_geom *, ptrdiff_t, const float *, const float *, const float *, float *, float *,
                 float *);
    void (*dw_d)(const cnn_dconv_geom *, ptrdiff_t, const double *, const double *, const double *, double *,
                 double *, double *);
    void (*dx_s)(const cnn_dconv_geom *, ptrdiff_t, const float *, const float *, const float *, float *, float *);
    void (*dx_d)(const cnn_dconv_geom *, ptrdiff_t, const double *, const double *, const double *, double *,
                 double *);
} dconv_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {s_base_forward, d_base_forward, s_base_dw, d_base_dw, s_base_dx, d_base_dx},
#if CNN_X86
    [CNN_SIMD_AVX2] = {s_avx2_forward, d_avx2_forward, s_avx2_dw, d_avx2_dw, s_avx2_dx, d_avx2_dx},
    [CNN_SIMD_AVX512] = {s_avx512_forward, d_avx512_forward, s_avx512_dw, d_avx512_dw, s_avx512_dx, d_avx512_dx},
#else
    [CNN_SIMD_AVX2] = {s_base_forward, d_base_forward, s_base_dw, d_base_dw, s_base_dx, d_base_dx},
    [CNN_SIMD_AVX512] = {s_base_forward, d_base_forward, s_base_dw, d_base_dw, s_base_dx, d_base_dx},
#endif
};

/* dW's group of samples whose copies its tiles sweep together (conv_direct_template.h's dw): large enough that
 * the lane sums at the end of a tile are few against its products, small enough to stay in L2. */
#define DCONV_DW_GROUP_BYTES (192 << 10)

static ptrdiff_t round_up(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b * b; }

void cnn_dconv_geom_init(cnn_dconv_geom *g, int level, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t F,
                         ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t PH, ptrdiff_t PW, ptrdiff_t OH, ptrdiff_t OW)
{
#if !CNN_X86
    level = CNN_SIMD_BASELINE;
#endif
    if (level < 0 || level >= CNN_SIMD_NLEVELS)
        level = CNN_SIMD_BASELINE;
    g->C = C, g->H = H, g->W = W, g->F = F, g->KH = KH, g->KW = KW, g->PH = PH, g->PW = PW, g->OH = OH, g->OW = OW;
    g->level = level;
    g->Hp = OH + KH - 1, g->S = C * g->Hp * OW, g->K = C * KH * KW;
    const int a_jf = dconv_tiles[level].fa_jf, b_jf = dconv_tiles[level].fb_jf;
    /* the tile that pads the filters least (A on ties) */
    const int use_a = round_up(F, a_jf) <= round_up(F, b_jf);
    g->JF = use_a ? a_jf : b_jf;
    g->VP = use_a ? dconv_tiles[level].fa_vp : dconv_tiles[level].fb_vp;
    g->Fp = round_up(F, g->JF);
    g->WJF = dconv_tiles[level].w_jf, g->WJK = dconv_tiles[level].w_jk;
    g->Fq = round_up(F, g->WJF), g->Kq = round_up(g->K, g->WJK);
    g->XJ = dconv_tiles[level].x_jt, g->Kx = round_up(C * KW, g->XJ);
    /* float and double share the geometry: whole float vectors (two double vectors each) */
    g->Pw = round_up(OH * OW, dconv_tiles[level].vb / (ptrdiff_t)sizeof(float));
    /* the furthest read (or write): tap (C-1, KH-1, KW-1) of the last position, below KW*S + Pw */
    g->npad = KW * g->S + g->Pw;
    /* the padded planes' rows: read from t = j < KW in whole vectors covering OW */
    g->Wr = KW - 1 + round_up(OW, dconv_tiles[level].vb / (ptrdiff_t)sizeof(float));
    /* dW's samples per group: about DCONV_DW_GROUP_BYTES of float copies (L2-resident), at most 16 */
    const ptrdiff_t per = (g->npad + g->Fq * g->Pw) * (ptrdiff_t)sizeof(float);
    g->grp = DCONV_DW_GROUP_BYTES / per;
    g->grp = g->grp < 1 ? 1 : g->grp > 16 ? 16 : g->grp;
    /* the padded planes after the forward's or dW's work (the larger; dX's scratch is its own, below) */
    const ptrdiff_t fwd = g->npad + g->Fp * g->Pw, dw = g->grp * (g->npad + g->Fq * g->Pw);
    g->xp_at = fwd > dw ? fwd : dw;
    /* the input gradient's: Kx planes of the shifted copies' gradient (whole vectors of their Hp*OW
     * positions), then the output gradient rows with KH-1 rows of zeros before and after */
    g->PL = round_up(g->Hp * OW, dconv_tiles[level].vb / (ptrdiff_t)sizeof(float));
    g->Rd = (KH - 1) * OW + g->PL;
}

ptrdiff_t cnn_dconv_packed_size(const cnn_dconv_geom *g)
{
    const ptrdiff_t fwd = g->Fp * g->K, dx = g->Kx * g->F * g->KH;
    return fwd > dx ? fwd : dx;   /* the forward's or the input gradient's */
}

ptrdiff_t cnn_dconv_scratch(const cnn_dconv_geom *g)
{
    const ptrdiff_t fwd_dw = g->xp_at + g->C * g->Hp * g->Wr, dx = g->Kx * g->PL + g->F * g->Rd;
    return fwd_dw > dx ? fwd_dw : dx;
}

#define DCONV_DEFS(T, SFX)                                                                                    \
    void cnn_##SFX##dconv_pack(const cnn_dconv_geom *g, const T *w, T *wp)                                 \
    {                                                                                                         \
        /* (Fp/JF, K, JF): for each block of JF filters, each tap's JF weights contiguous; zero past F */     \
        const ptrdiff_t F = g->F, K = g->K, JF = g->JF;                                                       \
        for (ptrdiff_t f = 0; f < g->Fp; ++f)                                                                 \
            for (ptrdiff_t k = 0; k < K; ++k)                                                                 \
                wp[(f / JF * K + k) * JF + f % JF] = f < F ? w[f * K + k] : (T)0;                             \
    }                                                                                                         \
                                                                                                              \
    void cnn_##SFX##dconv_pack_dx(const cnn_dconv_geom *g, const T *w, T *wp)                              \
    {                                                                                                         \
        /* (Kx/XJ, F, KH, XJ): for each block of XJ planes c*KW + j, each filter's and kernel row's XJ weights  \
         * w[f, c, i, j] contiguous; zero past the C*KW planes */                                            \
        const ptrdiff_t F = g->F, KH = g->KH, KW = g->KW, XJ = g->XJ, CK = g->C * KW;                         \
        for (ptrdiff_t pl = 0; pl < g->Kx; ++pl)                                                              \
            for (ptrdiff_t f = 0; f < F; ++f)                                                                 \
                for (ptrdiff_t i = 0; i < KH; ++i)                                                            \
                    wp[((pl / XJ * F + f) * KH + i) * XJ + pl % XJ] =                                         \
                        pl < CK ? w[((f * g->C + pl / KW) * KH + i) * KW + pl % KW] : (T)0;                   \
    }                                                                                                         \
                                                                                                              \
    void cnn_##SFX##dconv_dx(const cnn_dconv_geom *g, ptrdiff_t n, const T *dy, const T *a, const T *wp,     \
                             T *dx, T *scratch)                                                               \
    {                                                                                                         \
        dconv_table[g->level].dx_##SFX(g, n, dy, a, wp, dx, scratch);                                         \
    }                                                                                                         \
                                                                                                              \
    void cnn_##SFX##dconv_forward(const cnn_dconv_geom *g, ptrdiff_t n, const T *x, const T *wp,              \
                                  const T *bias, int relu, T *y, T *scratch)                                  \
    {                                                                                                         \
        dconv_table[g->level].fwd_##SFX(g, n, x, wp, bias, relu, y, scratch);                                 \
    }                                                                                                         \
                                                                                                              \
    void cnn_##SFX##dconv_dw(const cnn_dconv_geom *g, ptrdiff_t n, const T *x, const T *dy, const T *a,      \
                             T *gw, T *gb, T *scratch)                                                        \
    {                                                                                                         \
        dconv_table[g->level].dw_##SFX(g, n, x, dy, a, gw, gb, scratch);                                      \
    }

DCONV_DEFS(float, s)
DCONV_DEFS(double, d)
