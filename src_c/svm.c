/* SMO's two passes over the active slots (see svm.h), per instruction-set level.
 *
 * Each pass reads one or two rows of K, through the slot -> variable map ix (gathers: 8 entries per AVX-512
 * step, 4 per AVX2 step) or, with ix NULL, slot s at column s (plain loads), and widens float32 K to
 * float64; g, up, low and q are contiguous. A running optimum is kept per lane with the index of the last
 * slot that reached it (a lane sees its slots in increasing order, so "compare with >= / <=, keep the
 * newer" is the scalar loop's rule), and the lanes are reduced to the optimum and the largest index among
 * the lanes that hold it: the scalar loop's answer. The last m mod (lanes) slots go through the scalar loop,
 * which carries on from the vector part's (optimum, index). Indices ride in float64 lanes (exact below
 * 2^53) so that one blend moves value and index alike.
 *
 * SMO keeps its slots in K's column order wherever it can (cnn_core/kernels/_svm.pyx: shrinking masks slots
 * instead of moving them), so the passes mostly run with ix NULL: plain loads. Measured (Zen 4, 8,000 slots,
 * float32 K in cache, one thread): the scalar loops take 9-10 us (update) and 15 us (selection) per pass,
 * AVX-512 with plain loads 3.2 and 4.1 us, AVX-512 with gathers 8.9 and 10.1 us (gathers of 8 are slow on
 * this CPU: the contiguous layout is what pays).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* same bits at every level: no fused multiply-adds (svm.h) */
#endif

#include <math.h>

#include "svm.h"

/* ---- baseline: the scalar loops, continued from a running (optimum, index) ---- */

