/* The plan's ops for one element type at one instruction-set level, included by plan.c once per (dtype,
 * level) under that level's target pragma, so that the same loops compile to its vectors (BLIS's one
 * definition per kernel).
 *
 * The caller defines (and this file #undefs at its end):
 *   T          element type
 *   G(name)    name mangler (dtype and level)
 *   GEMM       the blocked GEMM of gemm.c for T (cnn_sgemm_strided / cnn_dgemm_strided)
 *   WINO_IN, WINO_OUT  winograd.c's transforms for T (cnn_swino_in / cnn_dwino_in, cnn_swino_out / _dwino_out)
 *   ACT_FWD    activations.c's loop for T (cnn_act_forward_f32 / _f64)
 *   EXP, LOG   libm's exp and log for T
 *   UINT       the unsigned integer type of T's size
 *   NV         vectors of 64 bytes in the small-batch Linear kernel's row block (registers: NV zmm at the
 *              avx512 level, 2*NV ymm at avx2, 4*NV xmm at baseline; 8 accumulator registers each)
 */

typedef T G(vec) __attribute__((vector_size(64), aligned(sizeof(T))));
#define VL ((ptrdiff_t)(64 / sizeof(T)))

/* c ? a : b on bits (activations.c says why: a float ?: does not become a vector blend). */
static inline __attribute__((always_inline)) T G(sel)(int c, T a, T b)
{
    UINT ua, ub;
    const UINT m = (UINT)0 - (UINT)(c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

/* act applied to n contiguous elements in place. */
static void G(act)(int act, T alpha, T *y, ptrdiff_t n)
{
    switch (act) {
    case CNN_PACT_RELU:
        for (ptrdiff_t i = 0; i < n; ++i)
            y[i] = G(sel)(y[i] <= 0, 0, y[i]);            /* NaN propagates, as the layer's */
        break;
    case CNN_PACT_LEAKY:
        for (ptrdiff_t i = 0; i < n; ++i)
            y[i] = G(sel)(y[i] > 0, y[i], y[i] * alpha);
        break;
    case CNN_PACT_SIGMOID:
        ACT_FWD(CNN_SIGMOID, y, y, n, alpha);
        break;
    case CNN_PACT_TANH:
        ACT_FWD(CNN_TANH, y, y, n, alpha);
        break;
    case CNN_PACT_ELU:
        ACT_FWD(CNN_ELU, y, y, n, alpha);
        break;
    case CNN_PACT_SILU: {
        /* z * sigmoid(z), the layer's formula, in blocks through a stack buffer */
        T s[256];
        for (ptrdiff_t i0 = 0; i0 < n; i0 += 256) {
            const ptrdiff_t nb = n - i0 < 256 ? n - i0 : 256;
            ACT_FWD(CNN_SIGMOID, y + i0, s, nb, alpha);
            for (ptrdiff_t i = 0; i < nb; ++i)
                y[i0 + i] *= s[i];
        }
        break;
    }
    case CNN_PACT_GELU:
        /* 0.5 z (1 + erf(z / sqrt 2)), in the layer's order: z / sqrt 2 rounded to T, erf in double */
        for (ptrdiff_t i = 0; i < n; ++i) {
            const T z = y[i];
            y[i] = (T)0.5 * z * ((T)1 + (T)erf((double)(z * (T)0.70710678118654752440)));
        }
        break;
    case CNN_PACT_GELU_TANH:
        /* 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) */
        for (ptrdiff_t i = 0; i < n; ++i) {
            const T z = y[i];
            const T u = (T)0.79788456080286535588 * (z + (T)0.044715 * z * z * z);
            y[i] = (T)0.5 * z * ((T)1 + (T)tanh((double)u));
        }
        break;
    default:
        break;
    }
}

/* ---- Linear ---------------------------------------------------------------------------------------- */

/* Columns j0 .. j0 + nv*VL of one row: y = b + x[0..K) @ Wt, Wt K x ldw (ldw a multiple of VL,
 * zero-padded columns; j0 + nv*VL <= ldw). The nv vectors of accumulators stay in registers across the whole depth, two sets
 * (even and odd k) for twice the independent FMA chains, summed at the end. */
static inline __attribute__((always_inline)) void G(linear_block)(const int nv, ptrdiff_t K, ptrdiff_t N,
                                                                  ptrdiff_t ldw, const T *x, const T *Wt,
                                                                  const T *b, T *y, ptrdiff_t j0)
{
    G(vec) a0[NV], a1[NV];
    for (int v = 0; v < nv; ++v) {
        a0[v] = (G(vec)){0};
        a1[v] = (G(vec)){0};
    }
    const T *w = Wt + j0;
    ptrdiff_t k = 0;
    for (; k + 1 < K; k += 2, w += 2 * ldw) {
        const T x0 = x[k], x1 = x[k + 1];
        for (int v = 0; v < nv; ++v) {
            a0[v] += x0 * *(const G(vec) *)(w + v * VL);
            a1[v] += x1 * *(const G(vec) *)(w + ldw + v * VL);
        }
    }
    if (k < K) {
        const T x0 = x[k];
        for (int v = 0; v < nv; ++v)
            a0[v] += x0 * *(const G(vec) *)(w + v * VL);
    }
    const ptrdiff_t nb = N - j0 < nv * VL ? N - j0 : nv * VL;
    T acc[NV * VL];
    for (int v = 0; v < nv; ++v)
        *(G(vec) *)(acc + v * VL) = a0[v] + a1[v];
    if (b != NULL) {
        for (ptrdiff_t j = 0; j < nb; ++j)
            y[j0 + j] = acc[j] + b[j0 + j];
    } else {
        for (ptrdiff_t j = 0; j < nb; ++j)
            y[j0 + j] = acc[j];
    }
}

/* One row, in blocks of NV vectors of columns; the last blocks take the largest power of two of vectors
 * that the remaining columns fill (ldw is padded to whole vectors only). */
static void G(linear_row)(ptrdiff_t K, ptrdiff_t N, ptrdiff_t ldw, const T *x, const T *Wt, const T *b, T *y)
{
    for (ptrdiff_t j0 = 0; j0 < N;) {
        const ptrdiff_t need = (N - j0 + VL - 1) / VL;
        if (need >= NV) {
            G(linear_block)(NV, K, N, ldw, x, Wt, b, y, j0);
            j0 += NV * VL;
        } else if (need >= 4 && NV > 4) {
            G(linear_block)(4, K, N, ldw, x, Wt, b, y, j0);
            j0 += 4 * VL;
        } else if (need >= 2 && NV > 2) {
            G(linear_block)(2, K, N, ldw, x, Wt, b, y, j0);
            j0 += 2 * VL;
        } else {
            G(linear_block)(1, K, N, ldw, x, Wt, b, y, j0);
            j0 += VL;
        }
    }
}

/* Rows below this take linear_row each (the weights stream once per row, from cache); from here on the
 * GEMM's 6-row tiles share each load of the weights. */
#define SMALL_ROWS 6

/* y[m, N] = x[m, K] @ Wt + b (Wt K x ldw, zero-padded columns; b may be NULL), rows of x ldx apart and
 * of y ldy apart; no activation. */
static int G(dense)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, ptrdiff_t ldw, const T *x, ptrdiff_t ldx, const T *Wt,
                    const T *b, T *y, ptrdiff_t ldy)
{
    if (m < SMALL_ROWS) {
        for (ptrdiff_t i = 0; i < m; ++i)
            G(linear_row)(K, N, ldw, x + i * ldx, Wt, b, y + i * ldy);
        return 0;
    }
    if (GEMM(m, N, K, (T)1, x, ldx, 1, Wt, ldw, 1, (T)0, y, ldy) != 0)
        return -1;
    if (b != NULL)
        for (ptrdiff_t i = 0; i < m; ++i)
            for (ptrdiff_t j = 0; j < N; ++j)
                y[i * ldy + j] += b[j];
    return 0;
}

static int G(linear)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y)
{
    const ptrdiff_t K = op->p[0], N = op->p[1], ldw = op->p[2];
    if (G(dense)(m, K, N, ldw, x, K, (const T *)op->w, (const T *)op->b, y, N) != 0)
        return -1;
    if (op->act != CNN_PACT_NONE)
        for (ptrdiff_t i = 0; i < m; ++i)
            G(act)(op->act, (T)op->alpha, y + i * N, N);
    return 0;
}

