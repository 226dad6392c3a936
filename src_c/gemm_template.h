/* Type-generic blocked GEMM driver, included once per element type by gemm.c.
 *
 * The caller defines (and this file #undefs at its end):
 *   T              element type
 *   G(name)        name mangler (s_name / d_name)
 *   C_MR, C_NR     the portable micro-kernel's tile (the baseline level's MR x NR)
 * Blocking is data: the level's context (gemm_cntx.h, read once per call) gives the micro-kernels and
 *   MR, NR         micro-tile of C computed by one micro-kernel call (register block)
 *   MC, KC, NC     cache blocks: an MC x KC block of A (packed, lives in L2), a KC x NC block of B
 *                  (packed, lives in L2/L3); one MR x KC micro-panel of A stays in L1 across the NC
 *                  columns while B's micro-panels stream past.
 *
 * Loop nest (Goto/BLIS): jc over NC columns, pc over KC depth, ic over MC rows, ir over MR, jr over NR
 * (ir outside jr: each band of MR rows of C is written left to right, MR store streams at a time; with
 * jr outside, the column of tiles touched all MC rows of C per panel, and on a Zen 4 core (150 x 16) @
 * (16 x 6400) float64 took 16% longer, (64 x 288) @ (288 x 50176) 8%, 1024^3 3-7%, none faster).
 * Packed panels are zero-padded to full MR/NR width, so the micro-kernel never branches on edges; edge
 * tiles of C go to the level's edge kernel (masked stores) or, without one, through a small buffer.
 *
 * Results never depend on the thread count: the depth blocks (KC) depend on k alone and the micro-tiles
 * are anchored at C's corner whatever the rows and columns each thread takes, so every element of C gets
 * the same operations in the same order (and the packed/unpacked choice depends on the shape alone, or
 * also on the thread count where both kernels give the same bits: gemm_cntx.h's sup_ratio_team).
 */

/* Portable micro-kernel: fixed trip counts so the compiler unrolls and vectorizes the j loop. */
static void G(kernel_c)(ptrdiff_t k, const T *a, const T *b, T *c, ptrdiff_t ldc, T alpha, T beta)
{
    T acc[C_MR][C_NR];
    for (int i = 0; i < C_MR; ++i)
        for (int j = 0; j < C_NR; ++j)
            acc[i][j] = 0;
    for (ptrdiff_t p = 0; p < k; ++p) {
        for (int i = 0; i < C_MR; ++i) {
            const T ai = a[i];
            for (int j = 0; j < C_NR; ++j)
                acc[i][j] += ai * b[j];
        }
        a += C_MR;
        b += C_NR;
    }
    for (int i = 0; i < C_MR; ++i) {
        T *ci = c + i * ldc;
        if (beta == 0) {
            for (int j = 0; j < C_NR; ++j)
                ci[j] = alpha * acc[i][j];
        } else {
            for (int j = 0; j < C_NR; ++j)
                ci[j] = alpha * acc[i][j] + beta * ci[j];
        }
    }
}

/* Pack `extent` lines of length kc into panels of W lines (W = MR for A, NR for B), each panel stored
 * step by step (W values per p), the last panel zero-padded to W. Element p of line i is x[i*ls + p*ps].
 * A is packed by rows (lines = rows of op(A): ls = rsa, ps = csa), B by columns (ls = csb, ps = rsb). */
static inline __attribute__((always_inline)) void G(pack_w)(const int W, ptrdiff_t extent, ptrdiff_t kc,
                                                            const T *x, ptrdiff_t ls, ptrdiff_t ps, T *dst,
                                                            G(packt_t) packt)
{
    const ptrdiff_t full = ls == 1 ? extent / W * W : 0;
    /* The lines' elements adjacent (B row-major, A column-major): CNN_GEMM_PACK_STEPS steps p at a time,
     * each panel's W values of those steps in turn, so the source is read as that many contiguous runs
     * side by side (read panel by panel it would be kc streams of W values, too many for the hardware
     * prefetcher; one run at a time, a run of B far larger than the caches streams from memory with one
     * stream in flight: an im2col product's B, (64 x 288) @ (288 x 50176), spent ~30% of its time packing
     * B, and 8 runs side by side made the product 17% faster in float32 and float64 on a Zen 4 core). */
    for (ptrdiff_t p = 0; p < kc; p += CNN_GEMM_PACK_STEPS) {
        const ptrdiff_t pend = kc - p < CNN_GEMM_PACK_STEPS ? kc : p + CNN_GEMM_PACK_STEPS;
        for (ptrdiff_t i0 = 0; i0 < full; i0 += W)
            for (ptrdiff_t q = p; q < pend; ++q)
                for (int i = 0; i < W; ++i)
                    dst[i0 * kc + q * W + i] = x[q * ps + i0 + i];
    }
    dst += full * kc;
    for (ptrdiff_t i0 = full; i0 < extent; i0 += W) {
        const ptrdiff_t w = extent - i0 < W ? extent - i0 : W;
        const T *xp = x + i0 * ls;
        if (ps == 1 && packt != NULL) {        /* each line contiguous: the level's vector transpose */
            packt(W, w, kc, xp, ls, dst);
        } else if (w == W && ps == 1) {        /* each line contiguous: W streams read in step */
            for (ptrdiff_t p = 0; p < kc; ++p)
                for (int i = 0; i < W; ++i)
                    dst[p * W + i] = xp[i * ls + p];
        } else {
            for (ptrdiff_t p = 0; p < kc; ++p) {
                for (ptrdiff_t i = 0; i < w; ++i)
                    dst[p * W + i] = xp[i * ls + p * ps];
                for (ptrdiff_t i = w; i < W; ++i)
                    dst[p * W + i] = 0;
            }
        }
        dst += W * kc;
    }
}