#define SVM_SCALAR(T, V)                                                                                            \
    static ptrdiff_t T##_update_tail(const V *Ki, const V *Kj, const int *ix, ptrdiff_t s0, ptrdiff_t m,            \
                                     double di, double dj, double *g, const double *up, double *best,               \
                                     ptrdiff_t i)                                                                   \
    {                                                                                                               \
        double b = *best;                                                                                           \
        for (ptrdiff_t s = s0; s < m; s++) {                                                                        \
            const ptrdiff_t p = ix ? ix[s] : s;                                                                     \
            const double gs = g[s] - ((double)Ki[p] * di + (double)Kj[p] * dj);                                     \
            const double v = gs + up[s];                                                                            \
            g[s] = gs;                                                                                              \
            if (v >= b) {                                                                                           \
                b = v;                                                                                              \
                i = s;                                                                                              \
            }                                                                                                       \
        }                                                                                                           \
        *best = b;                                                                                                  \
        return i;                                                                                                   \
    }                                                                                                               \
    /* obj_min is kept as best = -obj_min: a slot can only win when gd^2 >= best * quad, so the division            \
     * is skipped for the others (with 1e-9 of slack, more than the rounding of the exact test) */                  \
    static ptrdiff_t T##_select_tail(const V *Ki, const int *ix, ptrdiff_t s0, ptrdiff_t m, double Kii,             \
                                     double Gmax, double tau, const double *g, const double *low,                   \
                                     const double *q, double *gmax2, double *obj_min, ptrdiff_t j)                  \
    {                                                                                                               \
        double g2 = *gmax2, om = *obj_min, best = om == INFINITY ? 0.0 : -om;                                       \
        for (ptrdiff_t s = s0; s < m; s++) {                                                                        \
            const double lv = low[s] - g[s];                                                                        \
            if (lv > g2)                                                                                            \
                g2 = lv;                                                                                            \
            const double gd = Gmax + lv;                                                                            \
            double quad = Kii + q[s] - 2.0 * (double)Ki[ix ? ix[s] : s];                                            \
            if (quad <= 0.0)                                                                                        \
                quad = tau;                                                                                         \
            if ((gd > 0.0) & (gd * gd >= best * quad * (1.0 - 1e-9))) {                                             \
                const double obj = -(gd * gd) / quad;                                                               \
                if (obj <= om) {                                                                                    \
                    j = s;                                                                                          \
                    om = obj;                                                                                       \
                    best = -obj;                                                                                    \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        *gmax2 = g2;                                                                                                \
        *obj_min = om;                                                                                              \
        return j;                                                                                                   \
    }                                                                                                               \
    static ptrdiff_t T##_update_base(const V *Ki, const V *Kj, const int *ix, ptrdiff_t m, double di,               \
                                     double dj, double *g, const double *up, double *gmax)                          \
    {                                                                                                               \
        *gmax = -INFINITY;                                                                                          \
        const ptrdiff_t i = T##_update_tail(Ki, Kj, ix, 0, m, di, dj, g, up, gmax, -1);                             \
        return *gmax == -INFINITY ? -1 : i;                                                                         \
    }                                                                                                               \
    static ptrdiff_t T##_select_base(const V *Ki, const int *ix, ptrdiff_t m, double Kii, double Gmax,              \
                                     double tau, const double *g, const double *low, const double *q,               \
                                     double *gmax2)                                                                 \
    {                                                                                                               \
        double om = INFINITY;                                                                                       \
        *gmax2 = -INFINITY;                                                                                         \
        return T##_select_tail(Ki, ix, 0, m, Kii, Gmax, tau, g, low, q, gmax2, &om, -1);                            \
    }
SVM_SCALAR(s, float)
SVM_SCALAR(d, double)

#if CNN_X86
#include "avx2.h"
#include "avx512.h"

/* ---- AVX2: 4 slots per vector, two vectors per step (independent running optima) ---- */

/* K's entries of 4 slots as float64: a float32 gather widened, or a float64 gather */
#define S_GATHER4(K, ix, s) \
    _mm256_cvtps_pd(_mm_i32gather_ps((K), _mm_loadu_si128((const __m128i *)((ix) + (s))), 4))
#define D_GATHER4(K, ix, s) _mm256_i32gather_pd((K), _mm_loadu_si128((const __m128i *)((ix) + (s))), 8)
/* the same for slots whose columns are s..s+3 (ix NULL): plain loads */
#define S_LOAD4(K, ix, s) _mm256_cvtps_pd(_mm_loadu_ps((K) + (s)))
#define D_LOAD4(K, ix, s) _mm256_loadu_pd((K) + (s))

/* (value, index) of the lanes' optimum: the best value, and the largest index among the lanes holding it */
CNN_AVX2_INLINE double avx2_reduce(__m256d val, __m256d idx, int want_max, ptrdiff_t *at)
{
    double v[4], x[4];
    _mm256_storeu_pd(v, val);
    _mm256_storeu_pd(x, idx);
    double b = v[0];
    for (int l = 1; l < 4; l++)
        b = want_max ? (v[l] > b ? v[l] : b) : (v[l] < b ? v[l] : b);
    double k = -1.0;
    for (int l = 0; l < 4; l++)
        if (v[l] == b && x[l] > k)
            k = x[l];
    *at = (ptrdiff_t)k;
    return b;
}

/* merge two lanes' sets of (value, index): the better value, the larger index on ties */
#define AVX2_MERGE(cmp_better, v0, x0, v1, x1)                                                                      \
    do {                                                                                                            \
        const __m256d take_ = _mm256_or_pd(_mm256_cmp_pd(v1, v0, cmp_better),                                       \
                                           _mm256_and_pd(_mm256_cmp_pd(v1, v0, _CMP_EQ_OQ),                         \
                                                         _mm256_cmp_pd(x1, x0, _CMP_GT_OQ)));                       \
        v0 = _mm256_blendv_pd(v0, v1, take_);                                                                       \
        x0 = _mm256_blendv_pd(x0, x1, take_);                                                                       \
    } while (0)

#define SVM_AVX2(T, X, V, KAT)                                                                                      \
    CNN_AVX2 static ptrdiff_t T##_update_avx2##X(const V *Ki, const V *Kj, const int *ix, ptrdiff_t m,              \
                                              double di, double dj, double *g, const double *up,                    \
                                              double *gmax)                                                         \
    {                                                                                                               \
        const __m256d vdi = _mm256_set1_pd(di), vdj = _mm256_set1_pd(dj), eight = _mm256_set1_pd(8.0);              \
        /* best0/best1: each lane's running maximum of g + up for slots s = 8k + lane (+ 4); at0/at1:               \
         * the last slot reaching it */                                                                             \
        __m256d best0 = _mm256_set1_pd(-INFINITY), best1 = best0;                                                   \
        __m256d at0 = _mm256_set1_pd(-1.0), at1 = at0;                                                              \
        __m256d s0 = _mm256_setr_pd(0, 1, 2, 3), s1 = _mm256_setr_pd(4, 5, 6, 7);                                   \
        ptrdiff_t s = 0;                                                                                            \
        for (; s + 8 <= m; s += 8) {                                                                                \
            const __m256d u0 = _mm256_add_pd(_mm256_mul_pd(KAT(Ki, ix, s), vdi),                                    \
                                             _mm256_mul_pd(KAT(Kj, ix, s), vdj));                                   \
            const __m256d u1 = _mm256_add_pd(_mm256_mul_pd(KAT(Ki, ix, s + 4), vdi),                                \
                                             _mm256_mul_pd(KAT(Kj, ix, s + 4), vdj));                               \
            const __m256d g0 = _mm256_sub_pd(_mm256_loadu_pd(g + s), u0);                                           \
            const __m256d g1 = _mm256_sub_pd(_mm256_loadu_pd(g + s + 4), u1);                                       \
            _mm256_storeu_pd(g + s, g0);                                                                            \
            _mm256_storeu_pd(g + s + 4, g1);                                                                        \
            const __m256d v0 = _mm256_add_pd(g0, _mm256_loadu_pd(up + s));                                          \
            const __m256d v1 = _mm256_add_pd(g1, _mm256_loadu_pd(up + s + 4));                                      \
            const __m256d t0 = _mm256_cmp_pd(v0, best0, _CMP_GE_OQ);                                                \
            const __m256d t1 = _mm256_cmp_pd(v1, best1, _CMP_GE_OQ);                                                \
            best0 = _mm256_blendv_pd(best0, v0, t0);                                                                \
            best1 = _mm256_blendv_pd(best1, v1, t1);                                                                \
            at0 = _mm256_blendv_pd(at0, s0, t0);                                                                    \
            at1 = _mm256_blendv_pd(at1, s1, t1);                                                                    \
            s0 = _mm256_add_pd(s0, eight);                                                                          \
            s1 = _mm256_add_pd(s1, eight);                                                                          \
        }                                                                                                           \
        AVX2_MERGE(_CMP_GT_OQ, best0, at0, best1, at1);                                                             \
        ptrdiff_t i;                                                                                                \
        double b = avx2_reduce(best0, at0, 1, &i);                                                                  \
        i = T##_update_tail(Ki, Kj, ix, s, m, di, dj, g, up, &b, i);                                                \
        *gmax = b;                                                                                                  \
        return b == -INFINITY ? -1 : i;                                                                             \
    }                                                                                                               \
    CNN_AVX2 static ptrdiff_t T##_select_avx2##X(const V *Ki, const int *ix, ptrdiff_t m, double Kii,               \
                                              double Gmax, double tau, const double *g,                             \
                                              const double *low, const double *q, double *gmax2)                    \
    {                                                                                                               \
        const __m256d vG = _mm256_set1_pd(Gmax), vKii = _mm256_set1_pd(Kii), two = _mm256_set1_pd(2.0);             \
        const __m256d vtau = _mm256_set1_pd(tau), zero = _mm256_setzero_pd(), four = _mm256_set1_pd(4.0);           \
        const __m256d sign = _mm256_set1_pd(-0.0);                                                                  \
        /* g2: each lane's max of lv; om/at: its minimum obj among candidates and the last slot there */            \
        __m256d g2 = _mm256_set1_pd(-INFINITY), om = _mm256_set1_pd(INFINITY), at = _mm256_set1_pd(-1.0);           \
        __m256d sv = _mm256_setr_pd(0, 1, 2, 3);                                                                    \
        ptrdiff_t s = 0;                                                                                            \
        for (; s + 4 <= m; s += 4) {                                                                                \
            const __m256d lv = _mm256_sub_pd(_mm256_loadu_pd(low + s), _mm256_loadu_pd(g + s));                     \
            g2 = _mm256_max_pd(lv, g2);                                                                             \
            const __m256d gd = _mm256_add_pd(vG, lv);                                                               \
            __m256d quad = _mm256_sub_pd(_mm256_add_pd(vKii, _mm256_loadu_pd(q + s)),                               \
                                         _mm256_mul_pd(two, KAT(Ki, ix, s)));                                       \
            quad = _mm256_blendv_pd(quad, vtau, _mm256_cmp_pd(quad, zero, _CMP_LE_OQ));                             \
            const __m256d obj = _mm256_div_pd(_mm256_xor_pd(_mm256_mul_pd(gd, gd), sign), quad);                    \
            const __m256d t = _mm256_and_pd(_mm256_cmp_pd(gd, zero, _CMP_GT_OQ),                                    \
                                            _mm256_cmp_pd(obj, om, _CMP_LE_OQ));                                    \
            om = _mm256_blendv_pd(om, obj, t);                                                                      \
            at = _mm256_blendv_pd(at, sv, t);                                                                       \
            sv = _mm256_add_pd(sv, four);                                                                           \
        }                                                                                                           \
        ptrdiff_t j, unused;                                                                                        \
        double o = avx2_reduce(om, at, 0, &j), G2 = avx2_reduce(g2, g2, 1, &unused);                                \
        if (o == INFINITY)                                                                                          \
            j = -1;                                                                                                 \
        *gmax2 = G2;                                                                                                \
        return T##_select_tail(Ki, ix, s, m, Kii, Gmax, tau, g, low, q, gmax2, &o, j);                              \
    }