/* ---- convolution ----------------------------------------------------------------------------------- */

/* The columns of one sample: row (c*KH + i)*KW + j of cols (row stride ld) gets tap (i, j) of channel c at
 * every output position; zeros where the tap falls in the padding. The output columns whose input lies
 * inside the image are found once per tap column j, so the copy loops never test per element. */
static void G(im2col)(const cnn_plan_op *op, const T *x, T *cols, ptrdiff_t ld)
{
    const ptrdiff_t C = op->p[0] / op->p[14] * op->p[14], H = op->p[1], W = op->p[2];
    const ptrdiff_t KH = op->p[4], KW = op->p[5], SH = op->p[6], SW = op->p[7], PH = op->p[8], PW = op->p[9];
    const ptrdiff_t DH = op->p[10], DW = op->p[11], OH = op->p[12], OW = op->p[13];
    for (ptrdiff_t c = 0; c < C; ++c) {
        for (ptrdiff_t j = 0; j < KW; ++j) {
            const ptrdiff_t t = PW - j * DW;                   /* input column w = ow*SW - t */
            ptrdiff_t lo = t <= 0 ? 0 : (t + SW - 1) / SW;
            ptrdiff_t hi = W - 1 + t < 0 ? 0 : (W - 1 + t) / SW + 1;
            if (hi > OW)
                hi = OW;
            if (lo > hi)
                lo = hi;
            for (ptrdiff_t i = 0; i < KH; ++i) {
                T *row = cols + ((c * KH + i) * KW + j) * ld;
                for (ptrdiff_t oh = 0; oh < OH; ++oh) {
                    const ptrdiff_t h = oh * SH - PH + i * DH;
                    T *d = row + oh * OW;
                    if (h < 0 || h >= H) {
                        for (ptrdiff_t ow = 0; ow < OW; ++ow)
                            d[ow] = 0;
                        continue;
                    }
                    const T *s = x + (c * H + h) * W - t;
                    for (ptrdiff_t ow = 0; ow < lo; ++ow)
                        d[ow] = 0;
                    if (SW == 1) {
                        for (ptrdiff_t ow = lo; ow < hi; ++ow)
                            d[ow] = s[ow];
                    } else {
                        for (ptrdiff_t ow = lo; ow < hi; ++ow)
                            d[ow] = s[ow * SW];
                    }
                    for (ptrdiff_t ow = hi; ow < OW; ++ow)
                        d[ow] = 0;
                }
            }
        }
    }
}

/* Channels c0 .. c1 of x's C planes of H x W copied into zeroed planes of Hp x Wp at row PH, column PW
 * (cropped where the padded plane is smaller); the part holding channel C - 1 also zeroes pad from the
 * planes' end up to `total` elements (the direct convolutions read their last taps there). One thread
 * passes 0, C; a team's threads disjoint channel ranges. */
static void G(pad_planes)(ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t PH,
                          ptrdiff_t PW, ptrdiff_t Hp, ptrdiff_t Wp, ptrdiff_t total, const T *x, T *pad)
{
    const ptrdiff_t plane = Hp * Wp;
    memset(pad + c0 * plane, 0, (size_t)((c1 - c0) * plane) * sizeof(T));
    if (c1 == C && total > C * plane)
        memset(pad + C * plane, 0, (size_t)(total - C * plane) * sizeof(T));
    const ptrdiff_t rows = H < Hp - PH ? H : Hp - PH, width = W < Wp - PW ? W : Wp - PW;
    for (ptrdiff_t c = c0; c < c1; ++c)
        for (ptrdiff_t h = 0; h < rows; ++h)
            memcpy(pad + (c * Hp + PH + h) * Wp + PW, x + (c * H + h) * W, (size_t)width * sizeof(T));
}

/* Stride 1, the "wide" columns: the output is computed Wp = OW + DW*(KW-1) columns wide (the padded input's
 * width), so row (c, i, j) of the columns is one contiguous run of the padded input, OH*Wp values from
 * (c, i*DH, j*DW): one copy per row instead of one per output row, and the GEMM's B rows are long. The
 * columns past OW of each output row are computed and dropped by the epilogue. Padding (or a crop, when
 * the output leaves input rows or columns unused) goes through pad, a zeroed (C, Hp, Wp) copy of the
 * sample; without either the sample itself is read. */
