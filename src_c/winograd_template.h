/* The transforms of winograd.c for one element type and instruction-set level; included once per pair with
 *   WT (float or double), WSFX (s or d), WTGT (base, avx2, avx512) and WATTR (the target attribute).
 * Every inner loop runs over the tiles of one tile row, contiguous in V and M, so the compiler vectorizes
 * it for the level's target. */
#define WCAT_(a, b, c) a##_##b##_##c
#define WCAT(a, b, c) WCAT_(a, b, c)
#define WFN(name) WCAT(name, WSFX, WTGT)

/* The four rows of B^T d for every row r of a: d_i[r*Q + q] from a[(r + k)*Q + q], k < 4, over n = rows*Q
 * values (rows (a0 - a2, a1 + a2, a2 - a1, a1 - a3), d_i at d + i*n). */
WATTR static inline void WFN(wino_in_down)(const WT *restrict a, ptrdiff_t Q, WT *restrict d, ptrdiff_t n)
{
    const WT *restrict a0 = a, *restrict a1 = a + Q, *restrict a2 = a + 2 * Q, *restrict a3 = a + 3 * Q;
    WT *restrict d0 = d, *restrict d1 = d + n, *restrict d2 = d + 2 * n, *restrict d3 = d + 3 * n;
    for (ptrdiff_t p = 0; p < n; p++) {
        d0[p] = a0[p] - a2[p];
        d1[p] = a1[p] + a2[p];
        d2[p] = a2[p] - a1[p];
        d3[p] = a1[p] - a3[p];
    }
}

/* V[xi*vs + s*TH*TW + th*TW + tw] = (B^T d B)[xi] for the TH x TW tiles of one channel's input plane in each
 * of n samples, x + s*xs_n (H x W, zero outside; tile (th, tw) reads rows 2*th - ph .. +3, columns
 * 2*tw - pw .. +3). line: WINO_LINE_IN(TH, TW) elements.
 * Per plane, so that the arithmetic runs in long loops (at 7x7 a tile row is only 4 tiles): the plane with its
 * zero padding, R = 2*TH + 2 rows of 2*Q columns (Q = TW + 1); its even and odd columns, deinterleaved in one
 * pass; B^T down the columns for every row r (rows r .. r + 3; the odd r are not used, but computing them
 * keeps the loop flat); then B^T across the even rows' tiles, into V. */