SVM_AVX2(s, _g, float, S_GATHER4)
SVM_AVX2(d, _g, double, D_GATHER4)
SVM_AVX2(s, _c, float, S_LOAD4)
SVM_AVX2(d, _c, double, D_LOAD4)

/* ---- AVX-512: 8 slots per vector, two vectors per update step ---- */

#define S_GATHER8(K, ix, s) \
    _mm512_cvtps_pd(_mm256_i32gather_ps((K), _mm256_loadu_si256((const __m256i *)((ix) + (s))), 4))
#define D_GATHER8(K, ix, s) _mm512_i32gather_pd(_mm256_loadu_si256((const __m256i *)((ix) + (s))), (K), 8)
#define S_LOAD8(K, ix, s) _mm512_cvtps_pd(_mm256_loadu_ps((K) + (s)))
#define D_LOAD8(K, ix, s) _mm512_loadu_pd((K) + (s))

CNN_AVX512_INLINE double avx512_reduce(__m512d val, __m512d idx, int want_max, ptrdiff_t *at)
{
    const double b = want_max ? _mm512_reduce_max_pd(val) : _mm512_reduce_min_pd(val);
    const __mmask8 eq = _mm512_cmp_pd_mask(val, _mm512_set1_pd(b), _CMP_EQ_OQ);
    *at = (ptrdiff_t)_mm512_mask_reduce_max_pd(eq, idx);
    return b;
}

