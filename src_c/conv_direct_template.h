/* The direct convolution's loops (conv_direct.h) for one element type at one instruction-set level, included
 * by conv_direct.c once per pair under the level's target pragma, with
 *   T (float or double), D(name) (the name mangler: dtype and level), VB (bytes of the level's vectors),
 *   FA_JF, FA_VP and FB_JF, FB_VP (the two forward tiles: filters x vectors of positions),
 *   W_JF, W_JK (the dW tile: filters x taps).
 * Register budget per tile: the accumulators JF*VP (forward) or W_JF*W_JK (dW), plus the operands of one
 * step, within the level's 16 (baseline, avx2) or 32 (avx512) vector registers. */

typedef T D(vec) __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));   /* unaligned, aliasing T */
#define DVL ((ptrdiff_t)(VB / (ptrdiff_t)sizeof(T)))

/* Loads and stores through the unaligned vector type, never through the accumulators' addresses: an
 * accumulator whose address is taken (a memcpy) lives on the stack, a load and a store per FMA. */
static inline __attribute__((always_inline)) D(vec) D(load)(const T *p) { return *(const D(vec) *)p; }
static inline __attribute__((always_inline)) void D(store)(T *p, D(vec) v) { *(D(vec) *)p = v; }

/* xs[j][c][r][q] = x[c][r - PH][q + j - PW] (zero outside x) for j < KW, r < Hp, q < OW: the KW column-shifted
 * copies of the padded planes, each only OW wide, so that tap (c, i, j) of output p = oh*OW + ow is
 * xs + j*S + c*Hp*OW + i*OW + p (S = C*Hp*OW): every position computed is an output. Then zeros up to npad.
 * Built through xp, the zero-padded planes xp[c][r][t] = x[c][r - PH][t - PW] (Wr wide): row (j, c, r) of xs
 * is OW elements of xp[c][r] from t = j, moved in whole vectors with no branch per element (rows are short:
 * 10 at LeNet-5's conv2). A row's last vector runs on into the row after it in xs, which is written later (the
 * loops go in memory order); the last row's runs into the slack, zeroed at the end. */
static void D(pad)(const cnn_dconv_geom *g, const T *x, T *xs, T *xp)
{
    const ptrdiff_t C = g->C, H = g->H, W = g->W, Hp = g->Hp, OW = g->OW, Wr = g->Wr, pw = g->PW;
    /* x's columns that some output reads: t = w + PW < OW + KW - 1 */
    const ptrdiff_t wn = W < OW + g->KW - 1 - pw ? W : OW + g->KW - 1 - pw;
    memset(xp, 0, (size_t)(C * Hp * Wr) * sizeof(T));
    for (ptrdiff_t c = 0; c < C; ++c)
        for (ptrdiff_t h = 0; h < H && h + g->PH < Hp; ++h)
            memcpy(xp + (c * Hp + h + g->PH) * Wr + pw, x + (c * H + h) * W, (size_t)wn * sizeof(T));
    const ptrdiff_t nv = (OW + DVL - 1) / DVL;
    for (ptrdiff_t j = 0; j < g->KW; ++j)
        for (ptrdiff_t cr = 0; cr < C * Hp; ++cr) {
            const T *src = xp + cr * Wr + j;
            T *dst = xs + (j * C * Hp + cr) * OW;
            for (ptrdiff_t v = 0; v < nv; ++v)
                D(store)(dst + v * DVL, D(load)(src + v * DVL));
        }
    memset(xs + g->S * g->KW, 0, (size_t)(g->npad - g->S * g->KW) * sizeof(T));
}

/* Offset of tap k = (c, i, j) in the shifted copies. */
static inline ptrdiff_t D(tap)(const cnn_dconv_geom *g, ptrdiff_t k)
{
    const ptrdiff_t KK = g->KH * g->KW, c = k / KK, i = k % KK / g->KW, j = k % g->KW;
    return j * g->S + (c * g->Hp + i) * g->OW;
}