/* pack_w with the panel width a compile-time constant for every MR and NR of the context table (so the
 * copy loops unroll and vectorize), a run-time one otherwise; packt: the level's transposing copy of
 * contiguous lines, or NULL. */
static void G(pack)(int W, ptrdiff_t extent, ptrdiff_t kc, const T *x, ptrdiff_t ls, ptrdiff_t ps, T *dst,
                    G(packt_t) packt)
{
    switch (W) {
    case 6: G(pack_w)(6, extent, kc, x, ls, ps, dst, packt); break;
    case 8: G(pack_w)(8, extent, kc, x, ls, ps, dst, packt); break;
    case 14: G(pack_w)(14, extent, kc, x, ls, ps, dst, packt); break;
    case 16: G(pack_w)(16, extent, kc, x, ls, ps, dst, packt); break;
    case 32: G(pack_w)(32, extent, kc, x, ls, ps, dst, packt); break;
    default: G(pack_w)(W, extent, kc, x, ls, ps, dst, packt); break;
    }
}

/* Pack an mc x kc block of op(A) into MR-row panels (a row-major A has csa == 1: its rows are contiguous
 * lines, transposed by the level's packt; op(A) = A.T of a row-major array has rsa == 1). */
static void G(pack_a)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t mc, ptrdiff_t kc,
                      const T *a, ptrdiff_t rsa, ptrdiff_t csa, T *dst)
{
    G(pack)(bs->mr, mc, kc, a, rsa, csa, dst, cx->G(packt));
}

/* Pack a kc x nc block of op(B) into NR-column panels (plain row-major B has csb == 1; op(B) = B.T of a
 * row-major array, as in x @ w.T, has rsb == 1: contiguous lines, transposed by the level's packt). */
static void G(pack_b)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t kc, ptrdiff_t nc,
                      const T *b, ptrdiff_t rsb, ptrdiff_t csb, T *dst)
{
    G(pack)(bs->nr, nc, kc, b, csb, rsb, dst, cx->G(packt));
}

/* C[mr x nr] = tile[mr x nr] + beta * C (tile's rows ldt apart): a micro-tile computed into a buffer. */
static void G(add_tile)(const T *tile, ptrdiff_t ldt, ptrdiff_t mr, ptrdiff_t nr, T beta, T *c, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < mr; ++i) {
        T *ci = c + i * ldc;
        const T *ti = tile + i * ldt;
        if (beta == 0) {
            for (ptrdiff_t j = 0; j < nr; ++j)
                ci[j] = ti[j];
        } else {
            for (ptrdiff_t j = 0; j < nr; ++j)
                ci[j] = ti[j] + beta * ci[j];
        }
    }
}

/* The top-left mr x nr corner of one micro-tile, C = alpha * A_panel @ B_panel + beta * C at cc: the
 * micro-kernel for a whole tile, else the level's edge kernel, else the micro-kernel into `tile` (a buffer
 * of MR x NR) and the corner copied out. */
static inline void G(tile_update)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t kc, T alpha,
                                  const T *pa, const T *pb, T beta, T *cc, ptrdiff_t ldc, ptrdiff_t mr,
                                  ptrdiff_t nr, T *tile)
{
    if (mr == bs->mr && nr == bs->nr) {
        cx->G(ukr)(kc, pa, pb, cc, ldc, alpha, beta);
    } else if (cx->G(edge) != NULL) {
        cx->G(edge)(kc, pa, pb, cc, ldc, alpha, beta, mr, nr);
    } else {
        cx->G(ukr)(kc, pa, pb, tile, bs->nr, alpha, (T)0);
        G(add_tile)(tile, bs->nr, mr, nr, beta, cc, ldc);
    }
}

/* C[mc x nc] = alpha * packed A @ packed B + beta * C, one MR x NR tile at a time: pa holds mc rows of A
 * in MR-row panels, pb nc columns of B in NR-column panels, both over depth kc. */
static void G(macro_kernel)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t mc, ptrdiff_t nc,
                            ptrdiff_t kc, T alpha, const T *pa, const T *pb, T beta, T *c, ptrdiff_t ldc)
{
    const ptrdiff_t MR = bs->mr, NR = bs->nr;
    CNN_ALIGN64 T tile[CNN_GEMM_MAX_MR * CNN_GEMM_MAX_NR];
    for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
        const ptrdiff_t mr = mc - ir < MR ? mc - ir : MR;
        for (ptrdiff_t jr = 0; jr < nc; jr += NR)
            G(tile_update)(cx, bs, kc, alpha, pa + ir * kc, pb + jr * kc, beta, c + ir * ldc + jr, ldc, mr,
                           nc - jr < NR ? nc - jr : NR, tile);
    }
}