#define SVM_AVX512(T, X, V, KAT)                                                                                    \
    CNN_AVX512 static ptrdiff_t T##_update_avx512##X(const V *Ki, const V *Kj, const int *ix, ptrdiff_t m,          \
                                                  double di, double dj, double *g, const double *up,                \
                                                  double *gmax)                                                     \
    {                                                                                                               \
        const __m512d vdi = _mm512_set1_pd(di), vdj = _mm512_set1_pd(dj), sixteen = _mm512_set1_pd(16.0);           \
        __m512d best0 = _mm512_set1_pd(-INFINITY), best1 = best0;                                                   \
        __m512d at0 = _mm512_set1_pd(-1.0), at1 = at0;                                                              \
        __m512d s0 = _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7);                                                        \
        __m512d s1 = _mm512_setr_pd(8, 9, 10, 11, 12, 13, 14, 15);                                                  \
        ptrdiff_t s = 0;                                                                                            \
        for (; s + 16 <= m; s += 16) {                                                                              \
            const __m512d u0 = _mm512_add_pd(_mm512_mul_pd(KAT(Ki, ix, s), vdi),                                    \
                                             _mm512_mul_pd(KAT(Kj, ix, s), vdj));                                   \
            const __m512d u1 = _mm512_add_pd(_mm512_mul_pd(KAT(Ki, ix, s + 8), vdi),                                \
                                             _mm512_mul_pd(KAT(Kj, ix, s + 8), vdj));                               \
            const __m512d g0 = _mm512_sub_pd(_mm512_loadu_pd(g + s), u0);                                           \
            const __m512d g1 = _mm512_sub_pd(_mm512_loadu_pd(g + s + 8), u1);                                       \
            _mm512_storeu_pd(g + s, g0);                                                                            \
            _mm512_storeu_pd(g + s + 8, g1);                                                                        \
            const __m512d v0 = _mm512_add_pd(g0, _mm512_loadu_pd(up + s));                                          \
            const __m512d v1 = _mm512_add_pd(g1, _mm512_loadu_pd(up + s + 8));                                      \
            const __mmask8 t0 = _mm512_cmp_pd_mask(v0, best0, _CMP_GE_OQ);                                          \
            const __mmask8 t1 = _mm512_cmp_pd_mask(v1, best1, _CMP_GE_OQ);                                          \
            best0 = _mm512_mask_mov_pd(best0, t0, v0);                                                              \
            best1 = _mm512_mask_mov_pd(best1, t1, v1);                                                              \
            at0 = _mm512_mask_mov_pd(at0, t0, s0);                                                                  \
            at1 = _mm512_mask_mov_pd(at1, t1, s1);                                                                  \
            s0 = _mm512_add_pd(s0, sixteen);                                                                        \
            s1 = _mm512_add_pd(s1, sixteen);                                                                        \
        }                                                                                                           \
        const __mmask8 take = _mm512_cmp_pd_mask(best1, best0, _CMP_GT_OQ) |                                        \
                              (_mm512_cmp_pd_mask(best1, best0, _CMP_EQ_OQ) &                                       \
                               _mm512_cmp_pd_mask(at1, at0, _CMP_GT_OQ));                                           \
        best0 = _mm512_mask_mov_pd(best0, take, best1);                                                             \
        at0 = _mm512_mask_mov_pd(at0, take, at1);                                                                   \
        ptrdiff_t i;                                                                                                \
        double b = avx512_reduce(best0, at0, 1, &i);                                                                \
        i = T##_update_tail(Ki, Kj, ix, s, m, di, dj, g, up, &b, i);                                                \
        *gmax = b;                                                                                                  \
        return b == -INFINITY ? -1 : i;                                                                             \
    }                                                                                                               \
    CNN_AVX512 static ptrdiff_t T##_select_avx512##X(const V *Ki, const int *ix, ptrdiff_t m, double Kii,           \
                                                  double Gmax, double tau, const double *g,                         \
                                                  const double *low, const double *q, double *gmax2)                \
    {                                                                                                               \
        const __m512d vG = _mm512_set1_pd(Gmax), vKii = _mm512_set1_pd(Kii), two = _mm512_set1_pd(2.0);             \
        const __m512d vtau = _mm512_set1_pd(tau), zero = _mm512_setzero_pd(), eight = _mm512_set1_pd(8.0);          \
        const __m512d sign = _mm512_set1_pd(-0.0);                                                                  \
        __m512d g2 = _mm512_set1_pd(-INFINITY), om = _mm512_set1_pd(INFINITY), at = _mm512_set1_pd(-1.0);           \
        __m512d sv = _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7);                                                        \
        ptrdiff_t s = 0;                                                                                            \
        for (; s + 8 <= m; s += 8) {                                                                                \
            const __m512d lv = _mm512_sub_pd(_mm512_loadu_pd(low + s), _mm512_loadu_pd(g + s));                     \
            g2 = _mm512_max_pd(lv, g2);                                                                             \
            const __m512d gd = _mm512_add_pd(vG, lv);                                                               \
            __m512d quad = _mm512_sub_pd(_mm512_add_pd(vKii, _mm512_loadu_pd(q + s)),                               \
                                         _mm512_mul_pd(two, KAT(Ki, ix, s)));                                       \
            quad = _mm512_mask_mov_pd(quad, _mm512_cmp_pd_mask(quad, zero, _CMP_LE_OQ), vtau);                      \
            /* only the candidates (gd > 0) are divided */                                                          \
            const __mmask8 c = _mm512_cmp_pd_mask(gd, zero, _CMP_GT_OQ);                                            \
            const __m512d obj = _mm512_maskz_div_pd(c, _mm512_xor_pd(_mm512_mul_pd(gd, gd), sign), quad);           \
            const __mmask8 t = _mm512_mask_cmp_pd_mask(c, obj, om, _CMP_LE_OQ);                                     \
            om = _mm512_mask_mov_pd(om, t, obj);                                                                    \
            at = _mm512_mask_mov_pd(at, t, sv);                                                                     \
            sv = _mm512_add_pd(sv, eight);                                                                          \
        }                                                                                                           \
        ptrdiff_t j;                                                                                                \
        double o = avx512_reduce(om, at, 0, &j);                                                                    \
        if (o == INFINITY)                                                                                          \
            j = -1;                                                                                                 \
        *gmax2 = _mm512_reduce_max_pd(g2);                                                                          \
        return T##_select_tail(Ki, ix, s, m, Kii, Gmax, tau, g, low, q, gmax2, &o, j);                              \
    }
