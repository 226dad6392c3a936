/* Type-generic blocked GEMM driver, included once per element type by gemm.c.
 *
 * The caller defines (and this file #undefs at its end):
 *   T              element type
 *   G(name)        name mangler (s_name / d_name)
 *   BLOCKING       MR, NR, MC, KC, NC, where
 *     MR, NR       micro-tile of C computed by one micro-kernel call (register block)
 *     MC, KC, NC   cache blocks: an MC x KC block of A (packed, lives in L2), a KC x NC block of B
 *                  (packed, lives in L3); one KC x NR micro-panel of B stays in L1 across the MC rows
 * The micro-kernels come from the context of the level in use (gemm_cntx.h), read once per call; the
 * portable G(kernel_c) below is the baseline level's.
 *
 * Loop nest (Goto/BLIS): jc over NC columns, pc over KC depth, ic over MC rows, jr over NR, ir over MR.
 * Packed panels are zero-padded to full MR/NR width, so the micro-kernel never branches on edges; edge
 * tiles of C go through a small buffer instead.
 */

#define CNN_APPLY(f, ...) f(__VA_ARGS__)
#define CNN_BLK_MR(mr, nr, mc, kc, nc) mr
#define CNN_BLK_NR(mr, nr, mc, kc, nc) nr
#define CNN_BLK_MC(mr, nr, mc, kc, nc) mc
#define CNN_BLK_KC(mr, nr, mc, kc, nc) kc
#define CNN_BLK_NC(mr, nr, mc, kc, nc) nc
#define MR CNN_APPLY(CNN_BLK_MR, BLOCKING)
#define NR CNN_APPLY(CNN_BLK_NR, BLOCKING)
#define MC CNN_APPLY(CNN_BLK_MC, BLOCKING)
#define KC CNN_APPLY(CNN_BLK_KC, BLOCKING)
#define NC CNN_APPLY(CNN_BLK_NC, BLOCKING)

/* Portable micro-kernel: fixed trip counts so the compiler unrolls and vectorizes the j loop. */
static void G(kernel_c)(ptrdiff_t k, const T *a, const T *b, T *c, ptrdiff_t ldc, T alpha, T beta)
{
    T acc[MR][NR];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j)
            acc[i][j] = 0;
    for (ptrdiff_t p = 0; p < k; ++p) {
        for (int i = 0; i < MR; ++i) {
            const T ai = a[i];
            for (int j = 0; j < NR; ++j)
                acc[i][j] += ai * b[j];
        }
        a += MR;
        b += NR;
    }
    for (int i = 0; i < MR; ++i) {
        T *ci = c + i * ldc;
        if (beta == 0) {
            for (int j = 0; j < NR; ++j)
                ci[j] = alpha * acc[i][j];
        } else {
            for (int j = 0; j < NR; ++j)
                ci[j] = alpha * acc[i][j] + beta * ci[j];
        }
    }
}

/* Pack `extent` lines of length kc into panels of W lines (W = MR for A, NR for B), each panel stored
 * step by step (W values per p), the last panel zero-padded to W. Element p of line i is x[i*ls + p*ps].
 * A is packed by rows (lines = rows of op(A): ls = rsa, ps = csa), B by columns (ls = csb, ps = rsb). */