/* Split `total` into the fewest blocks of at most `block`, of near-equal size rounded up to `unit`. */
static ptrdiff_t G(even_block)(ptrdiff_t total, ptrdiff_t block, ptrdiff_t unit)
{
    const ptrdiff_t nblocks = (total + block - 1) / block;
    const ptrdiff_t size = (total + nblocks - 1) / nblocks;
    return (size + unit - 1) / unit * unit;
}

/* ---- a batch of products that share A: C_s = alpha * op(A) @ B_s + beta * C_s, s < batch ---------------
 *
 * One product whose n = batch * w columns are the batch's columns side by side: column j is column j % w of
 * B_s and C_s, s = j / w, with B_s = b + s * sb (k x w, rows ldb apart, columns contiguous) and C_s = c +
 * s * sc (m x w, rows ldc apart). A 1x1 convolution in NCHW layout is such a batch, A the weight, B_s and
 * C_s the samples' (channels, positions) planes: its B and C are the layer's arrays as they are, with no
 * copy into a (channels, batch * positions) matrix and none back, and the micro-tiles run across the
 * samples, so a plane of 49 positions wastes no tile width (one product per sample would fill 4 tiles of 16
 * columns with 49). The panels of B that cross from one sample into the next are gathered run by run, and
 * the tiles of C that do are computed into a buffer and copied to their samples' rows. On the calling
 * thread alone (a kernel's product for one chunk of samples inside its own parallel region). */

/* Pack columns [j0, j0 + nc) of the batch's B over depth kc (b at the block's first depth step) into
 * NR-column panels: runs of whole panels within one sample by the level's packing, a panel that crosses a
 * sample boundary (a sample's last columns and the next sample's first) one run of columns at a time. */
static void G(pack_b_batch)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t kc, ptrdiff_t j0,
                            ptrdiff_t nc, const T *b, ptrdiff_t ldb, ptrdiff_t w, ptrdiff_t sb, T *dst)
{
    const ptrdiff_t NR = bs->nr;
    ptrdiff_t j = 0;
    while (j < nc) {
        const ptrdiff_t col = j0 + j, o = col % w;
        const T *bj = b + col / w * sb + o;
        const ptrdiff_t in_sample = w - o < nc - j ? w - o : nc - j;   /* columns left in this sample */
        if (in_sample >= NR || in_sample == nc - j) {
            /* whole panels, or the block's last (zero-padded) panel, inside one sample */
            const ptrdiff_t extent = in_sample == nc - j ? in_sample : in_sample / NR * NR;
            G(pack)((int)NR, extent, kc, bj, 1, ldb, dst + j * kc, cx->G(packt));
            j += (extent + NR - 1) / NR * NR;
            continue;
        }
        /* A panel across samples: its runs of columns, one sample's each, copied depth step by step. */
        const ptrdiff_t width = nc - j < NR ? nc - j : NR;
        T *d = dst + j * kc;
        for (ptrdiff_t i0 = 0; i0 < width;) {
            const ptrdiff_t oi = (col + i0) % w, run = w - oi < width - i0 ? w - oi : width - i0;
            const T *src = b + (col + i0) / w * sb + oi;
            for (ptrdiff_t p = 0; p < kc; ++p)
                for (ptrdiff_t i = 0; i < run; ++i)
                    d[p * NR + i0 + i] = src[p * ldb + i];
            i0 += run;
        }
        for (ptrdiff_t p = 0; p < kc && width < NR; ++p)
            for (ptrdiff_t i = width; i < NR; ++i)
                d[p * NR + i] = 0;
        j += NR;
    }
}

/* macro_kernel for columns [j0, j0 + nc) of the batch's C (c at the block's first row). */
static void G(macro_kernel_batch)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t mc,
                                  ptrdiff_t j0, ptrdiff_t nc, ptrdiff_t kc, T alpha, const T *pa, const T *pb,
                                  T beta, T *c, ptrdiff_t ldc, ptrdiff_t w, ptrdiff_t sc)
{
    const ptrdiff_t MR = bs->mr, NR = bs->nr;
    CNN_ALIGN64 T tile[CNN_GEMM_MAX_MR * CNN_GEMM_MAX_NR];
    for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
        const ptrdiff_t mr = mc - ir < MR ? mc - ir : MR;
        for (ptrdiff_t jr = 0; jr < nc; jr += NR) {
            const ptrdiff_t nr = nc - jr < NR ? nc - jr : NR, col = j0 + jr, o = col % w;
            T *cc = c + col / w * sc + ir * ldc + o;
            if (o + nr <= w) {
                G(tile_update)(cx, bs, kc, alpha, pa + ir * kc, pb + jr * kc, beta, cc, ldc, mr, nr, tile);
                continue;
            }
            cx->G(ukr)(kc, pa + ir * kc, pb + jr * kc, tile, NR, alpha, (T)0);
            for (ptrdiff_t t = 0; t < nr;) {          /* the tile's runs of columns, one sample each */
                const ptrdiff_t ot = (col + t) % w, run = w - ot < nr - t ? w - ot : nr - t;
                G(add_tile)(tile + t, NR, mr, run, beta, c + (col + t) / w * sc + ir * ldc + ot, ldc);
                t += run;
            }
        }
    }
}