static void G(im2col_wide)(const cnn_plan_op *op, const T *x, T *cols, ptrdiff_t ld, T *pad)
{
    const ptrdiff_t C = op->p[0], H = op->p[1], W = op->p[2], KH = op->p[4], KW = op->p[5];
    const ptrdiff_t PH = op->p[8], PW = op->p[9], DH = op->p[10], DW = op->p[11], OH = op->p[12];
    const ptrdiff_t OW = op->p[13], Hp = OH + DH * (KH - 1), Wp = OW + DW * (KW - 1);
    const T *src = x;
    if (PH != 0 || PW != 0 || Wp != W || Hp > H) {
        G(pad_planes)(0, C, C, H, W, PH, PW, Hp, Wp, C * Hp * Wp, x, pad);
        src = pad;
    }
    const ptrdiff_t cs = src == x ? H * W : Hp * Wp, total = C * cs, len = OH * Wp;
    for (ptrdiff_t c = 0; c < C; ++c)
        for (ptrdiff_t i = 0; i < KH; ++i)
            for (ptrdiff_t j = 0; j < KW; ++j) {
                const ptrdiff_t start = c * cs + i * DH * Wp + j * DW;
                const ptrdiff_t avail = total - start < len ? total - start : len;
                T *d = cols + ((c * KH + i) * KW + j) * ld;
                memcpy(d, src + start, (size_t)avail * sizeof(T));
                if (avail < len)       /* past the sample's end: only dropped columns read it */
                    memset(d + avail, 0, (size_t)(len - avail) * sizeof(T));
            }
}

/* ---- direct 3x3-style convolutions (stride 1, one group) ------------------------------------------ */

/* Both read the input from a zero-padded copy on the "wide" grid of im2col_wide: (C, Hp, Wp) with
 * Hp = OH + DH*(KH-1), Wp = OW + DW*(KW-1), where output (oh, ow) reads tap k = (c, i, j) at
 * oh*Wp + ow + off[k], off[k] = c*Hp*Wp + i*DH*Wp + j*DW (op->tab, made at compile time): no column matrix,
 * and the weights pre-packed at compile time (each kernel's layout below). */
typedef struct {
    ptrdiff_t C, H, W, F, PH, PW, OH, OW, Hp, Wp, K;
    const T *w, *b;
    const ptrdiff_t *off;
    int act;
    T alpha;
} G(direct);

#define DJ (NV >= 8 ? 8 : NV >= 2 ? 2 : 1)
#define CCONV_RMAX 14

/* Positions vectorized: the taps of 2*VL consecutive wide positions are 2 contiguous vectors of the padded
 * input, the weights packed as (F/8, K, 8) (8 filters of each tap contiguous). Tile: J filters x 2*VL
 * positions, acc[j][v] += w[k][j] * x[off[k] + v*VL]; J = 8 at the avx512 level (16 zmm accumulators,
 * 2 loads + 8 broadcasts per 16 FMAs), 2 at avx2 (8 ymm), 1 at baseline (8 xmm). */
static inline __attribute__((always_inline)) void G(dconv_tile)(ptrdiff_t K, const T *x, const ptrdiff_t *off,
                                                                const T *w, T *out, ptrdiff_t ldo)
{
    G(vec) acc[DJ][2];
    for (int j = 0; j < DJ; ++j)
        acc[j][0] = acc[j][1] = (G(vec)){0};
    for (ptrdiff_t k = 0; k < K; ++k) {
        const T *xk = x + off[k];
        G(vec) x0, x1;
        memcpy(&x0, xk, sizeof x0);           /* unaligned loads */
        memcpy(&x1, xk + VL, sizeof x1);
        const T *wk = w + k * 8;
        for (int j = 0; j < DJ; ++j) {
            acc[j][0] += wk[j] * x0;
            acc[j][1] += wk[j] * x1;
        }
    }
    for (int j = 0; j < DJ; ++j) {
        memcpy(out + j * ldo, &acc[j][0], sizeof acc[j][0]);
        memcpy(out + j * ldo + VL, &acc[j][1], sizeof acc[j][1]);
    }
}

/* One sample on thread th: pad (the padded copy of x, with slack past its end for the last tile's
 * reads) and g (F x Pw, Pw = the wide positions rounded up to whole tiles) are shared scratch; the threads
 * claim channels of the copy, then tiles, then filters of the epilogue, each step ended by cnn_plan_sync. */
static void G(dconv)(const G(direct) *d, const T *x, T *y, T *pad, T *g, cnn_plan_thread *th)
{
    const ptrdiff_t F = d->F, K = d->K, OH = d->OH, OW = d->OW, Wp = d->Wp;
    const ptrdiff_t Pw = (OH * Wp + 2 * VL - 1) / (2 * VL) * (2 * VL);
    const ptrdiff_t npad = d->C * d->Hp * Wp + (d->Hp - OH) * Wp + (Wp - OW) + Pw;
    ptrdiff_t lo, hi;
    while (cnn_plan_take(th, d->C, &lo, &hi))
        G(pad_planes)(lo, hi, d->C, d->H, d->W, d->PH, d->PW, d->Hp, Wp, npad, x, pad);
    cnn_plan_sync(th);
    const ptrdiff_t npb = Pw / (2 * VL);
    while (cnn_plan_take(th, (F + 7) / 8 * npb, &lo, &hi))
        for (ptrdiff_t t = lo; t < hi; ++t) {
            const ptrdiff_t fb = t / npb, pb = t % npb;
            const T *wb = d->w + fb * K * 8;
            for (int j0 = 0; j0 < 8; j0 += DJ)
                G(dconv_tile)(K, pad + pb * 2 * VL, d->off, wb + j0, g + (fb * 8 + j0) * Pw + pb * 2 * VL, Pw);
        }
    cnn_plan_sync(th);
    /* epilogue: bias, activation, the wide rows cut to OW */
    while (cnn_plan_take(th, F, &lo, &hi))
        for (ptrdiff_t f = lo; f < hi; ++f) {
            T *o = y + f * OH * OW;
            const T *s = g + f * Pw;
            const T bf = d->b != NULL ? d->b[f] : (T)0;
            for (ptrdiff_t oh = 0; oh < OH; ++oh)
                for (ptrdiff_t q = 0; q < OW; ++q)
                    o[oh * OW + q] = s[oh * Wp + q] + bf;
            G(act)(d->act, d->alpha, o, OH * OW);
        }
}

#undef DJ

/* The same convolution vectorized along the filters instead (what onnxruntime's NCHWc kernels do): a tile is
 * R consecutive outputs of one output row times VF vectors of filters, acc[r][v] += x[tap at r] * w[tap][v],
 * each input value broadcast from the padded copy (taps at off[k], the tile's first output at
 * oh*Wp + ow0), weights pre-packed (F/(VF*VL), K, VF*VL). No wide grid: every product is an output's,
 * where the positions-vectorized tile above computes (Wp/OW) and (whole tiles) more at 7x7 and 10x10.
 * Each tile's (R, filters) block goes through a buffer on the stack straight into y's (F, positions)
 * layout, with the bias and the activation: no pass over the whole output after the tiles. */
typedef T G(uvec) __attribute__((vector_size(64), aligned(sizeof(T))));   /* an unaligned vector */

