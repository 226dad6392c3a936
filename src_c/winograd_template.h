/* The transforms of winograd.c for one element type and instruction-set level; included once per pair with
 *   WT (float or double), WSFX (s or d), WTGT (base, avx2, avx512) and WATTR (the target attribute), and
 *   WVEC defined at the vector levels (winograd.c's WVEC_* pieces: the canvas copies' register transposes).
 * Every inner loop runs over the tiles of one tile row, contiguous in V and M, so the compiler vectorizes
 * it for the level's target. */
#define WCAT_(a, b, c) a##_##b##_##c
#define WCAT(a, b, c) WCAT_(a, b, c)
#define WFN(name) WCAT(name, WSFX, WTGT)
#define WCAT2_(a, b) a##b
#define WCAT2(a, b) WCAT2_(a, b)

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

/* ---- F(4x4, 3x3): 6x6 tiles 4 apart, 36 transformed positions xi = 6a + b (winograd.h) ----
 * Tiles are numbered sample-minor, t = (th*TW + tw)*n + s: every transform step is one operation over the n
 * samples of a chunk (contiguous), whatever the image size (at 7x7 a plane has only 2x2 tiles, too few to
 * vectorize over). The GEMMs do not care how the tiles are numbered, as long as every transform agrees. */

/* o_i[s] = (B^T d)_i[s], d_k = d + k*is, o_i = o + i*os, s < n; B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0;
 * 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]. At most 3 roundings (2 and 4 are exact). */
WATTR static inline void WFN(wino4_bt)(const WT *restrict d, ptrdiff_t is, WT *restrict o, ptrdiff_t os,
                                       ptrdiff_t n)
{
    const WT *restrict d0 = d, *restrict d1 = d + is, *restrict d2 = d + 2 * is, *restrict d3 = d + 3 * is,
             *restrict d4 = d + 4 * is, *restrict d5 = d + 5 * is;
    WT *restrict o0 = o, *restrict o1 = o + os, *restrict o2 = o + 2 * os, *restrict o3 = o + 3 * os,
       *restrict o4 = o + 4 * os, *restrict o5 = o + 5 * os;
    #pragma GCC ivdep
    for (ptrdiff_t s = 0; s < n; s++) {
        const WT a1 = d1[s], a2 = d2[s], a3 = d3[s], a4 = d4[s], e = a4 - a2, f = a3 - a1;
        o0[s] = ((WT)4 * d0[s] - (WT)5 * a2) + a4;
        o1[s] = (a3 + a4) - (WT)4 * (a1 + a2);
        o2[s] = (a4 - a3) + (WT)4 * (a1 - a2);
        o3[s] = e + (WT)2 * f;
        o4[s] = e - (WT)2 * f;
        o5[s] = ((WT)4 * a1 - (WT)5 * a3) + d5[s];
    }
}

/* o_i[s] = (A^T m)_i[s], i < 4, from m_k = m + k*is, k < 6; A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1]. At most 3 roundings. */
WATTR static inline void WFN(wino4_at)(const WT *restrict m, ptrdiff_t is, WT *restrict o, ptrdiff_t os,
                                       ptrdiff_t n)
{
    const WT *restrict m0 = m, *restrict m1 = m + is, *restrict m2 = m + 2 * is, *restrict m3 = m + 3 * is,
             *restrict m4 = m + 4 * is, *restrict m5 = m + 5 * is;
    WT *restrict o0 = o, *restrict o1 = o + os, *restrict o2 = o + 2 * os, *restrict o3 = o + 3 * os;
    for (ptrdiff_t s = 0; s < n; s++) {
        const WT s12 = m1[s] + m2[s], d12 = m1[s] - m2[s], s34 = m3[s] + m4[s], d34 = m3[s] - m4[s];
        o0[s] = (m0[s] + s12) + s34;
        o1[s] = d12 + (WT)2 * d34;
        o2[s] = s12 + (WT)4 * s34;
        o3[s] = (d12 + (WT)8 * d34) + m5[s];
    }
}