/* ---- a batch of weight-gradient products: C = beta * C + sum_s A_s @ B_s^T, s < batch ---------------------
 *
 * A_s = a + s * sa (m x k, rows lda apart) and B_s = b + s * sb (n x k, rows ldb apart), k contiguous in
 * both: one product of depth batch * k, the batch's depth runs end to end (a 1x1 convolution's weight
 * gradient, delta_s @ x_s^T summed over the samples, straight from the NCHW arrays: one depth block of up
 * to KC steps across several samples, where a product per sample of depth k = 49 positions loaded and
 * stored C's tiles for every 49 steps). The packed panels take each sample's run of depth in turn. On the
 * calling thread alone. */

/* Pack lines [0, extent) over the batch's depth steps [pc, pc + kc) into W-line panels (dst: panel i0/W at
 * i0 * kc); line i of sample s is x + s * sx + i * ls, k contiguous values. */
static void G(pack_depth_batch)(const cnn_gemm_cntx *cx, int W, ptrdiff_t extent, ptrdiff_t pc, ptrdiff_t kc,
                                const T *x, ptrdiff_t ls, ptrdiff_t k, ptrdiff_t sx, T *dst)
{
    const G(packt_t) packt = cx->G(packt);
    for (ptrdiff_t i0 = 0; i0 < extent; i0 += W) {
        const ptrdiff_t w = extent - i0 < W ? extent - i0 : W;
        for (ptrdiff_t p = pc; p < pc + kc;) {
            const ptrdiff_t o = p % k, run = k - o < pc + kc - p ? k - o : pc + kc - p;
            const T *src = x + p / k * sx + i0 * ls + o;
            T *d = dst + i0 * kc + (p - pc) * W;
            if (packt != NULL) {
                packt(W, w, run, src, ls, d);
            } else {
                for (ptrdiff_t q = 0; q < run; ++q) {
                    for (ptrdiff_t i = 0; i < w; ++i)
                        d[q * W + i] = src[i * ls + q];
                    for (ptrdiff_t i = w; i < W; ++i)
                        d[q * W + i] = 0;
                }
            }
            p += run;
        }
    }
}

/* The plain loop nest on the calling thread's packing buffers (k >= 1, alpha != 0): for each column block,
 * each depth block, B's block packed once and A's blocks packed in turn. r == NULL: op(A) and op(B) through
 * their strides; else a batch (gemm_runs): B's rows rsb apart in column runs of r->w (csb == 1), or, with
 * depth runs of r->kw, A's rows rsa apart and op(B)'s columns csb apart (csa == rsb == 1). */
static int G(gemm_nest)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t m, ptrdiff_t n,
                        ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa, const T *b, ptrdiff_t rsb,
                        ptrdiff_t csb, T beta, T *c, ptrdiff_t ldc, const cnn_gemm_runs *r)
{
    const ptrdiff_t kb = G(even_block)(k, bs->kc, 1);
    const ptrdiff_t mb = G(even_block)(m, bs->mc, bs->mr);
    const ptrdiff_t nb = G(even_block)(n, cnn_gemm_nc(bs, kb, sizeof(T)), bs->nr);
    const int depth_runs = r != NULL && r->kw > 0;
    void *va, *vb;
    if (cnn_gemm_buffers((size_t)(mb * kb) * sizeof(T), (size_t)(kb * nb) * sizeof(T), &va, &vb) != 0)
        return -1;
    T *pa = (T *)va, *pb = (T *)vb;
    for (ptrdiff_t jc = 0; jc < n; jc += nb) {
        const ptrdiff_t nc = n - jc < nb ? n - jc : nb;
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {
            const ptrdiff_t kc = k - pc < kb ? k - pc : kb;
            const T beta_pc = pc == 0 ? beta : (T)1;   /* later depth blocks accumulate */
            if (r == NULL)
                G(pack_b)(cx, bs, kc, nc, b + pc * rsb + jc * csb, rsb, csb, pb);
            else if (depth_runs)
                G(pack_depth_batch)(cx, bs->nr, nc, pc, kc, b + jc * csb, csb, r->kw, r->sbk, pb);
            else
                G(pack_b_batch)(cx, bs, kc, jc, nc, b + pc * rsb, rsb, r->w, r->sb, pb);
            for (ptrdiff_t ic = 0; ic < m; ic += mb) {
                const ptrdiff_t mc = m - ic < mb ? m - ic : mb;
                if (depth_runs)
                    G(pack_depth_batch)(cx, bs->mr, mc, pc, kc, a + ic * rsa, rsa, r->kw, r->sa, pa);
                else
                    G(pack_a)(cx, bs, mc, kc, a + ic * rsa + pc * csa, rsa, csa, pa);
                if (r == NULL)
                    G(macro_kernel)(cx, bs, mc, nc, kc, alpha, pa, pb, beta_pc, c + ic * ldc + jc, ldc);
                else
                    G(macro_kernel_batch)(cx, bs, mc, jc, nc, kc, alpha, pa, pb, beta_pc, c + ic * ldc, ldc, r->w,
                                          r->sc);
            }
        }
    }
    return 0;
}

