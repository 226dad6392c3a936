/* Winograd F(2x2, 3x3) convolution (winograd.h): the weight transform, and the driver that runs the input
 * transform, the 16 GEMMs and the output transform for a few samples. The transforms are plain loops over the
 * tiles of a tile row (winograd_template.h), compiled once per instruction-set level and picked from one
 * table per level (cpu.h's scheme); the GEMM is the caller's. */
#include "winograd.h"

#define restrict __restrict

/* Elements of the transforms' line buffers: input, one plane at a time (the padded plane, its even and odd
 * columns, and the 8 rows of B^T d); output, for n samples (the four outputs of each tile). */
#define WINO_LINE_IN(TH, TW) ((8 * (TH) + 8 + 16 * (TH)) * ((TW) + 1))
#define WINO_LINE_OUT(n, TH, TW) (4 * (n) * (TH) * (TW))
/* F(4x4, 3x3), n samples of one tile at a time: input, the n padded planes of one channel and one tile's
 * first pass of B^T; output, one tile's first pass of A^T (24 values; the weight gradient's A as many) and the
 * n planes of output (gradient) values, 4TH x 4TW each. */
#define WINO4_LINE_IN(n, TH, TW) ((n) * ((4 * (TH) + 2) * (4 * (TW) + 2) + 36))
#define WINO4_LINE_OUT(n, TH, TW) ((n) * (24 + 16 * (TH) * (TW)))

/* The input transform copies the plane's rows (often 7-14 elements) into a padded buffer: GCC would turn
 * those loops into memcpy / memset calls, which at that length cost more than the copies. */
#if defined(__GNUC__) && !defined(__clang__)
#define WINO_NOCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define WINO_NOCALLS
#endif

/* ---- the transforms, per element type and level ---- */
#define WT float
#define WSFX s
#define WTGT base
#define WATTR
#include "winograd_template.h"
#undef WT
#undef WSFX
#define WT double
#define WSFX d
#include "winograd_template.h"
#undef WT
#undef WSFX
#undef WTGT
#undef WATTR

#if CNN_X86
#include "avx2.h"
/* The vector levels copy the F(4x4) canvases (winograd_template.h's to_lanes / from_lanes) in register
 * transposes of WVEC_LANES samples: per element type the register, its lane count, its intrinsics, the mask
 * of its first k lanes and the transpose (avx2.h). */
#define WVEC
#define WVEC_TYPE_s __m256
#define WVEC_TYPE_d __m256d
#define WVEC_LANES_s 8
#define WVEC_LANES_d 4
#define WVEC_OP_s(op) _mm256_##op##_ps
#define WVEC_OP_d(op) _mm256_##op##_pd
#define WVEC_MASK_s cnn_lanes_ps
#define WVEC_MASK_d cnn_lanes_pd
#define WVEC_TRANSPOSE_s cnn_transpose8_ps
#define WVEC_TRANSPOSE_d cnn_transpose4_pd

#define WATTR __attribute__((target("avx2,fma")))
#define WTGT avx2
#define WT float
#define WSFX s
#include "winograd_template.h"
#undef WT
#undef WSFX
#define WT double
#define WSFX d
#include "winograd_template.h"
#undef WT
#undef WSFX
#undef WTGT
#undef WATTR

#define WATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,prefer-vector-width=256")))
#define WTGT avx512
#define WT float
#define WSFX s
#include "winograd_template.h"
#undef WT
#undef WSFX
#define WT double
#define WSFX d
#include "winograd_template.h"
#undef WT
#undef WSFX
#undef WTGT
#undef WATTR
#undef WVEC
#endif