static inline __attribute__((always_inline)) void G(cconv_tile)(const int VF, const int R, ptrdiff_t K,
                                                                const T *x, const ptrdiff_t *off, const T *w,
                                                                T *out, ptrdiff_t ldo)
{
    /* every loop over r and v unrolled, so that acc stays in registers (R*VF <= 28 zmm at avx512) */
    G(vec) acc[28];
#pragma GCC unroll 28
    for (int i = 0; i < R * VF; ++i)
        acc[i] = (G(vec)){0};
    for (ptrdiff_t k = 0; k < K; ++k) {
        const T *xk = x + off[k];
        const G(vec) w0 = *(const G(uvec) *)(w + k * VF * VL);
        const G(vec) w1 = VF > 1 ? *(const G(uvec) *)(w + k * VF * VL + VL) : w0;
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const T xv = xk[r];
            acc[r * VF] += xv * w0;
            if (VF > 1)
                acc[r * VF + 1] += xv * w1;
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        *(G(uvec) *)(out + r * ldo) = acc[r * VF];
        if (VF > 1)
            *(G(uvec) *)(out + r * ldo + VL) = acc[r * VF + 1];
    }
}

#define CCONV_R(RR)                                                                                         \
    case RR:                                                                                            \
        if (VF2)                                                                                        \
            G(cconv_tile)(2, RR, K, xr, off, wb, o, ldo);                                                 \
        else                                                                                            \
            G(cconv_tile)(1, RR, K, xr, off, wb, o, ldo);                                                 \
        break;

/* R <= CCONV_RMAX consecutive outputs of one row for one filter block, into o (rows ldo apart). */
static void G(cconv_piece)(int VF2, int R, ptrdiff_t K, const T *xr, const ptrdiff_t *off, const T *wb, T *o,
                           ptrdiff_t ldo)
{
    switch (R) {
        CCONV_R(1) CCONV_R(2) CCONV_R(3) CCONV_R(4) CCONV_R(5) CCONV_R(6) CCONV_R(7)
        CCONV_R(8) CCONV_R(9) CCONV_R(10) CCONV_R(11) CCONV_R(12) CCONV_R(13) CCONV_R(14)
    default:
        break;
    }
}
#undef CCONV_R

/* One sample on thread th: the threads claim channels of the padded copy, then (after the step's end)
 * the tiles; weights packed (F/(VF*VL), K, VF*VL). */
static void G(cconv)(const G(direct) *d, const T *x, T *y, T *pad, cnn_plan_thread *th)
{
    const ptrdiff_t F = d->F, K = d->K, OH = d->OH, OW = d->OW, P = OH * OW;
    const int VF2 = F % (2 * VL) == 0;
    const ptrdiff_t fbw = (VF2 ? 2 : 1) * VL, nfb = F / fbw;
    const ptrdiff_t npieces = (OW + CCONV_RMAX - 1) / CCONV_RMAX, piece = (OW + npieces - 1) / npieces;
    ptrdiff_t lo, hi;
    while (cnn_plan_take(th, d->C, &lo, &hi))
        G(pad_planes)(lo, hi, d->C, d->H, d->W, d->PH, d->PW, d->Hp, d->Wp, d->C * d->Hp * d->Wp, x, pad);
    cnn_plan_sync(th);
    T buf[CCONV_RMAX * 2 * VL] __attribute__((aligned(64)));      /* one tile's (R, fbw) outputs */
    while (cnn_plan_take(th, nfb * OH * npieces, &lo, &hi))
        for (ptrdiff_t t = lo; t < hi; ++t) {
            const ptrdiff_t fb = t / (OH * npieces), oh = t / npieces % OH, ow0 = t % npieces * piece;
            const int R = (int)(OW - ow0 < piece ? OW - ow0 : piece);
            G(cconv_piece)(VF2, R, K, pad + oh * d->Wp + ow0, d->off, d->w + fb * K * fbw, buf, fbw);
            /* bias and activation on the (R, fbw) block (whole vectors), then into filters fb*fbw.. of y at
             * positions oh*OW + ow0 .. */
            if (d->b != NULL)
                for (int r = 0; r < R; ++r)
                    for (ptrdiff_t j = 0; j < fbw; ++j)
                        buf[r * fbw + j] += d->b[fb * fbw + j];
            G(act)(d->act, d->alpha, buf, R * fbw);
            for (ptrdiff_t j = 0; j < fbw; ++j) {
                T *o = y + (fb * fbw + j) * P + oh * OW + ow0;
                for (int r = 0; r < R; ++r)
                    o[r] = buf[r * fbw + j];
            }
        }
}

/* ---- Winograd F(2x2, 3x3) (3x3, stride 1, dilation 1, one group) ------------------------------------ */

/* winograd.c's transforms around products of the plan's own: for the m samples of a chunk, T = m*TH*TW
 * tiles (TH x TW tiles of 2x2 outputs per sample),
 *   V[xi] (C, ldt) = (B^T d B)[xi]      winograd.c's input transform, one channel's planes at a time
 *   M[xi] (F8, ldt) = U[xi] (F8, C) @ V[xi]   wtile below, U pre-transformed and packed at compile time
 *   y = act(A^T M A + b)                winograd.c's output transform, one filter's plane at a time
 * ldt = T rounded up to whole half vectors (the columns past T are computed from whatever V holds there and
 * never read); the 16 matrices of V and of M are WPAD elements apart (winograd.c's WINO_PAD: their streams would
 * share cache sets). U is packed (16, F8/8, C, 8): 8 filters of a channel contiguous, filters past F zero. */
#define WPAD 64
#define WJ (NV >= 8 ? 8 : NV >= 2 ? 2 : 1)

/* acc[j][t] += u[c][j] * v[c][t*L ..] over the C channels: WJ filters x NT vectors V (of L elements) of
 * tiles (NT <= 3: at most 24 zmm accumulators at avx512, 12 ymm at avx2, 12 xmm at baseline), into out
 * (rows ldo apart). */
#define WTILE(V, L)                                                                                     \
    static inline __attribute__((always_inline)) void G(wtile_##V)(const int NT, ptrdiff_t C, const T *v, \
                                                                   ptrdiff_t ldv, const T *u, T *out,   \
                                                                   ptrdiff_t ldo)                       \
    {                                                                                                   \
        G(V) acc[WJ][3];                                                                                \
        for (int j = 0; j < WJ; ++j)                                                                    \
            for (int t = 0; t < NT; ++t)                                                                \
                acc[j][t] = (G(V)){0};                                                                  \
        for (ptrdiff_t c = 0; c < C; ++c) {                                                             \
            const T *vc = v + c * ldv, *uc = u + c * 8;                                                 \
            G(V) x[3];                                                                                  \
            for (int t = 0; t < NT; ++t)                                                                \
                memcpy(&x[t], vc + t * (L), sizeof x[t]);                                               \
            for (int j = 0; j < WJ; ++j)                                                                \
                for (int t = 0; t < NT; ++t)                                                            \
                    acc[j][t] += uc[j] * x[t];                                                          \
        }                                                                                               \
        for (int j = 0; j < WJ; ++j)                                                                    \
            for (int t = 0; t < NT; ++t)                                                                \
                memcpy(out + j * ldo + t * (L), &acc[j][t], sizeof acc[j][t]);                          \
    }