/* o_a[s] = (A y)_a[s], a < 6, from y_k = y + k*is, k < 4 (A = the transpose of wino4_at's A^T, the adjoint of
 * the output transform): rows (y0), (y0 + y1 + y2 + y3), (y0 - y1 + y2 - y3), (y0 + 2y1 + 4y2 + 8y3),
 * (y0 - 2y1 + 4y2 - 8y3), (y3). At most 2 roundings. */
WATTR static inline void WFN(wino4_a)(const WT *restrict y, ptrdiff_t is, WT *restrict o, ptrdiff_t os,
                                      ptrdiff_t n)
{
    const WT *restrict y0 = y, *restrict y1 = y + is, *restrict y2 = y + 2 * is, *restrict y3 = y + 3 * is;
    WT *restrict o0 = o, *restrict o1 = o + os, *restrict o2 = o + 2 * os, *restrict o3 = o + 3 * os,
       *restrict o4 = o + 4 * os, *restrict o5 = o + 5 * os;
    #pragma GCC ivdep
    for (ptrdiff_t s = 0; s < n; s++) {
        const WT s02 = y0[s] + y2[s], s13 = y1[s] + y3[s];
        const WT q02 = y0[s] + (WT)4 * y2[s], q13 = y1[s] + (WT)4 * y3[s];
        o0[s] = y0[s];
        o1[s] = s02 + s13;
        o2[s] = s02 - s13;
        o3[s] = q02 + (WT)2 * q13;
        o4[s] = q02 - (WT)2 * q13;
        o5[s] = y3[s];
    }
}

/* Row j of n samples' planes into the sample-minor canvas: o[j*n + s] = x[s*xs + j], s < n, j < w. At a vector
 * level WVEC_LANES samples at a time, blocks of lanes x lanes values loaded as the samples' row pieces,
 * transposed in registers and stored as one vector per column (a row's last k < lanes values through a
 * masked load, which reads nothing past them); one by one without vectors and for the samples left over
 * (n not a multiple of the lanes). A copy: the canvas holds the same values either way. */
WATTR WINO_NOCALLS static inline void WFN(to_lanes)(ptrdiff_t n, const WT *restrict x, ptrdiff_t xs, ptrdiff_t w,
                                                   WT *restrict o)
{
    ptrdiff_t s0 = 0;
#ifdef WVEC
    enum { L = WCAT2(WVEC_LANES_, WSFX) };
    for (; s0 + L <= n; s0 += L)
        for (ptrdiff_t j = 0; j < w; j += L) {
            const ptrdiff_t k = w - j < L ? w - j : L;
            WCAT2(WVEC_TYPE_, WSFX) r[L];
            for (int s = 0; s < L; s++)
                r[s] = k == L ? WCAT2(WVEC_OP_, WSFX)(loadu)(x + (s0 + s) * xs + j)
                              : WCAT2(WVEC_OP_, WSFX)(maskload)(x + (s0 + s) * xs + j, WCAT2(WVEC_MASK_, WSFX)(k));
            WCAT2(WVEC_TRANSPOSE_, WSFX)(r);
            for (int q = 0; q < k; q++) WCAT2(WVEC_OP_, WSFX)(storeu)(o + (j + q) * n + s0, r[q]);
        }
#endif
    for (ptrdiff_t s = s0; s < n; s++)
        for (ptrdiff_t j = 0; j < w; j++) o[j * n + s] = x[s * xs + j];
}

/* The inverse copy, with a constant added: y[s*ys + j] = o[j*n + s] + b, s < n, j < w (the canvas's row out to
 * n samples' planes), in the same register transposes (a row's last k < lanes values stored masked). */