/* The transforms of each level. */
static const struct {
    void (*in_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                 ptrdiff_t, float *, ptrdiff_t, float *);
    void (*out_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, float, float *, ptrdiff_t, ptrdiff_t,
                  ptrdiff_t, float *);
    void (*in_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                 ptrdiff_t, double *, ptrdiff_t, double *);
    void (*out_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, double, double *, ptrdiff_t,
                  ptrdiff_t, ptrdiff_t, double *);
    void (*dout_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *,
                   ptrdiff_t, float *);
    void (*dout_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double *,
                   ptrdiff_t, double *);
    /* F(4x4, 3x3), same signatures */
    void (*in4_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                  ptrdiff_t, float *, ptrdiff_t, float *);
    void (*out4_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, float, float *, ptrdiff_t, ptrdiff_t,
                   ptrdiff_t, float *);
    void (*in4_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                  ptrdiff_t, double *, ptrdiff_t, double *);
    void (*out4_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, double, double *, ptrdiff_t,
                   ptrdiff_t, ptrdiff_t, double *);
    void (*dout4_s)(ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *,
                    ptrdiff_t, float *);
    void (*dout4_d)(ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double *,
                    ptrdiff_t, double *);
} cnn_wino_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {wino_in_s_base, wino_out_s_base, wino_in_d_base, wino_out_d_base,
                            wino_dout_s_base, wino_dout_d_base,
                            wino4_in_s_base, wino4_out_s_base, wino4_in_d_base, wino4_out_d_base,
                            wino4_dout_s_base, wino4_dout_d_base},
#if CNN_X86
    [CNN_SIMD_AVX2] = {wino_in_s_avx2, wino_out_s_avx2, wino_in_d_avx2, wino_out_d_avx2,
                            wino_dout_s_avx2, wino_dout_d_avx2,
                            wino4_in_s_avx2, wino4_out_s_avx2, wino4_in_d_avx2, wino4_out_d_avx2,
                            wino4_dout_s_avx2, wino4_dout_d_avx2},
    [CNN_SIMD_AVX512] = {wino_in_s_avx512, wino_out_s_avx512, wino_in_d_avx512, wino_out_d_avx512,
                            wino_dout_s_avx512, wino_dout_d_avx512,
                            wino4_in_s_avx512, wino4_out_s_avx512, wino4_in_d_avx512, wino4_out_d_avx512,
                            wino4_dout_s_avx512, wino4_dout_d_avx512},
#else
    [CNN_SIMD_AVX2] = {wino_in_s_base, wino_out_s_base, wino_in_d_base, wino_out_d_base,
                            wino_dout_s_base, wino_dout_d_base,
                            wino4_in_s_base, wino4_out_s_base, wino4_in_d_base, wino4_out_d_base,
                            wino4_dout_s_base, wino4_dout_d_base},
    [CNN_SIMD_AVX512] = {wino_in_s_base, wino_out_s_base, wino_in_d_base, wino_out_d_base,
                            wino_dout_s_base, wino_dout_d_base,
                            wino4_in_s_base, wino4_out_s_base, wino4_in_d_base, wino4_out_d_base,
                            wino4_dout_s_base, wino4_dout_d_base},
#endif
};

static int cnn_wino_baseline(void) { return CNN_SIMD_BASELINE; }
static cnn_simd_level_fn cnn_wino_level = cnn_wino_baseline;

void cnn_wino_init(cnn_simd_level_fn simd_level) { cnn_wino_level = simd_level; }

static inline int wino_level(void)
{
    const int level = cnn_wino_level();
    return level >= 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE;
}

/* Tiles per row / column: outputs in 2x2 blocks, the last one cut by the output's edge. */
#define WINO_TILES(o) (((o) + 1) / 2)

/* Elements added between the 16 matrices of V and of M: the transforms read or write all 16 at once, and
 * matrix sizes are often powers of two (C*T = 64*256), which would map the 16 streams onto the same cache
 * sets. 64 floats (256 bytes) apart, they fall in different sets. */
#define WINO_PAD 64

ptrdiff_t cnn_wino_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t TH = WINO_TILES(OH), TW = WINO_TILES(OW), T = n * TH * TW;
    /* V (16, C, T), M (16, F, T), the transforms' line buffer */
    const ptrdiff_t in = WINO_LINE_IN(TH, TW), out = WINO_LINE_OUT(n, TH, TW);
    return 16 * (C * T + WINO_PAD) + 16 * (F * T + WINO_PAD) + (in > out ? in : out);
}

ptrdiff_t cnn_wino_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW)
{
    return 16 * (C * n * WINO_TILES(OH) * WINO_TILES(OW) + WINO_PAD);
}

/* ---- the transforms on their own (winograd.h): the plan's Winograd convolution runs its own products ---- */
ptrdiff_t cnn_wino_line_in(ptrdiff_t OH, ptrdiff_t OW) { return WINO_LINE_IN(WINO_TILES(OH), WINO_TILES(OW)); }