/* out[j*ldo + v*VL + l] (j < JF, v < VP) = sum over taps (c, i, j') of w[tap*JF + j] xs[j'*S + c*Hp*OW + i*OW +
 * v*VL + l]: JF filters at VP*VL consecutive positions; acc[j][v] holds filter j's vector v. */
static inline __attribute__((always_inline)) void D(fwd_tile)(const int JF, const int VP, const cnn_dconv_geom *g,
                                                              const T *x, const T *w, T *out, ptrdiff_t ldo)
{
    const ptrdiff_t C = g->C, KH = g->KH, KW = g->KW, OW = g->OW, HO = g->Hp * g->OW, S = g->S;
    D(vec) acc[8][4];
#pragma GCC unroll 8
    for (int j = 0; j < JF; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < VP; ++v)
            acc[j][v] = (D(vec)){0};
    for (ptrdiff_t c = 0; c < C; ++c)
        for (ptrdiff_t i = 0; i < KH; ++i) {
            const T *xr = x + c * HO + i * OW;
            for (ptrdiff_t jj = 0; jj < KW; ++jj, w += JF) {
                D(vec) xv[4];
#pragma GCC unroll 4
                for (int v = 0; v < VP; ++v)
                    xv[v] = D(load)(xr + jj * S + v * DVL);
#pragma GCC unroll 8
                for (int j = 0; j < JF; ++j)
#pragma GCC unroll 4
                    for (int v = 0; v < VP; ++v)
                        acc[j][v] += w[j] * xv[v];
            }
        }
#pragma GCC unroll 8
    for (int j = 0; j < JF; ++j)
#pragma GCC unroll 4
        for (int v = 0; v < VP; ++v)
            D(store)(out + j * ldo + v * DVL, acc[j][v]);
}

/* Whole tiles of VP vectors, then the last Pw % (VP*VL) positions one vector at a time. */
static void D(fwd_tiles_a)(const cnn_dconv_geom *g, const T *xs, const T *wp, T *out)
{
    for (ptrdiff_t fb = 0; fb < g->Fp / FA_JF; ++fb) {
        const T *wb = wp + fb * g->K * FA_JF;
        T *ob = out + fb * FA_JF * g->Pw;
        ptrdiff_t p0 = 0;
        for (; p0 + FA_VP * DVL <= g->Pw; p0 += FA_VP * DVL)
            D(fwd_tile)(FA_JF, FA_VP, g, xs + p0, wb, ob + p0, g->Pw);
        for (; p0 < g->Pw; p0 += DVL)
            D(fwd_tile)(FA_JF, 1, g, xs + p0, wb, ob + p0, g->Pw);
    }
}

static void D(fwd_tiles_b)(const cnn_dconv_geom *g, const T *xs, const T *wp, T *out)
{
    for (ptrdiff_t fb = 0; fb < g->Fp / FB_JF; ++fb) {
        const T *wb = wp + fb * g->K * FB_JF;
        T *ob = out + fb * FB_JF * g->Pw;
        ptrdiff_t p0 = 0;
        for (; p0 + FB_VP * DVL <= g->Pw; p0 += FB_VP * DVL)
            D(fwd_tile)(FB_JF, FB_VP, g, xs + p0, wb, ob + p0, g->Pw);
        for (; p0 < g->Pw; p0 += DVL)
            D(fwd_tile)(FB_JF, 1, g, xs + p0, wb, ob + p0, g->Pw);
    }
}