/* Single-threaded blocked GEMM on the calling thread's packing buffers (k >= 1, alpha != 0).
 *
 * With more than one column block (n > NC), every row of A for a depth block is packed once and serves all
 * the column blocks (the depth loop outside the column loop), where the plain nest packs each MC x KC block of
 * A again for every column block. The macro-kernel holds one MR-row panel of A in L1 while it sweeps the
 * B block, so A's panels need not stay in L2 and may come from the larger buffer. Each tile of C gets the
 * same kernel calls, over the same depth blocks in the same order, either way: the bits do not change.
 * A 2048^3 float64 product on one thread packed its 32 MB of A four times (NC = 512 doubles at KC = 256
 * on a 2 MiB L2), now once: 7 processes each way, alternating, each timing 8-10 adjacent pairs of calls
 * against numpy.matmul (model 0xCF Xeon): median of the processes' median ratios 1.12x -> 1.08x, best
 * 75 -> 77 GFLOP/s (OpenBLAS's best 79-82). Up to CNN_GEMM_A_SLICE_BYTES of packed A; a taller A takes
 * the plain nest. */
static int G(gemm_serial)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t m, ptrdiff_t n,
                          ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                          const T *b, ptrdiff_t rsb, ptrdiff_t csb, T beta, T *c, ptrdiff_t ldc)
{
    const ptrdiff_t kb = G(even_block)(k, bs->kc, 1);
    const ptrdiff_t mb = G(even_block)(m, bs->mc, bs->mr);
    const ptrdiff_t nb = G(even_block)(n, cnn_gemm_nc(bs, kb, sizeof(T)), bs->nr);
    const size_t a_slice = (size_t)((m + bs->mr - 1) / bs->mr * bs->mr * kb) * sizeof(T);
    void *va, *vb;
    if (n > nb && a_slice <= CNN_GEMM_A_SLICE_BYTES) {
        if (cnn_gemm_buffers(a_slice, (size_t)(kb * nb) * sizeof(T), &va, &vb) != 0)
            return -1;
        T *pa = (T *)va, *pb = (T *)vb;
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {
            const ptrdiff_t kc = k - pc < kb ? k - pc : kb;
            const T beta_pc = pc == 0 ? beta : (T)1;   /* later depth blocks accumulate */
            for (ptrdiff_t ic = 0; ic < m; ic += mb)   /* block ic's panels start at row ic: mb is whole panels */
                G(pack_a)(cx, bs, m - ic < mb ? m - ic : mb, kc, a + ic * rsa + pc * csa, rsa, csa,
                          pa + ic * kc);
            for (ptrdiff_t jc = 0; jc < n; jc += nb) {
                const ptrdiff_t nc = n - jc < nb ? n - jc : nb;
                G(pack_b)(cx, bs, kc, nc, b + pc * rsb + jc * csb, rsb, csb, pb);
                for (ptrdiff_t ic = 0; ic < m; ic += mb)
                    G(macro_kernel)(cx, bs, m - ic < mb ? m - ic : mb, nc, kc, alpha, pa + ic * kc, pb, beta_pc,
                                    c + ic * ldc + jc, ldc);
            }
        }
        return 0;
    }
    return G(gemm_nest)(cx, bs, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, NULL);
}

#if CNN_CORE_OPENMP
/* The same loop nest on a team of nt threads sharing the packed panels. For each KC x NC block of B, the
 * team takes the rows in groups of up to nt * 4 MC-row blocks: packs the group's A panels (with, for the
 * first group, B's NR panels; the panels split statically), then hands out the group's work items, (row
 * block, column chunk) pairs, dynamically (OpenMP's dynamic schedule is one shared atomic counter), so a
 * thread slowed by the rest of the machine takes fewer items. Each packing loop ends at a barrier before
 * anyone reads the panels, each item loop at one before they are overwritten: two barriers per group,
 * threads.c's (cnn_gemm_barrier: the worksharing loops are nowait), which do not put the leader to sleep
 * while the process is alone on its cores. A and B are packed once, whatever the thread count, in the
 * calling thread's buffers. */