static inline __attribute__((always_inline)) void G(pack)(int W, ptrdiff_t extent, ptrdiff_t kc, const T *x,
                                                          ptrdiff_t ls, ptrdiff_t ps, T *dst)
{
    for (ptrdiff_t i0 = 0; i0 < extent; i0 += W) {
        const ptrdiff_t w = extent - i0 < W ? extent - i0 : W;
        const T *xp = x + i0 * ls;
        if (w == W && ls == 1) {               /* the W lines' elements are adjacent: contiguous copies */
            for (ptrdiff_t p = 0; p < kc; ++p)
                for (int i = 0; i < W; ++i)
                    dst[p * W + i] = xp[p * ps + i];
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

/* Pack an mc x kc block of op(A) into MR-row panels (op(A) = A.T of a row-major array has rsa == 1). */
static void G(pack_a)(ptrdiff_t mc, ptrdiff_t kc, const T *a, ptrdiff_t rsa, ptrdiff_t csa, T *dst)
{
    G(pack)(MR, mc, kc, a, rsa, csa, dst);
}

/* Pack a kc x nc block of op(B) into NR-column panels (plain row-major B has csb == 1; op(B) = B.T of a
 * row-major array, as in x @ w.T, has rsb == 1). */
static void G(pack_b)(ptrdiff_t kc, ptrdiff_t nc, const T *b, ptrdiff_t rsb, ptrdiff_t csb, T *dst)
{
    G(pack)(NR, nc, kc, b, csb, rsb, dst);
}

/* C[mc x nc] = alpha * packed A @ packed B + beta * C, one MR x NR tile at a time. */
static void G(macro_kernel)(G(ukr_t) kernel, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, T alpha,
                            const T *pa, const T *pb, T beta, T *c, ptrdiff_t ldc)
{
    CNN_ALIGN64 T tile[MR * NR];
    for (ptrdiff_t jr = 0; jr < nc; jr += NR) {
        const ptrdiff_t nr = nc - jr < NR ? nc - jr : NR;
        for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
            const ptrdiff_t mr = mc - ir < MR ? mc - ir : MR;
            T *cc = c + ir * ldc + jr;
            if (mr == MR && nr == NR) {
                kernel(kc, pa + ir * kc, pb + jr * kc, cc, ldc, alpha, beta);
                continue;
            }
            kernel(kc, pa + ir * kc, pb + jr * kc, tile, NR, alpha, (T)0);
            for (ptrdiff_t i = 0; i < mr; ++i) {
                T *ci = cc + i * ldc;
                const T *ti = tile + i * NR;
                if (beta == 0) {
                    for (ptrdiff_t j = 0; j < nr; ++j)
                        ci[j] = ti[j];
                } else {
                    for (ptrdiff_t j = 0; j < nr; ++j)
                        ci[j] = ti[j] + beta * ci[j];
                }
            }
        }
    }
}

/* Split `total` into the fewest blocks of at most `block`, of near-equal size rounded up to `unit`. */
static ptrdiff_t G(even_block)(ptrdiff_t total, ptrdiff_t block, ptrdiff_t unit)
{
    const ptrdiff_t nblocks = (total + block - 1) / block;
    const ptrdiff_t size = (total + nblocks - 1) / nblocks;
    return (size + unit - 1) / unit * unit;
}

/* Single-threaded blocked GEMM on the calling thread's packing buffers (k >= 1, alpha != 0). */
static int G(gemm_serial)(G(ukr_t) kernel, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,
                          const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                          const T *b, ptrdiff_t rsb, ptrdiff_t csb,
                          T beta, T *c, ptrdiff_t ldc)
{
    const ptrdiff_t kb = G(even_block)(k, KC, 1);
    const ptrdiff_t mb = G(even_block)(m, MC, MR);
    const ptrdiff_t nb = G(even_block)(n, NC, NR);
    void *va, *vb;
    if (cnn_gemm_buffers((size_t)(mb * kb) * sizeof(T), (size_t)(kb * nb) * sizeof(T), &va, &vb) != 0)
        return -1;
    T *pa = (T *)va, *pb = (T *)vb;

    for (ptrdiff_t jc = 0; jc < n; jc += nb) {
        const ptrdiff_t nc = n - jc < nb ? n - jc : nb;
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {
            const ptrdiff_t kc = k - pc < kb ? k - pc : kb;
            const T beta_pc = pc == 0 ? beta : (T)1;   /* later depth blocks accumulate */
            G(pack_b)(kc, nc, b + pc * rsb + jc * csb, rsb, csb, pb);
            for (ptrdiff_t ic = 0; ic < m; ic += mb) {
                const ptrdiff_t mc = m - ic < mb ? m - ic : mb;
                G(pack_a)(mc, kc, a + ic * rsa + pc * csa, rsa, csa, pa);
                G(macro_kernel)(kernel, mc, nc, kc, alpha, pa, pb, beta_pc, c + ic * ldc + jc, ldc);
            }
        }
    }
    return 0;
}

/* Unpacked path for small problems: tiles of C straight from A (any strides) and B (contiguous rows).
 * Rows are taken MC-ish at a time so that block of A stays in L2 while every NR-column sliver of B
 * streams past it; each B sliver then stays in L1 for the MR-row tiles of the block. */
static void G(gemm_sup)(G(sup_t) sup, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, ptrdiff_t rsa,
                        ptrdiff_t csa, const T *b, ptrdiff_t rsb, T beta, T *c, ptrdiff_t ldc)
{
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

/* Packing costs about one cycle per element of A and of B, i.e. k * (m + n) cycles; the arithmetic
 * m * n * k / (MR * NR / 6) cycles (MR * NR multiply-adds per 6 cycles). Measured on the AVX2 kernels, the
 * unpacked path wins while packing would cost more than ~10% of the arithmetic (square sizes up to ~300
 * in float32, ~150 in float64) and loses beyond, where its B slivers and A rows fall out of L1/L2.
 * It needs B's rows contiguous, for the direct vector loads. */
static int G(use_sup)(const cnn_gemm_cntx *cx, ptrdiff_t m, ptrdiff_t n, ptrdiff_t csb)
{
    if (csb != 1 || cx->G(sup) == NULL)
        return 0;
    if (cnn_gemm_sup_mode >= 0)
        return cnn_gemm_sup_mode;
    return (double)(m + n) * (MR * NR) * 5 >= (double)m * (double)n * 3;
}

static int G(gemm_rect)(const cnn_gemm_cntx *cx, int sup, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,
                        const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                        const T *b, ptrdiff_t rsb, ptrdiff_t csb,
                        T beta, T *c, ptrdiff_t ldc)
{
    if (sup) {
        G(gemm_sup)(cx->G(sup), m, n, k, alpha, a, rsa, csa, b, rsb, beta, c, ldc);
        return 0;
    }
    return G(gemm_serial)(cx->G(ukr), m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
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

static int G(gemm_strided)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,
                           const T *a, ptrdiff_t rsa, ptrdiff_t csa,
                           const T *b, ptrdiff_t rsb, ptrdiff_t csb,
                           T beta, T *c, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0)
        return 0;
    if (k <= 0 || alpha == 0) {
        G(scale_c)(m, n, beta, c, ldc);
        return 0;
    }
    const cnn_gemm_cntx *cx = cnn_gemm_context();   /* one level for the whole call, every thread */
    const int sup = G(use_sup)(cx, m, n, csb);
    int tm = 1, tn = 1;
    cnn_gemm_thread_grid(m, n, k, MR, NR, &tm, &tn);
    if (tm * tn == 1)
        return G(gemm_rect)(cx, sup, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);

    /* Each thread owns a rectangle of C (whole micro-tiles) and runs the serial driver on it: no shared
     * state, and every element sees the same operations as in a serial run (the packed/unpacked choice is
     * made once, above), so results do not depend on the thread count. */
    const ptrdiff_t row_tiles = (m + MR - 1) / MR, col_tiles = (n + NR - 1) / NR;
    const ptrdiff_t rows_per = (row_tiles + tm - 1) / tm * MR, cols_per = (col_tiles + tn - 1) / tn * NR;
    int err = 0;
#if CNN_CORE_OPENMP
    #pragma omp parallel for num_threads(tm * tn) schedule(static) reduction(|:err)
#endif
    for (int t = 0; t < tm * tn; ++t) {
        const ptrdiff_t i0 = (t / tn) * rows_per, j0 = (t % tn) * cols_per;
        if (i0 >= m || j0 >= n)
            continue;
        const ptrdiff_t mt = m - i0 < rows_per ? m - i0 : rows_per;
        const ptrdiff_t nt = n - j0 < cols_per ? n - j0 : cols_per;
        err |= G(gemm_rect)(cx, sup, mt, nt, k, alpha, a + i0 * rsa, rsa, csa, b + j0 * csb, rsb, csb,
                            beta, c + i0 * ldc + j0, ldc);
    }
    return err;
}

#undef MR
#undef NR
#undef MC
#undef KC
#undef NC
#undef BLOCKING
#undef G
#undef T