/* half a vector: the last tiles of a row when half of one covers them (49 tiles of a 14 x 14 output: 3
 * vectors and a half of float32, where a fourth whole vector would compute 15 columns for 1) */
typedef T G(hvec) __attribute__((vector_size(32), aligned(sizeof(T))));
WTILE(vec, VL)
WTILE(hvec, VL / 2)
#undef WTILE

/* M[xi] rows fb*8 .. fb*8 + 8 for every position xi: whole vectors of tiles in groups of 3, 2 or 1 (4 as
 * 2 + 2), then a half vector when ldt ends with one. */
static void G(wblock)(ptrdiff_t C, ptrdiff_t F8, ptrdiff_t ldt, int xi, ptrdiff_t fb, const T *v, ptrdiff_t vs,
                      const T *u, T *mm, ptrdiff_t ms)
{
    const ptrdiff_t ntv = ldt / VL;
    const T *vx = v + xi * vs, *ub = u + (xi * (F8 / 8) + fb) * C * 8;
    T *mx = mm + xi * ms + fb * 8 * ldt;
    for (ptrdiff_t t0 = 0; t0 < ntv;) {
        const ptrdiff_t rem = ntv - t0, nt = rem == 4 ? 2 : rem >= 3 ? 3 : rem;
        for (int j0 = 0; j0 < 8; j0 += WJ) {
            if (nt == 3)
                G(wtile_vec)(3, C, vx + t0 * VL, ldt, ub + j0, mx + j0 * ldt + t0 * VL, ldt);
            else if (nt == 2)
                G(wtile_vec)(2, C, vx + t0 * VL, ldt, ub + j0, mx + j0 * ldt + t0 * VL, ldt);
            else
                G(wtile_vec)(1, C, vx + t0 * VL, ldt, ub + j0, mx + j0 * ldt + t0 * VL, ldt);
        }
        t0 += nt;
    }
    if (ldt % VL != 0)
        for (int j0 = 0; j0 < 8; j0 += WJ)
            G(wtile_hvec)(1, C, vx + ntv * VL, ldt, ub + j0, mx + j0 * ldt + ntv * VL, ldt);
}

/* The m samples of a chunk on thread th: the threads claim channels of the input transform, then (after
 * the step's end) blocks of 8 filters, each thread running a block's products for every xi and then its
 * output transforms (no wait between: a block's outputs need only its own rows of M). */
static void G(wconv)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y, T *v, T *mm, cnn_plan_thread *th)
{
    const ptrdiff_t C = op->p[0], H = op->p[1], W = op->p[2], F = op->p[3], PH = op->p[8], PW = op->p[9];
    const ptrdiff_t OH = op->p[12], OW = op->p[13], TS = ((OH + 1) / 2) * ((OW + 1) / 2);
    const ptrdiff_t F8 = (F + 7) / 8 * 8, ldt = (m * TS + VL / 2 - 1) / (VL / 2) * (VL / 2);
    const ptrdiff_t vs = C * ldt + WPAD, ms = F8 * ldt + WPAD;
    const T *u = (const T *)op->w, *b = (const T *)op->b;
    ptrdiff_t lo, hi;
    {
        T line[cnn_wino_line_in(OH, OW)];        /* at most 16 x 16 tiles (plan.py): 26 KiB in float32 */
        while (cnn_plan_take(th, C, &lo, &hi))
            for (ptrdiff_t c = lo; c < hi; ++c)
                WINO_IN(m, x + c * H * W, C * H * W, H, W, PH, PW, OH, OW, v + c * ldt, vs, line);
    }
    cnn_plan_sync(th);
    T line[cnn_wino_line_out(1, OH, OW)];
    while (cnn_plan_take(th, F8 / 8, &lo, &hi)) {
        for (int xi = 0; xi < 16; ++xi)
            for (ptrdiff_t fb = lo; fb < hi; ++fb)
                G(wblock)(C, F8, ldt, xi, fb, v, vs, u, mm, ms);
        const ptrdiff_t f1 = hi * 8 < F ? hi * 8 : F;
        for (ptrdiff_t f = lo * 8; f < f1; ++f)
            for (ptrdiff_t s = 0; s < m; ++s) {
                T *ys = y + (s * F + f) * OH * OW;
                WINO_OUT(1, mm + f * ldt + s * TS, ms, b != NULL ? b[f] : (T)0, ys, 0, OH, OW, line);
                G(act)(op->act, (T)op->alpha, ys, OH * OW);
            }
    }
}

#undef WJ
#undef WPAD

/* One sample through the op's direct convolution (p[15]: 2 dconv, 3 cconv), on thread th (the plan's
 * team), or, run by one thread, on a team of its own when the work gives each thread enough. */
static void G(direct_conv)(const cnn_plan_op *op, const T *x, T *y, T *pad, T *g, cnn_plan_thread *th)
{
    G(direct) d;
    const ptrdiff_t KH = op->p[4], KW = op->p[5];
    d.C = op->p[0], d.H = op->p[1], d.W = op->p[2], d.F = op->p[3], d.PH = op->p[8], d.PW = op->p[9];
    d.OH = op->p[12], d.OW = op->p[13], d.Hp = d.OH + op->p[10] * (KH - 1), d.Wp = d.OW + op->p[11] * (KW - 1);
    d.K = d.C * KH * KW;
    d.w = (const T *)op->w, d.b = (const T *)op->b, d.off = op->tab, d.act = op->act, d.alpha = (T)op->alpha;
    const int cc = op->p[15] == 3;
    if (th->nth == 1) {
        /* the most tiles either kernel has */
        const ptrdiff_t units = cc ? d.F / VL * d.OH : (d.F + 7) / 8 * (d.OH * d.Wp / (2 * VL));
        const int team = cnn_plan_team_for((double)d.F * d.K * d.OH * d.OW, units, th->max_team);
        (void)team;
#if CNN_CORE_OPENMP
        if (team > 1) {
            cnn_plan_barrier bar;
            cnn_plan_barrier_init(&bar, team);
#pragma omp parallel num_threads(team)
            {
                cnn_plan_thread own = cnn_plan_thread_of(&bar);
                if (own.tid < 0)
                    ;
                else if (cc)
                    G(cconv)(&d, x, y, pad, &own);
                else
                    G(dconv)(&d, x, y, pad, g, &own);
            }
            return;
        }
#endif
    }
    if (cc)
        G(cconv)(&d, x, y, pad, th);
    else
        G(dconv)(&d, x, y, pad, g, th);
}