static int G(gemm_parallel)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, int nt, ptrdiff_t m,
                            ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                            const T *b, ptrdiff_t rsb, ptrdiff_t csb, T beta, T *c, ptrdiff_t ldc)
{
    const ptrdiff_t MR = bs->mr, NR = bs->nr;
    const ptrdiff_t kb = G(even_block)(k, bs->kc, 1);
    const ptrdiff_t nb = G(even_block)(n, cnn_gemm_nc(bs, kb, sizeof(T)), NR);
    /* Row blocks: at most MC rows, and at least 2 per thread where m allows, for the dynamic balance. */
    ptrdiff_t mb = G(even_block)(m, bs->mc, MR);
    const ptrdiff_t few = (m + 2 * nt - 1) / (2 * nt);
    if (few < mb)
        mb = (few + MR - 1) / MR * MR;
    const ptrdiff_t group_blocks = 4 * (ptrdiff_t)nt;
    const ptrdiff_t mg = m < mb * group_blocks ? m : mb * group_blocks;   /* rows of A packed at once */
    void *va, *vb;
    const ptrdiff_t mg_padded = (mg + MR - 1) / MR * MR;                 /* whole zero-padded panels */
    if (cnn_gemm_buffers((size_t)(mg_padded * kb) * sizeof(T), (size_t)(kb * nb) * sizeof(T), &va, &vb) != 0)
        return -1;
    T *const pa = (T *)va, *const pb = (T *)vb;
    cnn_team_count bar;
    atomic_init(&bar.count, 0);
    atomic_init(&bar.sleepers, 0);

    #pragma omp parallel num_threads(nt)
    {
        const int nthr = omp_get_num_threads();
        int passed = 0;
        cnn_gemm_share_start(omp_get_thread_num());
        for (ptrdiff_t jc = 0; jc < n; jc += nb) {
            const ptrdiff_t nc = n - jc < nb ? n - jc : nb;
            const ptrdiff_t npanels_b = (nc + NR - 1) / NR;
            for (ptrdiff_t pc = 0; pc < k; pc += kb) {
                const ptrdiff_t kc = k - pc < kb ? k - pc : kb;
                const T beta_pc = pc == 0 ? beta : (T)1;
                for (ptrdiff_t ig = 0; ig < m; ig += mg) {
                    const ptrdiff_t mgc = m - ig < mg ? m - ig : mg;
                    const ptrdiff_t npanels_a = (mgc + MR - 1) / MR;
                    /* The group's A panels, after B's panels for the first group: one barrier for both. */
                    const ptrdiff_t first_a = ig == 0 ? npanels_b : 0;
                    #pragma omp for schedule(static) nowait
                    for (ptrdiff_t q = 0; q < first_a + npanels_a; ++q) {
                        if (q < first_a) {
                            const ptrdiff_t j = q * NR;
                            G(pack_b)(cx, bs, kc, nc - j < NR ? nc - j : NR, b + pc * rsb + (jc + j) * csb,
                                      rsb, csb, pb + j * kc);
                        } else {
                            const ptrdiff_t i = (q - first_a) * MR;
                            G(pack_a)(cx, bs, mgc - i < MR ? mgc - i : MR, kc,
                                      a + (ig + i) * rsa + pc * csa, rsa, csa, pa + i * kc);
                        }
                    }
                    cnn_gemm_barrier(&bar, &passed, nthr);
                    /* Items: the group's row blocks times column chunks of whole NR panels, enough of them
                     * (about 8 per thread) for the dynamic schedule to balance. */
                    const ptrdiff_t nblk = (mgc + mb - 1) / mb;
                    ptrdiff_t nchunk = (8 * (ptrdiff_t)nt + nblk - 1) / nblk;
                    if (nchunk > npanels_b)
                        nchunk = npanels_b;
                    const ptrdiff_t cw = (npanels_b + nchunk - 1) / nchunk * NR;
                    nchunk = (nc + cw - 1) / cw;
                    #pragma omp for schedule(dynamic, 1) nowait
                    for (ptrdiff_t item = 0; item < nblk * nchunk; ++item) {
                        const ptrdiff_t i = (item / nchunk) * mb, j = (item % nchunk) * cw;
                        G(macro_kernel)(cx, bs, mgc - i < mb ? mgc - i : mb, nc - j < cw ? nc - j : cw, kc,
                                        alpha, pa + i * kc, pb + j * kc, beta_pc, c + (ig + i) * ldc + jc + j, ldc);
                    }
                    cnn_gemm_barrier(&bar, &passed, nthr);
                }
            }
        }
    }
    return 0;
}
#endif

/* Products up to 2048^3 on a team of nt threads with no synchronisation but the job's end: C is cut into
 * nt panels of whole micro-tiles along its wider side (or, for a product asked to, into the row shares of
 * threads.h's cnn_row_share), and each thread runs gemm_serial on its panel with
 * its own packing buffers, packing its share of one operand and all of the other (columns split: every
 * thread packs all of A and its own columns of B, so B is packed once). Up to CNN_GEMM_STATIC_MAX_WORK
 * that duplicated packing costs less than gemm_parallel's barriers and its panels read across cores
 * (measured; thresholds.h). The panels start at multiples of MR or NR,
 * so every micro-tile keeps its place and its operations: the result is the serial one, bit for bit (a
 * row share may start inside a tile: every micro-kernel, whole or edge, gives each element of C the same
 * multiply-adds in the same order wherever its tile starts, so that too is the serial result). The same
 * job struct serves the unpacked path (sup = 1: bands of whole sup_mr x sup_nr tiles). */
typedef struct {
    const cnn_gemm_cntx *cx;
    const cnn_gemm_blksz *bs;
    ptrdiff_t m, n, k;
    T alpha, beta;
    const T *a, *b;
    ptrdiff_t rsa, csa, rsb, csb, ldc;
    T *c;
    int sup, by_cols;                /* the unpacked path; panels of columns rather than rows */
    int row_shares, nt;              /* rows cut by cnn_row_share over nt threads, else `per` a thread */
    ptrdiff_t per;                   /* rows or columns per thread */
    atomic_int err;
    int cpus[CNN_MAX_NUM_THREADS];   /* the CPU each share started on */
} G(share_job);

