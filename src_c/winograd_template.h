/* The transforms of winograd.c for one element type and instruction-set level; included once per pair with
 *   WT (float or double), WSFX (s or d), WTGT (base, avx2, avx512) and WATTR (the target attribute).
 * Every inner loop runs over the tiles of one tile row, contiguous in V and M, so the compiler vectorizes
 * it for the level's target. */
#define WCAT_(a, b, c) a##_##b##_##c
#define WCAT(a, b, c) WCAT_(a, b, c)
#define WFN(name) WCAT(name, WSFX, WTGT)

/* Rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3) of B^T d, in place over n values of the four rows d. */
WATTR static inline void WFN(wino_in_down)(WT *restrict d0, WT *restrict d1, WT *restrict d2, WT *restrict d3,
                                           ptrdiff_t n)
{
    for (ptrdiff_t p = 0; p < n; p++) {
        const WT a0 = d0[p], a1 = d1[p], a2 = d2[p], a3 = d3[p];
        d0[p] = a0 - a2;
        d1[p] = a1 + a2;
        d2[p] = a2 - a1;
        d3[p] = a1 - a3;
    }
}

/* V[xi*vs + s*TH*TW + th*TW + tw] = (B^T d B)[xi] for the TH x TW tiles of one channel's input plane in each
 * of n samples, x + s*xs_n (H x W, zero outside; tile (th, tw) reads rows 2*th - ph .. +3, columns
 * 2*tw - pw .. +3). line: WINO_LINE_IN(n, TH, TW) elements.
 * The even and odd columns of each tile row's 4 input rows, deinterleaved, with the zeros of the padding
 * (Q = TW + 1 columns per tile row); B^T down the columns over the n planes at once (at 7x7 a tile row is
 * only 4 tiles: loops per row would be mostly overhead); then B^T across each tile row, into V. */
WATTR static void WFN(wino_in)(ptrdiff_t n, const WT *restrict x, ptrdiff_t xs_n, ptrdiff_t H, ptrdiff_t W,
                               ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t TH, ptrdiff_t TW, WT *restrict v,
                               ptrdiff_t vs, WT *restrict line)
{
    const ptrdiff_t Q = TW + 1, P = n * TH * Q;
    WT *restrict e = line;          /* e[k*P + th*Q + q]: row 2*th - ph + k, column 2q - pw (even columns) */
    WT *restrict o = line + 4 * P;  /* o[...]: column 2q + 1 - pw (odd columns) */
    /* q in [qlo, qhi): both columns 2q - pw and 2q + 1 - pw inside the plane */
    ptrdiff_t qlo = pw <= 0 ? 0 : (pw + 1) / 2, qhi = (W - 1 + pw) / 2;
    if (qhi > Q) qhi = Q;
    if (qhi < qlo) qhi = qlo;
    for (ptrdiff_t sth = 0; sth < n * TH; sth++)
        for (int k = 0; k < 4; k++) {
            const ptrdiff_t th = sth % TH, row = 2 * th - ph + k;
            WT *restrict ek = e + k * P + sth * Q, *restrict ok = o + k * P + sth * Q;
            if (row < 0 || row >= H) {
                for (ptrdiff_t q = 0; q < Q; q++) ek[q] = ok[q] = 0;
                continue;
            }
            const WT *restrict xr = x + (sth / TH) * xs_n + row * W;
            for (ptrdiff_t q = 0; q < qlo; q++) {
                const ptrdiff_t c = 2 * q - pw;
                ek[q] = (c >= 0 && c < W) ? xr[c] : 0;
                ok[q] = (c + 1 >= 0 && c + 1 < W) ? xr[c + 1] : 0;
            }
            const WT *restrict xs = xr - pw;
            for (ptrdiff_t q = qlo; q < qhi; q++) {
                ek[q] = xs[2 * q];
                ok[q] = xs[2 * q + 1];
            }
            for (ptrdiff_t q = qhi; q < Q; q++) {
                const ptrdiff_t c = 2 * q - pw;
                ek[q] = (c >= 0 && c < W) ? xr[c] : 0;
                ok[q] = (c + 1 >= 0 && c + 1 < W) ? xr[c + 1] : 0;
            }
        }
    /* B^T d down the columns (rows d0 - d2, d1 + d2, d2 - d1, d1 - d3), then across each row: tile columns
     * (e[q], o[q], e[q+1], o[q+1]) = (c0, c1, c2, c3) -> (c0 - c2, c1 + c2, c2 - c1, c1 - c3). */
    /* B^T d down the columns, over every tile row at once, then across each tile row: tile columns
     * (e[q], o[q], e[q+1], o[q+1]) = (c0, c1, c2, c3) -> (c0 - c2, c1 + c2, c2 - c1, c1 - c3) into V. */
    WFN(wino_in_down)(e, e + P, e + 2 * P, e + 3 * P, P);
    WFN(wino_in_down)(o, o + P, o + 2 * P, o + 3 * P, P);
    for (ptrdiff_t sth = 0; sth < n * TH; sth++)
        for (int i = 0; i < 4; i++) {
            const WT *restrict ei = e + i * P + sth * Q, *restrict oi = o + i * P + sth * Q;
            WT *restrict v0 = v + (4 * i) * vs + sth * TW, *restrict v1 = v0 + vs, *restrict v2 = v1 + vs,
               *restrict v3 = v2 + vs;
            for (ptrdiff_t q = 0; q < TW; q++) {
                v0[q] = ei[q] - ei[q + 1];
                v1[q] = oi[q] + ei[q + 1];
                v2[q] = ei[q + 1] - oi[q];
                v3[q] = oi[q] - oi[q + 1];
            }
        }
}