WATTR static inline void WFN(from_lanes)(ptrdiff_t n, const WT *restrict o, ptrdiff_t w, WT b, WT *restrict y,
                                        ptrdiff_t ys)
{
    ptrdiff_t s0 = 0;
#ifdef WVEC
    enum { L = WCAT2(WVEC_LANES_, WSFX) };
    const WCAT2(WVEC_TYPE_, WSFX) bv = WCAT2(WVEC_OP_, WSFX)(set1)(b);
    for (; s0 + L <= n; s0 += L)
        for (ptrdiff_t j = 0; j < w; j += L) {
            const ptrdiff_t k = w - j < L ? w - j : L;
            WCAT2(WVEC_TYPE_, WSFX) r[L];
            for (int q = 0; q < L; q++)
                r[q] = q < k ? WCAT2(WVEC_OP_, WSFX)(loadu)(o + (j + q) * n + s0) : WCAT2(WVEC_OP_, WSFX)(setzero)();
            WCAT2(WVEC_TRANSPOSE_, WSFX)(r);
            for (int s = 0; s < L; s++) {
                const WCAT2(WVEC_TYPE_, WSFX) v = WCAT2(WVEC_OP_, WSFX)(add)(r[s], bv);
                if (k == L)
                    WCAT2(WVEC_OP_, WSFX)(storeu)(y + (s0 + s) * ys + j, v);
                else
                    WCAT2(WVEC_OP_, WSFX)(maskstore)(y + (s0 + s) * ys + j, WCAT2(WVEC_MASK_, WSFX)(k), v);
            }
        }
#endif
    for (ptrdiff_t s = s0; s < n; s++)
        for (ptrdiff_t j = 0; j < w; j++) y[s * ys + j] = o[j * n + s] + b;
}

/* V[xi*vs + (th*TW + tw)*n + s] = (B^T d B)[xi] for the TH x TW tiles of one channel's plane in each of n
 * samples, x + s*xs_n (H x W, zero outside; tile (th, tw) reads rows 4*th - ph .. +5, columns 4*tw - pw .. +5).
 * The planes go sample-minor into a zeroed canvas pad[(r*Q + j)*n + s] (R = 4*TH + 2 rows, Q = 4*TW + 2
 * columns, row r input row r - ph); then per tile B^T down its 6 columns into h[(6i + b)*n + s] and across
 * its 6 rows into V. line: WINO4_LINE_IN(n, TH, TW) elements. */
WATTR WINO_NOCALLS static void WFN(wino4_in)(ptrdiff_t n, const WT *restrict x, ptrdiff_t xs_n, ptrdiff_t H,
                                            ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t TH, ptrdiff_t TW,
                                            WT *restrict v, ptrdiff_t vs, WT *restrict line)
{
    const ptrdiff_t R = 4 * TH + 2, Q = 4 * TW + 2;
    WT *restrict pad = line, *restrict h = line + R * Q * n;
    /* canvas rows [rlo, rhi) and columns [jlo, jhi) inside the plane, the rest zeros */
    const ptrdiff_t rlo = ph <= 0 ? 0 : ph < R ? ph : R, rhi = H + ph < R ? (H + ph > rlo ? H + ph : rlo) : R;
    const ptrdiff_t jlo = pw <= 0 ? 0 : pw < Q ? pw : Q, jhi = W + pw < Q ? (W + pw > jlo ? W + pw : jlo) : Q;
    for (ptrdiff_t i = 0; i < rlo * Q * n; i++) pad[i] = 0;
    for (ptrdiff_t i = rhi * Q * n; i < R * Q * n; i++) pad[i] = 0;
    for (ptrdiff_t r = rlo; r < rhi; r++) {
        WT *restrict pr = pad + r * Q * n;
        for (ptrdiff_t i = 0; i < jlo * n; i++) pr[i] = 0;
        for (ptrdiff_t i = jhi * n; i < Q * n; i++) pr[i] = 0;
        WFN(to_lanes)(n, x + (r - ph) * W - pw + jlo, xs_n, jhi - jlo, pr + jlo * n);
    }
    for (ptrdiff_t th = 0; th < TH; th++)
        for (ptrdiff_t tw = 0; tw < TW; tw++) {
            const WT *restrict base = pad + (4 * th * Q + 4 * tw) * n;
            for (int b = 0; b < 6; b++) WFN(wino4_bt)(base + b * n, Q * n, h + b * n, 6 * n, n);
            for (int i = 0; i < 6; i++)
                WFN(wino4_bt)(h + 6 * i * n, n, v + 6 * i * vs + (th * TW + tw) * n, vs, n);
        }
}