ptrdiff_t cnn_wino_line_out(ptrdiff_t n, ptrdiff_t OH, ptrdiff_t OW)
{
    return WINO_LINE_OUT(n, WINO_TILES(OH), WINO_TILES(OW));
}

#define WINO_PARTS(WT, WSFX)                                                                                \
    void cnn_##WSFX##wino_in(ptrdiff_t n, const WT *x, ptrdiff_t xs_n, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, \
                             ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, WT *v, ptrdiff_t vs, WT *line)       \
    {                                                                                                     \
        cnn_wino_table[wino_level()].in_##WSFX(n, x, xs_n, H, W, ph, pw, WINO_TILES(OH), WINO_TILES(OW), v, \
                                               vs, line);                                                 \
    }                                                                                                     \
    void cnn_##WSFX##wino_out(ptrdiff_t n, const WT *m, ptrdiff_t ms, WT b, WT *y, ptrdiff_t ys_n,          \
                              ptrdiff_t OH, ptrdiff_t OW, WT *line)                                       \
    {                                                                                                     \
        cnn_wino_table[wino_level()].out_##WSFX(n, m, ms, WINO_TILES(OH), WINO_TILES(OW), b, y, ys_n, OH,  \
                                                OW, line);                                                \
    }
WINO_PARTS(float, s)
WINO_PARTS(double, d)

/* u[xi * us] = (G k G^T)[xi] for one filter-channel pair g (3x3, contiguous), k = g or, with flip, g
 * rotated by 180 degrees. G k: rows (k0, (k0 + k1 + k2)/2, (k0 - k1 + k2)/2, k2); then the same across. */
/* Pairs transformed per block by cnn_*wino_weights. */
#define WINO_WB 32

#define WINO_WEIGHT_DEF(WT, WSFX)                                                                           \
    static inline void wino_weight_##WSFX(const WT *restrict g, int flip, WT *restrict u, ptrdiff_t us)   \
    {                                                                                                     \
        WT k[3][3], t[4][3];                                                                              \
        for (int i = 0; i < 3; i++)                                                                       \
            for (int j = 0; j < 3; j++) k[i][j] = flip ? g[(2 - i) * 3 + (2 - j)] : g[i * 3 + j];         \
        for (int j = 0; j < 3; j++) {                                                                     \
            t[0][j] = k[0][j];                                                                            \
            t[1][j] = (k[0][j] + k[1][j] + k[2][j]) * (WT)0.5;                                            \
            t[2][j] = (k[0][j] - k[1][j] + k[2][j]) * (WT)0.5;                                            \
            t[3][j] = k[2][j];                                                                            \
        }                                                                                                 \
        for (int i = 0; i < 4; i++) {                                                                     \
            WT *restrict ui = u + (4 * i) * us;                                                           \
            ui[0] = t[i][0];                                                                              \
            ui[us] = (t[i][0] + t[i][1] + t[i][2]) * (WT)0.5;                                             \
            ui[2 * us] = (t[i][0] - t[i][1] + t[i][2]) * (WT)0.5;                                         \
            ui[3 * us] = t[i][2];                                                                         \
        }                                                                                                 \
    }
WINO_WEIGHT_DEF(float, s)
WINO_WEIGHT_DEF(double, d)

/* sum[xi*WINO_WB + q] = du_0 + du_1 + ... + du_{nslots-1}, added in slot order, at du_k[xi*FC + p0 + q]
 * (slot k at du + k*ss), for xi < npos and q < nb: the dw_finish functions' block of pairs, the partial sums
 * of the weight gradient's chunks added as they are read rather than in a pass of their own. */
#define WINO_SLOT_SUM_DEF(WT, WSFX)                                                                         \
    static inline void wino_slot_sum_##WSFX(const WT *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t FC,   \
                                            int npos, ptrdiff_t p0, ptrdiff_t nb, WT *restrict sum)       \
    {                                                                                                     \
        for (int xi = 0; xi < npos; xi++) {                                                               \
            const WT *restrict d = du + xi * FC + p0;                                                     \
            WT *restrict o = sum + xi * WINO_WB;                                                          \
            for (ptrdiff_t q = 0; q < nb; q++) o[q] = d[q];                                               \
            for (ptrdiff_t k = 1; k < nslots; k++) {                                                      \
                d += ss;                                                                                  \
                for (ptrdiff_t q = 0; q < nb; q++) o[q] = o[q] + d[q];                                    \
            }                                                                                             \
        }                                                                                                 \
    }
