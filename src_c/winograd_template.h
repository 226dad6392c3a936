/* The transforms of winograd.c for one element type and instruction-set level; included once per pair with
 *   WT (float or double), WSFX (s or d), WTGT (base, avx2, avx512) and WATTR (the target attribute).
 * Every inner loop runs over the tiles of one tile row, contiguous in V and M, so the compiler vectorizes
 * it for the level's target. */
#define WCAT_(a, b, c) a##_##b##_##c
#define WCAT(a, b, c) WCAT_(a, b, c)
#define WFN(name) WCAT(name, WSFX, WTGT)

/* Row i of the transformed tiles, r[j*P + p] for j < 4, from the even (ea, eb) and odd (oa, ob) columns of
 * the two input rows whose sum (sg = 1) or difference (sg = -1) is row i of B^T d; p < P - 1. */
WATTR static inline void WFN(wino_in_row)(const WT *restrict ea, const WT *restrict eb, const WT *restrict oa,
                                          const WT *restrict ob, WT sg, WT *restrict r, ptrdiff_t P)
{
    WT *restrict r0 = r, *restrict r1 = r + P, *restrict r2 = r + 2 * P, *restrict r3 = r + 3 * P;
    for (ptrdiff_t p = 0; p + 1 < P; p++) {
        const WT c0 = ea[p] + sg * eb[p], c1 = oa[p] + sg * ob[p];
        const WT c2 = ea[p + 1] + sg * eb[p + 1], c3 = oa[p + 1] + sg * ob[p + 1];
        r0[p] = c0 - c2;
        r1[p] = c1 + c2;
        r2[p] = c2 - c1;
        r3[p] = c1 - c3;
    }
}

/* V[xi*vs + th*TW + tw] = (B^T d B)[xi] for the TH x TW tiles of one input plane x (H x W, zero outside;
 * tile (th, tw) reads rows 2*th - ph .. +3, columns 2*tw - pw .. +3). line: WINO_LINE_IN(TH, TW) elements.
 * Three passes so that the arithmetic runs over the whole plane at once (at 7x7 a tile row is only 4 tiles):
 * the even and odd columns of each tile row's 4 input rows, deinterleaved, with the zeros of the padding; B^T
 * down and across them, over every tile row together (Q = TW + 1 columns per tile row, the last one unused);
 * then the 16 results' rows copied into V. */
WATTR static void WFN(wino_in)(const WT *restrict x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                               ptrdiff_t TH, ptrdiff_t TW, WT *restrict v, ptrdiff_t vs, WT *restrict line)
{
    const ptrdiff_t Q = TW + 1, P = TH * Q;
    WT *restrict e = line;          /* e[k*P + th*Q + q]: row 2*th - ph + k, column 2q - pw (even columns) */
    WT *restrict o = line + 4 * P;  /* o[...]: column 2q + 1 - pw (odd columns) */
    WT *restrict r = line + 8 * P;  /* r[xi*P + th*Q + q]: the transformed tile (th, q) */
    /* q in [qlo, qhi): both columns 2q - pw and 2q + 1 - pw inside the plane */
    ptrdiff_t qlo = pw <= 0 ? 0 : (pw + 1) / 2, qhi = (W - 1 + pw) / 2;
    if (qhi > Q) qhi = Q;
    if (qhi < qlo) qhi = qlo;
    for (ptrdiff_t th = 0; th < TH; th++)
        for (int k = 0; k < 4; k++) {
            const ptrdiff_t row = 2 * th - ph + k;
            WT *restrict ek = e + k * P + th * Q, *restrict ok = o + k * P + th * Q;
            if (row < 0 || row >= H) {
                for (ptrdiff_t q = 0; q < Q; q++) ek[q] = ok[q] = 0;
                continue;
            }
            const WT *restrict xr = x + row * W;
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
    /* row i of B^T d is d[a] + sg * d[b]: (0, 2, -1), (1, 2, +1), (2, 1, -1), (1, 3, -1) */
    WFN(wino_in_row)(e, e + 2 * P, o, o + 2 * P, -1, r, P);
    WFN(wino_in_row)(e + P, e + 2 * P, o + P, o + 2 * P, 1, r + 4 * P, P);
    WFN(wino_in_row)(e + 2 * P, e + P, o + 2 * P, o + P, -1, r + 8 * P, P);
    WFN(wino_in_row)(e + P, e + 3 * P, o + P, o + 3 * P, -1, r + 12 * P, P);
    for (int xi = 0; xi < 16; xi++)
        for (ptrdiff_t th = 0; th < TH; th++) {
            const WT *restrict src = r + xi * P + th * Q;
            WT *restrict dst = v + xi * vs + th * TW;
            for (ptrdiff_t q = 0; q < TW; q++) dst[q] = src[q];
        }
}

/* One output plane y (OH x OW) = A^T m A (+ b) from M[xi*ms + t], t = th*TW + tw: A^T down and across
 * every tile of the plane in one pass (its four outputs into four arrays), then those moved into place.
 * line: WINO_LINE_OUT(TH, TW) elements. */
WATTR static void WFN(wino_out)(const WT *restrict m, ptrdiff_t ms, ptrdiff_t TH, ptrdiff_t TW, WT b,
                                WT *restrict y, ptrdiff_t OH, ptrdiff_t OW, WT *restrict line)
{
    const ptrdiff_t TS = TH * TW;
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
    for (ptrdiff_t th = 0; th < TH; th++) {
        const ptrdiff_t t0 = th * TW;
        WT *restrict r0 = y + 2 * th * OW;
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