SVM_AVX512(s, _g, float, S_GATHER8)
SVM_AVX512(d, _g, double, D_GATHER8)
SVM_AVX512(s, _c, float, S_LOAD8)
SVM_AVX512(d, _c, double, D_LOAD8)
#endif /* CNN_X86 */

/* ---- the dispatch table: one row per instruction-set level ---- */

typedef ptrdiff_t (*s_update_t)(const float *, const float *, const int *, ptrdiff_t, double, double, double *,
                                const double *, double *);
typedef ptrdiff_t (*d_update_t)(const double *, const double *, const int *, ptrdiff_t, double, double,
                                double *, const double *, double *);
typedef ptrdiff_t (*s_select_t)(const float *, const int *, ptrdiff_t, double, double, double, const double *,
                                const double *, const double *, double *);
typedef ptrdiff_t (*d_select_t)(const double *, const int *, ptrdiff_t, double, double, double, const double *,
                                const double *, const double *, double *);
/* [0]: slots read K's columns through ix (gathers), [1]: ix NULL, slot s reads column s (plain loads) */
static const struct {
    s_update_t s_update[2];
    d_update_t d_update[2];
    s_select_t s_select[2];
    d_select_t d_select[2];
} cnn_svm_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {{s_update_base, s_update_base}, {d_update_base, d_update_base},
                           {s_select_base, s_select_base}, {d_select_base, d_select_base}},