static void D(forward)(const cnn_dconv_geom *g, ptrdiff_t n, const T *x, const T *wp, const T *bias, int relu,
                       T *y, T *scratch)
{
    const ptrdiff_t F = g->F, P = g->OH * g->OW, Pw = g->Pw;
    T *pad = scratch, *out = scratch + g->npad;
    for (ptrdiff_t s = 0; s < n; ++s) {
        D(pad)(g, x + s * g->C * g->H * g->W, pad, scratch + g->xp_at);
        if (g->JF == FA_JF && g->VP == FA_VP)
            D(fwd_tiles_a)(g, pad, wp, out);
        else
            D(fwd_tiles_b)(g, pad, wp, out);
        /* epilogue: + bias, then max(z, 0) for a fused ReLU (NaN kept, as activations.c's), the rows cut to
         * the P outputs */
        T *ys = y + s * F * P;
        for (ptrdiff_t f = 0; f < F; ++f) {
            const T b = bias != NULL ? bias[f] : (T)0;
            const T *src = out + f * Pw;
            T *dst = ys + f * P;
            if (relu)
                for (ptrdiff_t q = 0; q < P; ++q) {
                    const T z = src[q] + b;
                    dst[q] = z <= 0 ? (T)0 : z;
                }
            else
                for (ptrdiff_t q = 0; q < P; ++q)
                    dst[q] = src[q] + b;
        }
    }
}

/* dd[q] = dy[q] for q < L, or, through a fused ReLU whose output is a (not NULL), dy[q] where a[q] > 0 and 0
 * elsewhere (activations.c's relu backward): the output gradient row the dW and dX tiles read. */
static void D(grad_row)(const T *dy, const T *a, T *dd, ptrdiff_t L)
{
    if (a == NULL)
        memcpy(dd, dy, (size_t)L * sizeof(T));
    else
        for (ptrdiff_t q = 0; q < L; ++q)
            dd[q] = a[q] > 0 ? dy[q] : (T)0;
}

/* res[j*W_JK + k] = sum over the ns samples (dd and x `ss` elements apart) and nv position vectors of
 * dd[j*Pw + v*VL + l] * x[off[k] + v*VL + l]: W_JF filters' output gradients against W_JK taps' shifted inputs;
 * acc[j][k] holds one lane-wise partial sum per pair, added across lanes in lane order at the end (once per
 * group of samples: at 10x10 outputs a sample is only 9 vectors of 16). */
static void D(dw_tile)(ptrdiff_t ns, ptrdiff_t ss, ptrdiff_t nv, const T *dd, ptrdiff_t Pw, const T *x,
                       const ptrdiff_t *off, T *res)
{
    D(vec) acc[W_JF][W_JK];
#pragma GCC unroll 8
    for (int j = 0; j < W_JF; ++j)
#pragma GCC unroll 8
        for (int k = 0; k < W_JK; ++k)
            acc[j][k] = (D(vec)){0};
    for (ptrdiff_t s = 0; s < ns; ++s, dd += ss, x += ss)
        for (ptrdiff_t v = 0; v < nv; ++v) {
            D(vec) d[W_JF];
#pragma GCC unroll 8
            for (int j = 0; j < W_JF; ++j)
                d[j] = D(load)(dd + j * Pw + v * DVL);
#pragma GCC unroll 8
            for (int k = 0; k < W_JK; ++k) {
                const D(vec) xv = D(load)(x + off[k] + v * DVL);
#pragma GCC unroll 8
                for (int j = 0; j < W_JF; ++j)
                    acc[j][k] += d[j] * xv;
            }
        }
    T lanes[W_JF * W_JK][DVL];
#pragma GCC unroll 8
    for (int j = 0; j < W_JF; ++j)
#pragma GCC unroll 8
        for (int k = 0; k < W_JK; ++k)
            D(store)(lanes[j * W_JK + k], acc[j][k]);
    for (int r = 0; r < W_JF * W_JK; ++r) {
        T s = 0;
        for (ptrdiff_t l = 0; l < DVL; ++l)
            s += lanes[r][l];
        res[r] = s;
    }
}

/* Samples in groups of g->grp (from the geometry alone): each sample's shifted copies and output
 * gradient side by side in scratch (`ss` elements per sample), then every tile runs over the whole group. */