/* A convolution over the m samples of a chunk, on thread th: the direct kernels split each sample
 * among the threads; the im2col path (its GEMM) runs on thread 0. */
static int G(conv)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y, T *cols, T *g, T *pad,
                   cnn_plan_thread *th)
{
    if (op->p[15] == 4) {     /* Winograd: cols holds V, g M */
        if (th->nth == 1) {
            const ptrdiff_t F8 = (op->p[3] + 7) / 8 * 8;
            const int team = cnn_plan_team_for(
                (double)m * F8 * op->p[0] * 16 * ((op->p[12] + 1) / 2) * ((op->p[13] + 1) / 2), F8 / 8,
                th->max_team);
            (void)team;
#if CNN_CORE_OPENMP
            if (team > 1) {
                cnn_plan_barrier bar;
                cnn_plan_barrier_init(&bar, team);
#pragma omp parallel num_threads(team)
                {
                    cnn_plan_thread own = cnn_plan_thread_of(&bar);
                    if (own.tid >= 0)
                        G(wconv)(op, m, x, y, cols, g, &own);
                }
                return 0;
            }
#endif
        }
        G(wconv)(op, m, x, y, cols, g, th);
        return 0;
    }
    if (op->p[15] >= 2) {     /* direct: cols is the padded sample, g dconv's wide output */
        const ptrdiff_t xs = op->p[0] * op->p[1] * op->p[2], ys = op->p[3] * op->p[12] * op->p[13];
        for (ptrdiff_t n = 0; n < m; ++n) {
            if (n > 0)
                cnn_plan_sync(th);       /* the previous sample's tiles are done with pad */
            G(direct_conv)(op, x + n * xs, y + n * ys, cols, g, th);
        }
        return 0;
    }
    if (!cnn_plan_solo(th))
        return 0;
    const ptrdiff_t C = op->p[0], H = op->p[1], W = op->p[2], F = op->p[3];
    const ptrdiff_t KH = op->p[4], KW = op->p[5], OH = op->p[12], OW = op->p[13], G_ = op->p[14];
    const int wide = op->p[6] == 1 && op->p[7] == 1;
    const ptrdiff_t Wp = wide ? OW + op->p[11] * (KW - 1) : OW;      /* computed columns per output row */
    const ptrdiff_t P = OH * Wp, ld = m * P, Cg = C / G_, Fg = F / G_, Kg = Cg * KH * KW;
    const T *Wf = (const T *)op->w, *b = (const T *)op->b;
    for (ptrdiff_t n = 0; n < m; ++n) {
        if (wide)
            G(im2col_wide)(op, x + n * C * H * W, cols + n * P, ld, pad);
        else
            G(im2col)(op, x + n * C * H * W, cols + n * P, ld);
    }
    /* Transposed (p[15]): out^T = cols^T @ W^T, (m*P, F), W^T stored Kg x Fg per group; for a few filters
     * (16 or 32) the unpacked kernel's 16 columns are all filters and its 6-row tiles run along the long
     * positions axis, where the other way the 6-row tiles would cover 16 filters with 18 rows. */
    const int tr = op->p[15] == 1;
    const ptrdiff_t fs = tr ? 1 : ld, ps = tr ? F : 1;    /* out's strides: per filter, per position */
    T *out = m == 1 && !wide && !tr ? y : g;    /* (F, m*P); for one sample, not wide, that is y itself */
    for (ptrdiff_t gi = 0; gi < G_; ++gi) {
        const int err = tr ? GEMM(ld, Fg, Kg, (T)1, cols + gi * Kg * ld, 1, ld, Wf + gi * Kg * Fg, Fg, 1, (T)0,
                                  out + gi * Fg, F)
                           : GEMM(Fg, ld, Kg, (T)1, Wf + gi * Fg * Kg, Kg, 1, cols + gi * Kg * ld, ld, 1, (T)0,
                                  out + gi * Fg * ld, ld);
        if (err != 0)
            return -1;
    }
    /* epilogue: bias and activation, (F, m*OH*Wp) or (m*OH*Wp, F) -> (m, F, OH, OW) */
    for (ptrdiff_t n = 0; n < m; ++n) {
        for (ptrdiff_t f = 0; f < F; ++f) {
            T *d = y + (n * F + f) * OH * OW;
            const T *s = out + f * fs + n * P * ps;
            if (tr) {
                const T bf = b != NULL ? b[f] : (T)0;
                for (ptrdiff_t oh = 0; oh < OH; ++oh)
                    for (ptrdiff_t q = 0; q < OW; ++q)
                        d[oh * OW + q] = s[(oh * Wp + q) * F] + bf;
                G(act)(op->act, (T)op->alpha, d, OH * OW);
                continue;
            }
            const T bf = b != NULL ? b[f] : (T)0;
            if (d != s) {
                for (ptrdiff_t oh = 0; oh < OH; ++oh)
                    for (ptrdiff_t q = 0; q < OW; ++q)
                        d[oh * OW + q] = s[oh * Wp + q] + bf;
            } else if (b != NULL) {
                for (ptrdiff_t q = 0; q < OH * OW; ++q)
                    d[q] += bf;
            }
            G(act)(op->act, (T)op->alpha, d, OH * OW);
        }
    }
    return 0;
}

/* ---- pooling --------------------------------------------------------------------------------------- */

/* max(a, b) with NaN winning (the layer's rule: a NaN in a window is its maximum). */
static inline __attribute__((always_inline)) T G(nanmax)(T a, T b)
{
    return G(sel)((b > a) | (b != b), b, a);   /* | not ||: no branch */
}