static void G(gemm_sup)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t m, ptrdiff_t n,
                        ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa, const T *b,
                        ptrdiff_t rsb, T beta, T *c, ptrdiff_t ldc);

static void G(gemm_share)(void *arg, int t)
{
    G(share_job) *j = (G(share_job) *)arg;
    j->cpus[t] = cnn_gemm_cpu();
    const ptrdiff_t extent = j->by_cols ? j->n : j->m;
    const ptrdiff_t lo = j->row_shares ? cnn_row_share(extent, j->nt, t, 1) : t * j->per;
    const ptrdiff_t hi = j->row_shares ? cnn_row_share(extent, j->nt, t + 1, 1)
                                       : extent - lo < j->per ? extent : lo + j->per;
    if (lo >= hi)
        return;
    const ptrdiff_t len = hi - lo;
    const ptrdiff_t mt = j->by_cols ? j->m : len, nt = j->by_cols ? len : j->n;
    const T *a = j->by_cols ? j->a : j->a + lo * j->rsa;
    const T *b = j->by_cols ? j->b + lo * j->csb : j->b;
    T *c = j->by_cols ? j->c + lo : j->c + lo * j->ldc;
    if (j->sup)
        G(gemm_sup)(j->cx, j->bs, mt, nt, j->k, j->alpha, a, j->rsa, j->csa, b, j->rsb, j->beta, c, j->ldc);
    else if (G(gemm_serial)(j->cx, j->bs, mt, nt, j->k, j->alpha, a, j->rsa, j->csa, b, j->rsb, j->csb,
                            j->beta, c, j->ldc) != 0)
        atomic_store_explicit(&j->err, 1, memory_order_relaxed);
}

/* The static partition (sup = 0) or the unpacked path (sup = 1) on nt threads; row_shares: C's rows in
 * cnn_row_share's shares. */
static int G(gemm_shared)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, int nt, int sup, int row_shares,
                          ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                          const T *b, ptrdiff_t rsb, ptrdiff_t csb, T beta, T *c, ptrdiff_t ldc)
{
    const ptrdiff_t MR = sup ? bs->sup_mr : bs->mr, NR = sup ? bs->sup_nr : bs->nr;
    const ptrdiff_t row_tiles = (m + MR - 1) / MR, col_tiles = (n + NR - 1) / NR;
    /* Packed: split the columns when A is the smaller operand to pack twice, or when the rows are too
     * few. Unpacked: bands of rows (each thread's rows of A stay in L2 while all of B streams past),
     * unless bands of columns leave the busiest thread fewer tiles, or as many with A the smaller operand
     * (then each thread streams only its part of B, and all of the small A): a short wide product such as
     * LeNet conv2's (16 x 150) @ (150 x 6400), 3 AVX2 row tiles, gave one thread 2 bands and the other 1
     * (and each streamed all of B); by columns each computes half the tiles from half of B. */
    const ptrdiff_t busiest_rows = (row_tiles + nt - 1) / nt * col_tiles;
    const ptrdiff_t busiest_cols = (col_tiles + nt - 1) / nt * row_tiles;
    const int by_cols = row_shares ? 0
                        : sup ? busiest_cols < busiest_rows || (busiest_cols == busiest_rows && m < n)
                        : (m <= n && col_tiles >= nt) || row_tiles < nt;
    G(share_job) j = {cx, bs, m, n, k, alpha, beta, a, b, rsa, csa, rsb, csb, ldc, c, sup, by_cols, row_shares,
                      nt, ((by_cols ? col_tiles : row_tiles) + nt - 1) / nt * (by_cols ? NR : MR)};
    atomic_init(&j.err, 0);
    cnn_gemm_run_team(G(gemm_share), &j, nt);
    if (nt > 1)
        cnn_gemm_note_cpus(j.cpus, nt);
    return atomic_load(&j.err) ? -1 : 0;
}

/* Unpacked path for small problems: tiles of C straight from A (any strides) and B (contiguous rows).
 * Rows are taken MC-ish at a time so that block of A stays in L2 while every NR-column sliver of B
 * streams past it; each B sliver then stays in L1 for the MR-row tiles of the block. */
static void G(gemm_sup)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t m, ptrdiff_t n,
                        ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa, const T *b,
                        ptrdiff_t rsb, T beta, T *c, ptrdiff_t ldc)
{
    const G(sup_t) sup = cx->G(sup);
    const ptrdiff_t MR = bs->sup_mr, NR = bs->sup_nr;
    ptrdiff_t mb = (ptrdiff_t)(CNN_GEMM_SUP_A_BYTES / sizeof(T)) / k / MR * MR;
    if (mb < MR)
        mb = MR;
    for (ptrdiff_t ic = 0; ic < m; ic += mb) {
        const ptrdiff_t iend = m - ic < mb ? m : ic + mb;
        for (ptrdiff_t jr = 0; jr < n; jr += NR) {
            const ptrdiff_t nr = n - jr < NR ? n - jr : NR;
            for (ptrdiff_t ir = ic; ir < iend; ir += MR)
                sup(k, a + ir * rsa, rsa, csa, b + jr, rsb, c + ir * ldc + jr, ldc, alpha, beta,
                    iend - ir < MR ? iend - ir : MR, nr);
        }
    }
}