#if CNN_X86
    [CNN_SIMD_AVX2] = {{s_update_avx2_g, s_update_avx2_c}, {d_update_avx2_g, d_update_avx2_c},
                       {s_select_avx2_g, s_select_avx2_c}, {d_select_avx2_g, d_select_avx2_c}},
    [CNN_SIMD_AVX512] = {{s_update_avx512_g, s_update_avx512_c}, {d_update_avx512_g, d_update_avx512_c},
                         {s_select_avx512_g, s_select_avx512_c}, {d_select_avx512_g, d_select_avx512_c}},
#endif
};

static int cnn_svm_baseline(void)
{
    return CNN_SIMD_BASELINE;
}

static cnn_simd_level_fn cnn_svm_level = cnn_svm_baseline;

void cnn_svm_init(cnn_simd_level_fn simd_level)
{
    cnn_svm_level = simd_level;
}

static int svm_row(void)
{
    const int level = cnn_svm_level();
    return level > 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE;
}

#define SVM_ENTRY(T, V)                                                                                             \
    ptrdiff_t cnn_##T##svm_update(const V *Ki, const V *Kj, const int *ix, ptrdiff_t m, double di,                  \
                                  double dj, double *g, const double *up, double *gmax)                             \
    {                                                                                                               \
        return cnn_svm_table[svm_row()].T##_update[ix == NULL](Ki, Kj, ix, m, di, dj, g, up, gmax);                 \
    }                                                                                                               \
    ptrdiff_t cnn_##T##svm_select(const V *Ki, const int *ix, ptrdiff_t m, double Kii, double Gmax,                 \
                                  double tau, const double *g, const double *low, const double *q,                  \
                                  double *gmax2)                                                                    \
    {                                                                                                               \
        return cnn_svm_table[svm_row()].T##_select[ix == NULL](Ki, ix, m, Kii, Gmax, tau, g, low, q, gmax2);        \
    }
SVM_ENTRY(s, float)
SVM_ENTRY(d, double)