WINO_SLOT_SUM_DEF(float, s)
WINO_SLOT_SUM_DEF(double, d)

/* ---- one definition of the weight transform and the driver, per element type ---- */
#define WINO_DEFS(WT, WSFX)                                                                                 \
    void cnn_##WSFX##wino_weights(const WT *w, ptrdiff_t F, ptrdiff_t C, int flip, WT *u, ptrdiff_t p0,   \
                               ptrdiff_t p1)                                                              \
    {                                                                                                     \
        /* rows of u's (16, P, R) matrices: P outputs (F, or C when flipped), R inputs. A block of WINO_WB\
         * pairs of one row at a time into a small buffer, then 16 short sequential copies: written pair by\
         * pair, the 16 matrices' streams (P*R apart, often a multiple of 4 KiB) would share cache sets. */\
        const ptrdiff_t P = flip ? C : F, R = flip ? F : C, PR = P * R;                                   \
        WT buf[16 * WINO_WB];                                                                             \
        for (ptrdiff_t p = p0; p < p1; p++)                                                               \
            for (ptrdiff_t r0 = 0; r0 < R; r0 += WINO_WB) {                                               \
                const ptrdiff_t nb = R - r0 < WINO_WB ? R - r0 : WINO_WB;                                 \
                for (ptrdiff_t b = 0; b < nb; b++) {                                                      \
                    const ptrdiff_t f = flip ? r0 + b : p, c = flip ? p : r0 + b;                         \
                    wino_weight_##WSFX(w + (f * C + c) * 9, flip, buf + b, WINO_WB);                      \
                }                                                                                         \
                for (int xi = 0; xi < 16; xi++)                                                           \
                    for (ptrdiff_t b = 0; b < nb; b++) u[xi * PR + p * R + r0 + b] = buf[xi * WINO_WB + b];\
            }                                                                                             \
    }                                                                                                     \
                                                                                                          \
    void cnn_##WSFX##wino_dw_finish(const WT *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C, \
                                  WT *gw, ptrdiff_t q0, ptrdiff_t q1)                                    \
    {                                                                                                     \
        /* gw[f, c] += G^T dU[:, f, c] G: G^T's rows (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1); \
         * dU the slots' sum, WINO_WB pairs at a time */                                                  \
        WT sum[16 * WINO_WB];                                                                             \
        for (ptrdiff_t p0 = q0; p0 < q1; p0 += WINO_WB) {                                                 \
            const ptrdiff_t nb = q1 - p0 < WINO_WB ? q1 - p0 : WINO_WB;                                   \
            wino_slot_sum_##WSFX(du, nslots, ss, F * C, 16, p0, nb, sum);                                 \
            for (ptrdiff_t q = 0; q < nb; q++) {                                                          \
                WT t[3][4];                                                                               \
                for (int b = 0; b < 4; b++) {                                                             \
                    const WT u0 = sum[b * WINO_WB + q], u1 = sum[(4 + b) * WINO_WB + q],                  \
                             u2 = sum[(8 + b) * WINO_WB + q], u3 = sum[(12 + b) * WINO_WB + q];           \
                    t[0][b] = u0 + (u1 + u2) * (WT)0.5;                                                   \
                    t[1][b] = (u1 - u2) * (WT)0.5;                                                        \
                    t[2][b] = (u1 + u2) * (WT)0.5 + u3;                                                   \
                }                                                                                         \
                WT *g = gw + (p0 + q) * 9;                                                                \
                for (int i = 0; i < 3; i++) {                                                             \
                    g[i * 3] += t[i][0] + (t[i][1] + t[i][2]) * (WT)0.5;                                  \
                    g[i * 3 + 1] += (t[i][1] - t[i][2]) * (WT)0.5;                                        \
                    g[i * 3 + 2] += (t[i][1] + t[i][2]) * (WT)0.5 + t[i][3];                              \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }

WINO_DEFS(float, s)
WINO_DEFS(double, d)

/* ---- F(4x4, 3x3) (winograd.h): the same drivers on 6x6 tiles, 36 products ---- */

#define WINO4_TILES(o) (((o) + 3) / 4)

ptrdiff_t cnn_wino4_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t TH = WINO4_TILES(OH), TW = WINO4_TILES(OW), T = n * TH * TW;
    const ptrdiff_t in = WINO4_LINE_IN(n, TH, TW), out = WINO4_LINE_OUT(n, TH, TW);
    return 36 * (C * T + WINO_PAD) + 36 * (F * T + WINO_PAD) + (in > out ? in : out);
}

ptrdiff_t cnn_wino4_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW)
{
    return 36 * (C * n * WINO4_TILES(OH) * WINO4_TILES(OW) + WINO_PAD);
}

/* G applied to nb 3-vectors at once (k0[q], k1[q], k2[q]) -> o[a*os + q], a < 6,
 * G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]; loops over q, so that
 * the weight transform runs a block of WINO_WB filter-channel pairs as vector operations. */
#define WINO4_WEIGHT_DEF(WT, WSFX)                                                                          \
    static inline void wino4_g_##WSFX(const WT *restrict k0, const WT *restrict k1, const WT *restrict k2, \
                                      WT *restrict o, ptrdiff_t os, ptrdiff_t nb)                         \
    {                                                                                                     \
        for (ptrdiff_t q = 0; q < nb; q++) {                                                              \
            const WT s = k0[q] + k2[q], h = k0[q] * (WT)(1.0 / 24) + k2[q] * (WT)(1.0 / 6),               \
                     r = k1[q] * (WT)(1.0 / 12);                                                          \
            o[q] = k0[q] * (WT)0.25;                                                                      \
            o[os + q] = -(s + k1[q]) * (WT)(1.0 / 6);                                                     \
            o[2 * os + q] = (k1[q] - s) * (WT)(1.0 / 6);                                                  \
            o[3 * os + q] = h + r;                                                                        \
            o[4 * os + q] = h - r;                                                                        \
            o[5 * os + q] = k2[q];                                                                        \
        }                                                                                                 \
    }                                                                                                     \
    /* u[xi*WINO_WB + q] = (G k G^T)[xi], xi = 6a + b, for nb pairs (k the q-th pair's 3x3 kernel, rotated \
     * by 180 degrees with flip; pair q at g[q] + 0..8); k, t: scratch of 9 and 18 rows of WINO_WB */     \
    static inline void wino4_weight_##WSFX(const WT *const *g, ptrdiff_t nb, int flip, WT *restrict u,    \
                                           WT *restrict k, WT *restrict t)                                \
    {                                                                                                     \
        for (ptrdiff_t q = 0; q < nb; q++)                                                                \
            for (int e = 0; e < 9; e++) k[(flip ? 8 - e : e) * WINO_WB + q] = g[q][e];                    \
        for (int j = 0; j < 3; j++)     /* down column j: t[(3a + j)*WINO_WB + q] */                      \
            wino4_g_##WSFX(k + j * WINO_WB, k + (3 + j) * WINO_WB, k + (6 + j) * WINO_WB, t + j * WINO_WB, \
                           3 * WINO_WB, nb);                                                              \
        for (int a = 0; a < 6; a++)     /* across row a: u[(6a + b)*WINO_WB + q] */                       \
            wino4_g_##WSFX(t + 3 * a * WINO_WB, t + (3 * a + 1) * WINO_WB, t + (3 * a + 2) * WINO_WB,     \
                           u + 6 * a * WINO_WB, WINO_WB, nb);                                             \
    }                                                                                                     \
    /* G^T u G's three values from one row u0..u5 (G^T's rows (1/4, -1/6, -1/6, 1/24, 1/24, 0),          \
     * (0, -1/6, 1/6, 1/12, -1/12, 0), (0, -1/6, -1/6, 1/6, 1/6, 1)) */                                   \
    static inline void wino4_gt_##WSFX(const WT *u, ptrdiff_t us, WT *o)                                  \
    {                                                                                                     \
        const WT s12 = u[us] + u[2 * us], d21 = u[2 * us] - u[us], s34 = u[3 * us] + u[4 * us],            \
                 d34 = u[3 * us] - u[4 * us];                                                             \
        o[0] = (u[0] * (WT)0.25 - s12 * (WT)(1.0 / 6)) + s34 * (WT)(1.0 / 24);                            \
        o[1] = d21 * (WT)(1.0 / 6) + d34 * (WT)(1.0 / 12);                                                \
        o[2] = (s34 - s12) * (WT)(1.0 / 6) + u[5 * us];                                                   \
    }