static void D(dw)(const cnn_dconv_geom *g, ptrdiff_t n, const T *x, const T *dy, const T *a, T *gw, T *gb,
                  T *scratch)
{
    const ptrdiff_t F = g->F, Pw = g->Pw, K = g->K, L = g->OH * g->OW, ss = g->npad + g->Fq * Pw;
    /* dd (Fq, Pw) after each sample's shifted copies: rows past F stay zero, and in rows < F the positions
     * past L */
    for (ptrdiff_t s = 0; s < g->grp && s < n; ++s)
        memset(scratch + s * ss + g->npad, 0, (size_t)(g->Fq * Pw) * sizeof(T));
    for (ptrdiff_t s0 = 0; s0 < n; s0 += g->grp) {
        const ptrdiff_t ns = n - s0 < g->grp ? n - s0 : g->grp;
        for (ptrdiff_t s = 0; s < ns; ++s) {
            const ptrdiff_t at = (s0 + s) * F * L;
            T *dd = scratch + s * ss + g->npad;
            D(pad)(g, x + (s0 + s) * g->C * g->H * g->W, scratch + s * ss, scratch + g->xp_at);
            for (ptrdiff_t f = 0; f < F; ++f)
                D(grad_row)(dy + at + f * L, a != NULL ? a + at + f * L : NULL, dd + f * Pw, L);
        }
        if (gb != NULL)     /* db[f] = the sum of dd's row f (zero past L): lane-wise, then across */
            for (ptrdiff_t f = 0; f < F; ++f) {
                D(vec) acc = {0};
                for (ptrdiff_t s = 0; s < ns; ++s)
                    for (ptrdiff_t v = 0; v < Pw; v += DVL)
                        acc += D(load)(scratch + s * ss + g->npad + f * Pw + v);
                T lanes[DVL], sum = 0;
                D(store)(lanes, acc);
                for (ptrdiff_t l = 0; l < DVL; ++l)
                    sum += lanes[l];
                gb[f] += sum;
            }
        for (ptrdiff_t kb = 0; kb < g->Kq; kb += W_JK) {
            ptrdiff_t off[W_JK];
            for (int k = 0; k < W_JK; ++k) {
                off[k] = D(tap)(g, kb + k < K ? kb + k : 0);     /* taps past K: any in-range read, dropped */
            }
            for (ptrdiff_t fb = 0; fb < g->Fq; fb += W_JF) {
                T res[W_JF * W_JK];
                D(dw_tile)(ns, ss, Pw / DVL, scratch + g->npad + fb * Pw, Pw, scratch, off, res);
                for (int j = 0; j < W_JF && fb + j < F; ++j)
                    for (int k = 0; k < W_JK && kb + k < K; ++k)
                        gw[(fb + j) * K + kb + k] += res[j * W_JK + k];
            }
        }
    }
}

/* The input gradient's tile: for X_JT planes t of the shifted copies' gradient (t: (c, j) pairs) and VP vectors of
 * their positions P from the tile's start, acc[t][v] = sum over f < F, i < KH of w[(f*KH + i)*X_JT + t] *
 * dd[f*R + (KH-1-i)*OW + v*VL + l], the output gradients P - i*OW (zero rows around them in dd): a gather over
 * the filters and kernel rows, stored once. (The adjoint of the forward's reads as a scatter, each tap's products
 * added into the copies' gradient tile by tile, 12 read-modify-writes of vectors a row of outputs apart per 16
 * filters' products, did fewer products but took longer: LeNet-5's conv2 backward, one thread, 1046-1141 us
 * against 969-1057 now; two threads 850-886 against 605-845.) */