/* Planes lo .. hi of a chunk's m*C (a thread's share). */
static void G(maxpool2)(const cnn_plan_op *op, ptrdiff_t lo, ptrdiff_t hi, const T *x, T *y)
{
    const ptrdiff_t H = op->p[1], W = op->p[2], OH = op->p[3], OW = op->p[4];
    for (ptrdiff_t pl = lo; pl < hi; ++pl) {
        const T *xp = x + pl * H * W;
        T *yp = y + pl * OH * OW;
        for (ptrdiff_t u = 0; u < OH; ++u) {
            const T *r0 = xp + 2 * u * W, *r1 = r0 + W;
            T *d = yp + u * OW;
            /* the two rows' maximum first (contiguous: full vectors), then each pair of columns */
            T t[512];
            for (ptrdiff_t v0 = 0; v0 < OW; v0 += 256) {
                const ptrdiff_t nv = OW - v0 < 256 ? OW - v0 : 256;
                for (ptrdiff_t w = 0; w < 2 * nv; ++w)
                    t[w] = G(nanmax)(r0[2 * v0 + w], r1[2 * v0 + w]);
                for (ptrdiff_t v = 0; v < nv; ++v)
                    d[v0 + v] = G(nanmax)(t[2 * v], t[2 * v + 1]);
            }
        }
        G(act)(op->act, (T)op->alpha, yp, OH * OW);
    }
}

static void G(pool)(const cnn_plan_op *op, ptrdiff_t lo, ptrdiff_t hi, const T *x, T *y)
{
    const ptrdiff_t H = op->p[1], W = op->p[2], OH = op->p[3], OW = op->p[4];
    const ptrdiff_t DH = op->p[5], DW = op->p[6];
    const int is_max = op->p[7] != 0;
    const ptrdiff_t *rows = op->tab, *cols = op->tab + 3 * OH;
    for (ptrdiff_t pl = lo; pl < hi; ++pl) {
        const T *xp = x + pl * H * W;
        T *yp = y + pl * OH * OW;
        for (ptrdiff_t u = 0; u < OH; ++u) {
            const ptrdiff_t r0 = rows[3 * u], nr = rows[3 * u + 1];
            const T dr = (T)rows[3 * u + 2];
            for (ptrdiff_t v = 0; v < OW; ++v) {
                const ptrdiff_t c0 = cols[3 * v], nc = cols[3 * v + 1];
                T acc = is_max ? -(T)__builtin_inf() : (T)0;
                for (ptrdiff_t i = 0; i < nr; ++i) {
                    const T *xr = xp + (r0 + i * DH) * W + c0;
                    if (is_max) {
                        for (ptrdiff_t j = 0; j < nc; ++j)
                            acc = G(nanmax)(acc, xr[j * DW]);
                    } else {
                        for (ptrdiff_t j = 0; j < nc; ++j)
                            acc += xr[j];
                    }
                }
                yp[u * OW + v] = is_max ? acc : acc / (dr * (T)cols[3 * v + 2]);
            }
        }
        G(act)(op->act, (T)op->alpha, yp, OH * OW);
    }
}

/* ---- the rest ---------------------------------------------------------------------------------------- */

/* Planes lo .. hi of a chunk's m*C. */
static void G(affine)(const cnn_plan_op *op, ptrdiff_t lo, ptrdiff_t hi, const T *x, T *y)
{
    const ptrdiff_t C = op->p[0], S = op->p[1];
    const T *scale = (const T *)op->w, *shift = (const T *)op->b;
    for (ptrdiff_t pl = lo; pl < hi; ++pl) {
        const T *s = x + pl * S;
        T *d = y + pl * S;
        const T a = scale[pl % C], b = shift[pl % C];
        for (ptrdiff_t q = 0; q < S; ++q)
            d[q] = s[q] * a + b;
        G(act)(op->act, (T)op->alpha, d, S);
    }
}

static void G(softmax)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y)
{
    const ptrdiff_t N = op->p[0];
    const int log_ = op->p[1] != 0;
    for (ptrdiff_t i = 0; i < m * op->p[2]; ++i) {
        const T *s = x + i * N;
        T *d = y + i * N;
        T mx = s[0];
        for (ptrdiff_t j = 1; j < N; ++j)
            mx = G(nanmax)(mx, s[j]);
        T total = 0;
        for (ptrdiff_t j = 0; j < N; ++j) {
            const T e = EXP(s[j] - mx);
            total += e;
            if (!log_)
                d[j] = e;
        }
        if (log_) {
            const T lt = LOG(total);
            for (ptrdiff_t j = 0; j < N; ++j)
                d[j] = (s[j] - mx) - lt;
        } else {
            for (ptrdiff_t j = 0; j < N; ++j)
                d[j] /= total;
        }
    }
}

/* ---- recurrent layers, embedding, strided copies --------------------------------------------------- */

/* plan.h's CNN_OP_RECURRENT: one layer over the T steps of m samples, x (m, T, D) -> y (m, T, H). The gate
 * math is _recurrent.pyx's, operation for operation (activations.c's sigmoid and tanh loops on each row's
 * gate blocks), so the plan's values are the layer's up to the order of the products' sums. */
static int G(recurrent)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y, T *xw, T *work)
{
    const ptrdiff_t Ts = op->p[0], D = op->p[1], H = op->p[2], ldi = op->p[4], ldh = op->p[5];
    const int cell = (int)op->p[3];
    const ptrdiff_t GH = (cell == 2 ? 4 : cell == 3 ? 3 : 1) * H, xs = Ts * GH, ys = Ts * H;
    const T *Whh = (const T *)op->w2, *bhh = (const T *)op->b2;
    T *hh = work, *cs = work + m * GH;           /* (m, GH) recurrent products, (m, H) LSTM cells */
    /* every step's input projection at once: (m*T, D) @ W_ih^T + b */
    if (G(dense)(m * Ts, D, GH, ldi, x, D, (const T *)op->w, (const T *)op->b, xw, GH) != 0)
        return -1;
    if (cell == 2)
        memset(cs, 0, (size_t)(m * H) * sizeof(T));
    for (ptrdiff_t t = 0; t < Ts; ++t) {
        /* hh = h_{t-1} W_hh^T (+ the GRU's b_hh); h_0 = 0: only the GRU's bias is left at t = 0 */
        if (t > 0) {
            if (G(dense)(m, H, GH, ldh, y + (t - 1) * H, ys, Whh, bhh, hh, GH) != 0)
                return -1;
        } else if (cell == 3) {
            for (ptrdiff_t i = 0; i < m; ++i)
                for (ptrdiff_t j = 0; j < GH; ++j)
                    hh[i * GH + j] = bhh != NULL ? bhh[j] : (T)0;
        }
        for (ptrdiff_t i = 0; i < m; ++i) {
            T *g = xw + i * xs + t * GH, *hr = hh + i * GH, *h = y + i * ys + t * H;
            const T *hp = y + i * ys + (t - 1) * H;          /* h_{t-1}, read only for t > 0 */
            if (cell <= 1) {
                if (t > 0)
                    for (ptrdiff_t j = 0; j < H; ++j)
                        g[j] += hr[j];
                ACT_FWD(cell == 0 ? CNN_TANH : CNN_RELU, g, h, H, (T)1);
            } else if (cell == 2) {
                T *c = cs + i * H;
                if (t > 0)
                    for (ptrdiff_t j = 0; j < GH; ++j)
                        g[j] += hr[j];
                ACT_FWD(CNN_SIGMOID, g, g, 2 * H, (T)1);              /* i, f */
                ACT_FWD(CNN_TANH, g + 2 * H, g + 2 * H, H, (T)1);     /* g */
                ACT_FWD(CNN_SIGMOID, g + 3 * H, g + 3 * H, H, (T)1);  /* o */
                for (ptrdiff_t j = 0; j < H; ++j)
                    c[j] = g[H + j] * c[j] + g[j] * g[2 * H + j];
                ACT_FWD(CNN_TANH, c, hr, H, (T)1);                   /* tanh(c_t), in hh's spent row */
                for (ptrdiff_t j = 0; j < H; ++j)
                    h[j] = g[3 * H + j] * hr[j];
            } else {
                for (ptrdiff_t j = 0; j < 2 * H; ++j)
                    g[j] += hr[j];
                ACT_FWD(CNN_SIGMOID, g, g, 2 * H, (T)1);              /* r, z */
                for (ptrdiff_t j = 0; j < H; ++j)
                    g[2 * H + j] += g[j] * hr[2 * H + j];
                ACT_FWD(CNN_TANH, g + 2 * H, g + 2 * H, H, (T)1);     /* n */
                for (ptrdiff_t j = 0; j < H; ++j) {
                    const T z = g[H + j];
                    h[j] = (1 - z) * g[2 * H + j] + z * (t > 0 ? hp[j] : (T)0);
                }
            }
        }
    }
    return 0;
}