WINO4_WEIGHT_DEF(float, s)
WINO4_WEIGHT_DEF(double, d)

#define WINO4_DEFS(WT, WSFX)                                                                                \
    void cnn_##WSFX##wino4_weights(const WT *w, ptrdiff_t F, ptrdiff_t C, int flip, WT *u, ptrdiff_t p0,  \
                                ptrdiff_t p1)                                                             \
    {                                                                                                     \
        /* as cnn_*wino_weights: blocks of WINO_WB pairs of one row of the (36, P, R) matrices */         \
        const ptrdiff_t P = flip ? C : F, R = flip ? F : C, PR = P * R;                                   \
        WT buf[36 * WINO_WB], k[9 * WINO_WB], t[18 * WINO_WB];                                            \
        const WT *g[WINO_WB];                                                                             \
        for (ptrdiff_t p = p0; p < p1; p++)                                                               \
            for (ptrdiff_t r0 = 0; r0 < R; r0 += WINO_WB) {                                               \
                const ptrdiff_t nb = R - r0 < WINO_WB ? R - r0 : WINO_WB;                                 \
                for (ptrdiff_t b = 0; b < nb; b++)                                                        \
                    g[b] = w + ((flip ? r0 + b : p) * C + (flip ? p : r0 + b)) * 9;                       \
                wino4_weight_##WSFX(g, nb, flip, buf, k, t);                                              \
                for (int xi = 0; xi < 36; xi++)                                                           \
                    for (ptrdiff_t b = 0; b < nb; b++) u[xi * PR + p * R + r0 + b] = buf[xi * WINO_WB + b];\
            }                                                                                             \
    }                                                                                                     \
                                                                                                          \
    void cnn_##WSFX##wino4_dw_finish(const WT *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F,            \
                                   ptrdiff_t C, WT *gw, ptrdiff_t q0, ptrdiff_t q1)                      \
    {                                                                                                     \
        /* gw[f, c] += G^T dU[:, f, c] G, dU the slots' sum, WINO_WB pairs at a time: the block's sums,    \
         * then down each of the 6 columns, then across each of the 3 rows */                             \
        WT sum[36 * WINO_WB], t[18 * WINO_WB];                                                            \
        for (ptrdiff_t p0 = q0; p0 < q1; p0 += WINO_WB) {                                                 \
            const ptrdiff_t nb = q1 - p0 < WINO_WB ? q1 - p0 : WINO_WB;                                   \
            wino_slot_sum_##WSFX(du, nslots, ss, F * C, 36, p0, nb, sum);                                 \
            for (int b = 0; b < 6; b++)                                                                   \
                for (ptrdiff_t q = 0; q < nb; q++) {                                                      \
                    WT o[3];                                                                              \
                    wino4_gt_##WSFX(sum + b * WINO_WB + q, 6 * WINO_WB, o);                               \
                    for (int i = 0; i < 3; i++) t[(6 * i + b) * WINO_WB + q] = o[i];                      \
                }                                                                                         \
            for (ptrdiff_t q = 0; q < nb; q++) {                                                          \
                WT *g = gw + (p0 + q) * 9;                                                                \
                for (int i = 0; i < 3; i++) {                                                             \
                    WT o[3];                                                                              \
                    wino4_gt_##WSFX(t + 6 * i * WINO_WB + q, WINO_WB, o);                                 \
                    for (int j = 0; j < 3; j++) g[i * 3 + j] += o[j];                                     \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }

WINO4_DEFS(float, s)
WINO4_DEFS(double, d)

/* The drivers of F(2x2, 3x3) and F(4x4, 3x3), one definition for both tile sizes and both dtypes (NAME: wino
 * or wino4; TILES: tiles per output row or column; NPOS: (tile + 2)^2 products; IN, OUT, DOUT: the level
 * table's transforms for that tile). */
#define WINO_DRIVERS(WT, WSFX, NAME, TILES, NPOS, IN, OUT, DOUT)                                          \
    int cnn_##WSFX##NAME##_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const WT *x,       \
                                 ptrdiff_t xs_n, ptrdiff_t xs_c, ptrdiff_t F, const WT *u, const WT *bias, \
                                 ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, WT *y,           \
                                 ptrdiff_t ys_n, ptrdiff_t ys_f, WT *keep, WT *scratch,                   \
                                 cnn_##WSFX##gemm_fn gemm)                                                \
    {                                                                                                     \
        const int level = wino_level();                                                                   \
        const ptrdiff_t TH = TILES(OH), TW = TILES(OW), TS = TH * TW, T = n * TS;                         \
        const ptrdiff_t vs = C * T + WINO_PAD, ms = F * T + WINO_PAD;                                     \
        WT *m = scratch + NPOS * vs, *line = m + NPOS * ms, *v = keep ? keep : scratch;                   \
        /* V[xi] (C, T) at v + xi*vs: tile t = s*TS + th*TW + tw */                                       \
        for (ptrdiff_t c = 0; c < C; c++)                                                                 \
            cnn_wino_table[level].IN##_##WSFX(n, x + c * xs_c, xs_n, H, W, ph, pw, TH, TW, v + c * T, vs, \
                                            line);                                                        \
        /* M[xi] (F, T) = U[xi] (F, C) @ V[xi] (C, T) */                                                  \
        for (int xi = 0; xi < NPOS; xi++) {                                                               \
            const int err = gemm(0, 0, F, T, C, (WT)1, u + xi * F * C, C, v + xi * vs, T, (WT)0,          \
                                 m + xi * ms, T);                                                         \
            if (err) return err;                                                                          \
        }                                                                                                 \
        for (ptrdiff_t f = 0; f < F; f++)                                                                 \
            cnn_wino_table[level].OUT##_##WSFX(n, m + f * T, ms, TH, TW, bias ? bias[f] : (WT)0,          \
                                             y + f * ys_f, ys_n, OH, OW, line);                           \
        return 0;                                                                                         \
    }                                                                                                     \
                                                                                                          \
    int cnn_##WSFX##NAME##_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const WT *x,         \
                               ptrdiff_t xs_n, ptrdiff_t xs_c, ptrdiff_t F, const WT *dy, ptrdiff_t ys_n, \
                               ptrdiff_t ys_f, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW,    \
                               WT *du, const WT *kept, WT *scratch, cnn_##WSFX##gemm_nt_fn gemm_nt)       \
    {                                                                                                     \
        const int level = wino_level();                                                                   \
        const ptrdiff_t TH = TILES(OH), TW = TILES(OW), T = n * TH * TW;                                  \
        const ptrdiff_t vs = C * T + WINO_PAD, ds = F * T + WINO_PAD;                                     \
        WT *dd = scratch + NPOS * vs, *line = dd + NPOS * ds;                                             \
        const WT *v = kept ? kept : scratch;                                                              \
        if (!kept)                                                                                        \
            for (ptrdiff_t c = 0; c < C; c++)                                                             \
                cnn_wino_table[level].IN##_##WSFX(n, x + c * xs_c, xs_n, H, W, ph, pw, TH, TW,               \
                                                scratch + c * T, vs, line);                               \
        for (ptrdiff_t f = 0; f < F; f++)                                                                 \
            cnn_wino_table[level].DOUT##_##WSFX(n, dy + f * ys_f, ys_n, TH, TW, OH, OW, dd + f * T, ds,   \
                                              line);                                                      \
        /* dU[xi] (F, C) += D[xi] (F, T) @ V[xi] (C, T)^T */                                              \
        for (int xi = 0; xi < NPOS; xi++) {                                                               \
            const int err = gemm_nt(F, C, T, dd + xi * ds, T, v + xi * vs, T, du + xi * F * C, C);        \
            if (err) return err;                                                                          \
        }                                                                                                 \
        return 0;                                                                                         \
    }
WINO_DRIVERS(float, s, wino, WINO_TILES, 16, in, out, dout)
WINO_DRIVERS(double, d, wino, WINO_TILES, 16, in, out, dout)
WINO_DRIVERS(float, s, wino4, WINO4_TILES, 36, in4, out4, dout4)
WINO_DRIVERS(double, d, wino4, WINO4_TILES, 36, in4, out4, dout4)