/* Packing costs about one cycle per element of A and of B, i.e. k * (m + n) cycles, against the
 * arithmetic's m * n * k / (MR * NR / 6) cycles on the AVX2 kernel: the unpacked path wins while packing
 * would cost more than ~10% of that, (m + n) * sup_ratio >= m * n (square sizes up to ~300 in float32,
 * ~150 in float64, on the AVX2 kernels; ~256 and ~192 at the AVX-512 level: gemm.c's table), and
 * while its B slivers (k rows each, read in place with B's row stride) stay cheap to stream: with k past
 * sup_kmax they do not (a (64, 288) @ (288, 50176) im2col product: 53 GFLOP/s unpacked, 74 packed, on a
 * Zen 4 core). It needs B's rows contiguous, for the direct vector loads. On a team of nt threads each
 * thread packs all of the operand the threads share, so packing weighs more there: sup_ratio_team. */
static int G(use_sup)(const cnn_gemm_cntx *cx, const cnn_gemm_blksz *bs, ptrdiff_t m, ptrdiff_t n,
                      ptrdiff_t k, ptrdiff_t csb, int nt)
{
    if (csb != 1 || cx->G(sup) == NULL)
        return 0;
    if (cnn_gemm_sup_mode >= 0)
        return cnn_gemm_sup_mode;
    const int ratio = nt > 1 ? bs->sup_ratio_team : bs->sup_ratio;
    return k <= bs->sup_kmax && (double)(m + n) * ratio >= (double)m * (double)n;
}

/* C = beta * C without reading C when beta == 0 (the alpha == 0 or k == 0 case). */
static void G(scale_c)(ptrdiff_t m, ptrdiff_t n, T beta, T *c, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; ++i) {
        T *ci = c + i * ldc;
        if (beta == 0) {
            for (ptrdiff_t j = 0; j < n; ++j)
                ci[j] = 0;
        } else {
            for (ptrdiff_t j = 0; j < n; ++j)
                ci[j] *= beta;
        }
    }
}

/* A batch's product (the columns in runs of r->w, or the depth in runs of r->kw): the plain nest on the
 * calling thread. */
static int G(gemm_runs)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                        const T *b, ptrdiff_t rsb, ptrdiff_t csb, T beta, T *c, ptrdiff_t ldc,
                        const cnn_gemm_runs *r)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0 || alpha == 0) {
        for (ptrdiff_t s = 0; s < n / r->w; ++s)
            G(scale_c)(m, r->w, beta, c + s * r->sc, ldc);
        return 0;
    }
    const cnn_gemm_cntx *cx = cnn_gemm_context();
    const cnn_gemm_blksz *bs = &cx->G(blk);
    return G(gemm_nest)(cx, bs, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, r);
}

static int G(gemm_batch)(ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, T alpha, const T *a,
                         ptrdiff_t rsa, ptrdiff_t csa, const T *b, ptrdiff_t ldb, ptrdiff_t sb, T beta, T *c,
                         ptrdiff_t ldc, ptrdiff_t sc)
{
    const cnn_gemm_runs r = {w, sb, sc, 0, 0, 0};
    return w <= 0 || batch <= 0 ? 0 : G(gemm_runs)(m, w * batch, k, alpha, a, rsa, csa, b, ldb, 1, beta, c, ldc,
                                                   &r);
}

static int G(gemm_nt_batch)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const T *a, ptrdiff_t lda,
                            ptrdiff_t sa, const T *b, ptrdiff_t ldb, ptrdiff_t sb, T beta, T *c, ptrdiff_t ldc)
{
    const cnn_gemm_runs r = {n, 0, 0, k, sa, sb};
    return G(gemm_runs)(m, n, k * batch, (T)1, a, lda, 1, b, 1, ldb, beta, c, ldc, &r);
}

/* row_shares: on a team, C's rows split by cnn_row_share (a product whose rows are a parameter's rows:
 * gemm.h's cnn_sgemm_row_shares), whatever the shape; else the split and path the shape picks. */
static int G(gemm_strided)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,
                           const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                           const T *b, ptrdiff_t rsb, ptrdiff_t csb,
                           T beta, T *c, ptrdiff_t ldc, int row_shares)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0 || alpha == 0) {
        G(scale_c)(m, n, beta, c, ldc);
        return 0;
    }
    const cnn_gemm_cntx *cx = cnn_gemm_context();   /* one level for the whole call, every thread */
    const cnn_gemm_blksz *bs = &cx->G(blk);
    int nt = cnn_gemm_team(m, n, k);
    const int sup = G(use_sup)(cx, bs, m, n, k, csb, nt);
    if (sup || cnn_gemm_is_small(m, n, k))
        nt = cnn_gemm_small_team(nt);
    row_shares = row_shares && nt > 1 && m >= nt;
    if (sup || row_shares || (nt > 1 && cnn_gemm_use_static(m, n, k)))
        return G(gemm_shared)(cx, bs, nt, sup, row_shares, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c,
                              ldc);
#if CNN_CORE_OPENMP
    if (nt > 1)
        return G(gemm_parallel)(cx, bs, nt, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
#endif
    return G(gemm_serial)(cx, bs, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
}

#undef C_MR
#undef C_NR
#undef G
#undef T