static inline __attribute__((always_inline)) void D(dx_tile)(const int VP, ptrdiff_t F, ptrdiff_t KH, ptrdiff_t OW,
                                                             ptrdiff_t R, const T *dd, const T *w, T *out,
                                                             ptrdiff_t ldo)
{
    D(vec) acc[X_JT][X_VP];
#pragma GCC unroll 8
    for (int t = 0; t < X_JT; ++t)
#pragma GCC unroll 4
        for (int v = 0; v < VP; ++v)
            acc[t][v] = (D(vec)){0};
    for (ptrdiff_t f = 0; f < F; ++f) {
        const T *row = dd + f * R + (KH - 1) * OW;
        for (ptrdiff_t i = 0; i < KH; ++i, w += X_JT) {
            D(vec) d[X_VP];
#pragma GCC unroll 4
            for (int v = 0; v < VP; ++v)
                d[v] = D(load)(row - i * OW + v * DVL);
#pragma GCC unroll 8
            for (int t = 0; t < X_JT; ++t)
#pragma GCC unroll 4
                for (int v = 0; v < VP; ++v)
                    acc[t][v] += w[t] * d[v];
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < X_JT; ++t)
#pragma GCC unroll 4
        for (int v = 0; v < VP; ++v)
            D(store)(out + t * ldo + v * DVL, acc[t][v]);
}

/* dx (n, C, H, W) = dC/dx from dy (n, F, OH, OW) and wp (cnn_*dconv_pack_dx): per sample, the output gradient
 * rows with (KH-1)*OW zeros before and zeros after (dd, R apart), the shifted copies' gradient
 * dxs[c*KW + j][r*OW + q] = sum_{f,i} w[f, c, i, j] dy[f][(r - i)*OW + q] (planes PL apart) block of X_JT planes
 * by block, then folded: dx[c][h][w] = sum over j (in order) of dxs[c*KW + j][(h + PH)*OW + w + PW - j]. */
static void D(dx)(const cnn_dconv_geom *g, ptrdiff_t n, const T *dy, const T *a, const T *wp, T *dx,
                  T *scratch)
{
    const ptrdiff_t C = g->C, H = g->H, W = g->W, F = g->F, KH = g->KH, KW = g->KW, OW = g->OW, Hp = g->Hp;
    const ptrdiff_t L = g->OH * OW, PL = g->PL, R = g->Rd, lead = (KH - 1) * OW;
    T *dxs = scratch, *dd = scratch + g->Kx * PL;
    memset(dd, 0, (size_t)(F * R) * sizeof(T));
    for (ptrdiff_t s = 0; s < n; ++s) {
        const ptrdiff_t at = s * F * L;
        for (ptrdiff_t f = 0; f < F; ++f)
            D(grad_row)(dy + at + f * L, a != NULL ? a + at + f * L : NULL, dd + f * R + lead, L);
        for (ptrdiff_t pb = 0; pb < g->Kx; pb += X_JT) {
            const T *wb = wp + pb * F * KH;
            T *ob = dxs + pb * PL;
            ptrdiff_t p0 = 0;
            for (; p0 + X_VP * DVL <= PL; p0 += X_VP * DVL)
                D(dx_tile)(X_VP, F, KH, OW, R, dd + p0, wb, ob + p0, PL);
            for (; p0 < PL; p0 += DVL)
                D(dx_tile)(1, F, KH, OW, R, dd + p0, wb, ob + p0, PL);
        }
        T *dxo = dx + s * C * H * W;
        for (ptrdiff_t c = 0; c < C; ++c)
            for (ptrdiff_t h = 0; h < H; ++h) {
                const ptrdiff_t r = h + g->PH;
                T *dst = dxo + (c * H + h) * W;
                memset(dst, 0, (size_t)W * sizeof(T));
                if (r >= Hp)                            /* rows no output reads (the padding after cut them) */
                    continue;
                for (ptrdiff_t j = 0; j < KW; ++j) {
                    /* dst[w] += dxs[c*KW + j][r*OW + w + PW - j] for 0 <= w + PW - j < OW */
                    const T *src = dxs + (c * KW + j) * PL + r * OW + g->PW - j;
                    const ptrdiff_t wlo = j - g->PW > 0 ? j - g->PW : 0;
                    const ptrdiff_t whi = OW + j - g->PW < W ? OW + j - g->PW : W;
                    for (ptrdiff_t w = wlo; w < whi; ++w)
                        dst[w] += src[w];
                }
            }
    }
}

#undef DVL