WATTR WINO_NOCALLS static void WFN(wino_in)(ptrdiff_t n, const WT *restrict x, ptrdiff_t xs_n, ptrdiff_t H, ptrdiff_t W,
                               ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t TH, ptrdiff_t TW, WT *restrict v,
                               ptrdiff_t vs, WT *restrict line)
{
    const ptrdiff_t Q = TW + 1, R = 2 * TH + 2, RQ = R * Q, DQ = (2 * TH - 1) * Q;
    WT *restrict pad = line;             /* (R, 2Q): row r is input row r - ph, column j input column j - pw */
    WT *restrict e = pad + 2 * RQ;       /* e[r*Q + q] = pad[r][2q] */
    WT *restrict o = e + RQ;             /* o[r*Q + q] = pad[r][2q + 1] */
    WT *restrict d = o + RQ;             /* d[(2i + eo)*DQ + r*Q + q]: row i of B^T (rows r..r+3), even/odd */
    ptrdiff_t jlo = pw > 0 ? pw : 0, jhi = W + pw < 2 * Q ? W + pw : 2 * Q;   /* columns inside the plane */
    if (jhi < jlo) jhi = jlo;
    for (ptrdiff_t s = 0; s < n; s++) {
        const WT *restrict xp = x + s * xs_n;
        for (ptrdiff_t r = 0; r < R; r++) {
            WT *restrict pr = pad + r * 2 * Q;
            const ptrdiff_t row = r - ph;
            if (row < 0 || row >= H) {
                for (ptrdiff_t j = 0; j < 2 * Q; j++) pr[j] = 0;
                continue;
            }
            for (ptrdiff_t j = 0; j < jlo; j++) pr[j] = 0;
            const WT *restrict xr = xp + row * W - pw;
            for (ptrdiff_t j = jlo; j < jhi; j++) pr[j] = xr[j];
            for (ptrdiff_t j = jhi; j < 2 * Q; j++) pr[j] = 0;
        }
        for (ptrdiff_t j = 0; j < RQ; j++) {
            e[j] = pad[2 * j];
            o[j] = pad[2 * j + 1];
        }
        /* B^T down the columns: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3) of rows r .. r + 3 */
        WFN(wino_in_down)(e, Q, d, DQ);
        WFN(wino_in_down)(o, Q, d + 4 * DQ, DQ);
        /* B^T across each tile row (rows r = 2*th): tile columns (e[q], o[q], e[q+1], o[q+1]) = (c0, c1, c2, c3)
         * -> (c0 - c2, c1 + c2, c2 - c1, c1 - c3) */
        for (ptrdiff_t th = 0; th < TH; th++)
            for (int i = 0; i < 4; i++) {
                const WT *restrict ei = d + i * DQ + 2 * th * Q, *restrict oi = d + (4 + i) * DQ + 2 * th * Q;
                WT *restrict v0 = v + (4 * i) * vs + (s * TH + th) * TW, *restrict v1 = v0 + vs,
                   *restrict v2 = v1 + vs, *restrict v3 = v2 + vs;
                for (ptrdiff_t q = 0; q < TW; q++) {
                    v0[q] = ei[q] - ei[q + 1];
                    v1[q] = oi[q] + ei[q + 1];
                    v2[q] = ei[q + 1] - oi[q];
                    v3[q] = oi[q] - oi[q + 1];
                }
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

/* Delta's tiles for the weight gradient: D[xi*ds + t] = (A dy A^T)[xi] for the 2x2 blocks dy of one filter's
 * output-gradient plane in each of n samples, dy + s*ys_n (OH x OW, zero past its edge), tile
 * t = s*TH*TW + th*TW + tw; A = [1 0; 1 1; 1 -1; 0 -1] (the adjoint of the output transform A^T m A).
 * line: WINO_LINE_OUT(n, TH, TW) elements (the four entries of every block). */
WATTR static void WFN(wino_dout)(ptrdiff_t n, const WT *restrict dy, ptrdiff_t ys_n, ptrdiff_t TH, ptrdiff_t TW,
                                 ptrdiff_t OH, ptrdiff_t OW, WT *restrict dd, ptrdiff_t ds, WT *restrict line)
{
    const ptrdiff_t TS = n * TH * TW, full = OW / 2;
    WT *restrict b00 = line, *restrict b01 = line + TS, *restrict b10 = line + 2 * TS, *restrict b11 = line + 3 * TS;
    for (ptrdiff_t sth = 0; sth < n * TH; sth++) {
        const ptrdiff_t th = sth % TH, t0 = sth * TW;
        const WT *restrict r0 = dy + (sth / TH) * ys_n + 2 * th * OW;
        for (ptrdiff_t q = 0; q < full; q++) {
            b00[t0 + q] = r0[2 * q];
            b01[t0 + q] = r0[2 * q + 1];
        }
        if (full < TW) { b00[t0 + full] = r0[OW - 1]; b01[t0 + full] = 0; }
        if (2 * th + 1 < OH) {
            const WT *restrict r1 = r0 + OW;
            for (ptrdiff_t q = 0; q < full; q++) {
                b10[t0 + q] = r1[2 * q];
                b11[t0 + q] = r1[2 * q + 1];
            }
            if (full < TW) { b10[t0 + full] = r1[OW - 1]; b11[t0 + full] = 0; }
        } else {
            for (ptrdiff_t q = 0; q < TW; q++) b10[t0 + q] = b11[t0 + q] = 0;
        }
    }
    for (ptrdiff_t t = 0; t < TS; t++) {
        /* A dy: rows (y0, y0 + y1, y0 - y1, -y1) of the block's rows y0, y1; then the same across */
        const WT c0[4] = {b00[t], b00[t] + b10[t], b00[t] - b10[t], -b10[t]};
        const WT c1[4] = {b01[t], b01[t] + b11[t], b01[t] - b11[t], -b11[t]};
        for (int a = 0; a < 4; a++) {
            dd[(4 * a) * ds + t] = c0[a];
            dd[(4 * a + 1) * ds + t] = c0[a] + c1[a];
            dd[(4 * a + 2) * ds + t] = c0[a] - c1[a];
            dd[(4 * a + 3) * ds + t] = -c1[a];
        }
    }
}

#undef WFN
#undef WCAT
#undef WCAT_