static void G(gather)(const cnn_plan_op *op, ptrdiff_t m, const ptrdiff_t *idx, T *y)
{
    const ptrdiff_t E = op->p[1];
    const T *table = (const T *)op->w;
    for (ptrdiff_t r = 0; r < m * op->p[0]; ++r)
        memcpy(y + r * E, table + idx[r] * E, (size_t)E * sizeof(T));
}

static void G(place)(const cnn_plan_op *op, ptrdiff_t m, const T *x, T *y)
{
    const ptrdiff_t outer = op->p[0], len = op->p[1], ss = op->p[2], so = op->p[3], sz = op->p[4];
    const ptrdiff_t ds = op->p[5], dof = op->p[6], dz = op->p[7];
    for (ptrdiff_t n = 0; n < m; ++n)
        for (ptrdiff_t o = 0; o < outer; ++o)
            memcpy(y + n * dz + o * ds + dof, x + n * sz + o * ss + so, (size_t)len * sizeof(T));
}

/* The ops a chunk's team leaves to thread 0 (a GEMM's, or too little work to share). */
static int G(run_serial)(const cnn_plan_op *op, ptrdiff_t m, const void *x, T *src, T *dst, T *tmp, T *tmp2)
{
    switch (op->kind) {
    case CNN_OP_LINEAR:
        return G(linear)(op, m, src, dst);
    case CNN_OP_SOFTMAX:
        G(softmax)(op, m, src, dst);
        return 0;
    case CNN_OP_RECURRENT:
        return G(recurrent)(op, m, src, dst, tmp, tmp2);
    case CNN_OP_GATHER:
        G(gather)(op, m, (const ptrdiff_t *)x, dst);      /* its source is always the input */
        return 0;
    default: /* CNN_OP_PLACE */
        G(place)(op, m, src, dst);
        return 0;
    }
}

/* One chunk of m samples through every op, on thread th->tid of th->nth: with more than one (the plan's
 * team, plan.c) every thread runs every op, claiming pieces of the convolutions' tiles, of the planes of
 * poolings and batch norms and of elementwise ops (whole blocks of 64 elements, so each element sees the
 * same loop at any thread count) as it gets to them (plan.c's cnn_plan_take); the other ops run on thread
 * 0; each op ends when all its pieces are done (cnn_plan_sync). The slots resolve against this chunk's
 * input and output rows and the arena. */
static int G(run_chunk)(const cnn_plan_op *ops, int nops, ptrdiff_t m, const void *x, T *y, T *arena,
                        cnn_plan_thread *th)
{
#define SLOT(s) ((s) == CNN_PLAN_IN ? (T *)x : (s) == CNN_PLAN_OUT ? y : arena + (s))
    int err = 0;
    for (int o = 0; o < nops; ++o) {
        const cnn_plan_op *op = &ops[o];
        T *src = SLOT(op->src), *dst = SLOT(op->dst);
        ptrdiff_t lo, hi;
        switch (op->kind) {
        case CNN_OP_CONV:
            err |= G(conv)(op, m, src, dst, SLOT(op->tmp), SLOT(op->tmp2), SLOT(op->src2), th);
            break;
        case CNN_OP_MAXPOOL2:
            while (cnn_plan_take(th, m * op->p[0], &lo, &hi))
                G(maxpool2)(op, lo, hi, src, dst);
            break;
        case CNN_OP_POOL:
            while (cnn_plan_take(th, m * op->p[0], &lo, &hi))
                G(pool)(op, lo, hi, src, dst);
            break;
        case CNN_OP_AFFINE:
            while (cnn_plan_take(th, m * op->p[0], &lo, &hi))
                G(affine)(op, lo, hi, src, dst);
            break;
        case CNN_OP_ACT:
        case CNN_OP_ADD:
        case CNN_OP_COPY: {
            const ptrdiff_t size = m * op->p[0];
            const T *s2 = SLOT(op->src2);
            while (cnn_plan_take(th, (size + 63) / 64, &lo, &hi)) {
                lo *= 64;
                hi = hi * 64 < size ? hi * 64 : size;
                if (op->kind == CNN_OP_ADD) {
                    for (ptrdiff_t i = lo; i < hi; ++i)
                        dst[i] = src[i] + s2[i];
                } else if (dst != src) {
                    for (ptrdiff_t i = lo; i < hi; ++i)
                        dst[i] = src[i];
                }
                if (op->kind != CNN_OP_COPY && hi > lo)
                    G(act)(op->act, (T)op->alpha, dst + lo, hi - lo);
            }
            break;
        }
        default:
            if (cnn_plan_solo(th))
                err |= G(run_serial)(op, m, x, src, dst, SLOT(op->tmp), SLOT(op->tmp2));
            break;
        }
        cnn_plan_sync(th);
    }
#undef SLOT
    return err ? -1 : 0;
}

#undef VL
#undef CCONV_RMAX
#undef SMALL_ROWS
#undef NV
#undef UINT
#undef T
#undef G
#undef GEMM
#undef WINO_IN
#undef WINO_OUT
#undef ACT_FWD
#undef EXP
#undef LOG