/* One filter's output plane in each of n samples, y + s*ys_n (OH x OW) = A^T m A (+ b) from
 * M[xi*ms + (th*TW + tw)*n + s]: per tile A^T down its 6 columns (P[(6i + l)*n + s]) and across its 4 rows into
 * a sample-minor canvas of the planes, Yc[(r*4TW + c)*n + s] (4TH x 4TW), then each sample's plane copied out
 * in order (cut at the output's edge). line: WINO4_LINE_OUT(n, TH, TW). */
WATTR static void WFN(wino4_out)(ptrdiff_t n, const WT *restrict m, ptrdiff_t ms, ptrdiff_t TH, ptrdiff_t TW,
                                 WT b, WT *restrict y, ptrdiff_t ys_n, ptrdiff_t OH, ptrdiff_t OW,
                                 WT *restrict line)
{
    const ptrdiff_t CW = 4 * TW;
    WT *restrict P = line, *restrict Yc = line + 24 * n;
    for (ptrdiff_t th = 0; th < TH; th++)
        for (ptrdiff_t tw = 0; tw < TW; tw++) {
            const WT *restrict mt = m + (th * TW + tw) * n;
            for (int l = 0; l < 6; l++) WFN(wino4_at)(mt + l * ms, 6 * ms, P + l * n, 6 * n, n);
            for (int i = 0; i < 4; i++)
                WFN(wino4_at)(P + 6 * i * n, n, Yc + ((4 * th + i) * CW + 4 * tw) * n, n, n);
        }
    for (ptrdiff_t r = 0; r < OH; r++) WFN(from_lanes)(n, Yc + r * CW * n, OW, b, y + r * OW, ys_n);
}

/* Delta's tiles for the weight gradient: D[xi*ds + (th*TW + tw)*n + s] = (A dy A^T)[xi] for the 4x4 blocks dy
 * of one filter's output-gradient plane in each of n samples, dy + s*ys_n (OH x OW, zero past its edge): the
 * planes copied in order into a zeroed sample-minor canvas Dc[(r*4TW + c)*n + s] (4TH x 4TW), then per tile
 * A down its 4 columns (E[(4a + j)*n + s]) and across its 6 rows into D. line: WINO4_LINE_OUT(n, TH, TW). */
WATTR WINO_NOCALLS static void WFN(wino4_dout)(ptrdiff_t n, const WT *restrict dy, ptrdiff_t ys_n,
                                              ptrdiff_t TH, ptrdiff_t TW, ptrdiff_t OH, ptrdiff_t OW,
                                              WT *restrict dd, ptrdiff_t ds, WT *restrict line)
{
    const ptrdiff_t CW = 4 * TW;
    WT *restrict E = line, *restrict Dc = line + 24 * n;
    for (ptrdiff_t r = 0; r < OH; r++) {   /* the plane's rows, zeros past its edge (OW <= CW, OH <= 4TH) */
        WFN(to_lanes)(n, dy + r * OW, ys_n, OW, Dc + r * CW * n);
        for (ptrdiff_t i = OW * n; i < CW * n; i++) Dc[r * CW * n + i] = 0;
    }
    for (ptrdiff_t i = OH * CW * n; i < 4 * TH * CW * n; i++) Dc[i] = 0;
    for (ptrdiff_t th = 0; th < TH; th++)
        for (ptrdiff_t tw = 0; tw < TW; tw++) {
            const WT *restrict bt = Dc + (4 * th * CW + 4 * tw) * n;
            for (int j = 0; j < 4; j++) WFN(wino4_a)(bt + j * n, CW * n, E + j * n, 4 * n, n);
            for (int a = 0; a < 6; a++)
                WFN(wino4_a)(E + 4 * a * n, n, dd + 6 * a * ds + (th * TW + tw) * n, ds, n);
        }
}

#undef WFN
#undef WCAT
#undef WCAT_
#undef WCAT2
#undef WCAT2_