/* One filter's output plane in each of n samples, y + s*ys_n (OH x OW) = A^T m A (+ b) from
 * M[xi*ms + t], t = s*TH*TW + th*TW + tw: A^T down and across every tile of the n planes in one pass (the
 * tiles' four outputs into four arrays), then those moved into place. line: WINO_LINE_OUT(n, TH, TW). */
WATTR static void WFN(wino_out)(ptrdiff_t n, const WT *restrict m, ptrdiff_t ms, ptrdiff_t TH, ptrdiff_t TW,
                                WT b, WT *restrict y, ptrdiff_t ys_n, ptrdiff_t OH, ptrdiff_t OW,
                                WT *restrict line)
{
    const ptrdiff_t TS = n * TH * TW;
    WT *restrict y00 = line, *restrict y01 = line + TS, *restrict y10 = line + 2 * TS,
       *restrict y11 = line + 3 * TS;
    for (ptrdiff_t t = 0; t < TS; t++) {
        WT p0[4], p1[4];
        /* A^T down each column j of the tile: p0 = m0 + m1 + m2, p1 = m1 - m2 - m3 */
        for (int j = 0; j < 4; j++) {
            const WT m0 = m[j * ms + t], m1 = m[(4 + j) * ms + t], m2 = m[(8 + j) * ms + t],
                     m3 = m[(12 + j) * ms + t];
            p0[j] = m0 + m1 + m2;
            p1[j] = m1 - m2 - m3;
        }
        y00[t] = p0[0] + p0[1] + p0[2] + b;
        y01[t] = p0[1] - p0[2] - p0[3] + b;
        y10[t] = p1[0] + p1[1] + p1[2] + b;
        y11[t] = p1[1] - p1[2] - p1[3] + b;
    }
    const ptrdiff_t full = OW / 2;   /* tiles whose two columns are both inside the output */
    for (ptrdiff_t sth = 0; sth < n * TH; sth++) {
        const ptrdiff_t th = sth % TH, t0 = sth * TW;
        WT *restrict r0 = y + (sth / TH) * ys_n + 2 * th * OW;
        for (ptrdiff_t q = 0; q < full; q++) {
            r0[2 * q] = y00[t0 + q];
            r0[2 * q + 1] = y01[t0 + q];
        }
        if (OW & 1) r0[OW - 1] = y00[t0 + full];
        if (2 * th + 1 < OH) {
            WT *restrict r1 = r0 + OW;
            for (ptrdiff_t q = 0; q < full; q++) {
                r1[2 * q] = y10[t0 + q];
                r1[2 * q + 1] = y11[t0 + q];
            }
            if (OW & 1) r1[OW - 1] = y10[t0 + full];
        }
    }
}

#undef WFN
#undef WCAT
#undef WCAT_
