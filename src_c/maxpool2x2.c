/* Max pooling with 2x2 windows at stride 2 (LeNet's pooling), one (n, c) plane per call.
 *
 * The general loop in _pooling.pyx selects window winners through an index (one scalar gather per
 * candidate); here a row of windows is deinterleaved into the four candidate vectors (top-left, top-right,
 * bottom-left, bottom-right) and compared with blends: 8 floats or 4 doubles per step with AVX2. The rule is
 * the general loop's: in that order, a candidate wins when it is strictly larger (ties keep the first) or
 * when it is the first NaN. A row's last windows go through masked loads and stores.
 * At the baseline level (no such kernel) the caller keeps the general loop.
 */
#include "maxpool2x2.h"

#if CNN_X86
#include "avx2.h"

#define MP_AVX2 CNN_AVX2_INLINE

/* Lanes where cand beats best: cand > best (ordered), or cand is NaN while best is not. */
MP_AVX2 __m256 s_wins(__m256 cand, __m256 best)
{
    const __m256 nan_cand = _mm256_cmp_ps(cand, cand, _CMP_UNORD_Q);
    const __m256 nan_best = _mm256_cmp_ps(best, best, _CMP_UNORD_Q);
    return _mm256_or_ps(_mm256_cmp_ps(cand, best, _CMP_GT_OQ), _mm256_andnot_ps(nan_best, nan_cand));
}

MP_AVX2 __m256d d_wins(__m256d cand, __m256d best)
{
    const __m256d nan_cand = _mm256_cmp_pd(cand, cand, _CMP_UNORD_Q);
    const __m256d nan_best = _mm256_cmp_pd(best, best, _CMP_UNORD_Q);
    return _mm256_or_pd(_mm256_cmp_pd(cand, best, _CMP_GT_OQ), _mm256_andnot_pd(nan_best, nan_cand));
}

/* Even (2, 0) or odd (3, 1) columns of the 16 floats a | b, in column order: the shuffle picks them within
 * 128-bit lanes, the permute puts the lanes' halves back in order. */
#define S_EVEN(a, b) _mm256_castpd_ps(_mm256_permute4x64_pd(                                             \
    _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)))
#define S_ODD(a, b) _mm256_castpd_ps(_mm256_permute4x64_pd(                                              \
    _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)))

/* Outputs ow..ow+7 of one output row (only the first r when r < 8: masked loads and stores, so the row's
 * last windows need no scalar code). The winner's offset inside its window is carried as int32 lanes
 * (the caller checks W + 1 < 2^31) and widened to int64 for the store. */
MP_AVX2 void s_step(const float *r0, const float *r1, float *o, int64_t *am, int64_t start, int32_t W,
                    ptrdiff_t r)
{
    __m256 a0, a1, b0, b1;
    if (r >= 8) {
        a0 = _mm256_loadu_ps(r0); a1 = _mm256_loadu_ps(r0 + 8);
        b0 = _mm256_loadu_ps(r1); b1 = _mm256_loadu_ps(r1 + 8);
    } else {
        const __m256i m0 = cnn_lanes_ps(2 * r), m1 = cnn_lanes_ps(2 * r - 8);
        a0 = _mm256_maskload_ps(r0, m0); a1 = _mm256_maskload_ps(r0 + 8, m1);
        b0 = _mm256_maskload_ps(r1, m0); b1 = _mm256_maskload_ps(r1 + 8, m1);
    }
    const __m256 tr = S_ODD(a0, a1), bl = S_EVEN(b0, b1), br = S_ODD(b0, b1);
    __m256 best = S_EVEN(a0, a1), off = _mm256_setzero_ps(), t;
    t = s_wins(tr, best);
    best = _mm256_blendv_ps(best, tr, t);
    off = _mm256_blendv_ps(off, _mm256_castsi256_ps(_mm256_set1_epi32(1)), t);
    t = s_wins(bl, best);
    best = _mm256_blendv_ps(best, bl, t);
    off = _mm256_blendv_ps(off, _mm256_castsi256_ps(_mm256_set1_epi32(W)), t);
    t = s_wins(br, best);
    best = _mm256_blendv_ps(best, br, t);
    off = _mm256_blendv_ps(off, _mm256_castsi256_ps(_mm256_set1_epi32(W + 1)), t);
    const __m256i offi = _mm256_castps_si256(off);
    const __m256i lo = _mm256_add_epi64(_mm256_set1_epi64x(start),
                                        _mm256_add_epi64(_mm256_setr_epi64x(0, 2, 4, 6),
                                                         _mm256_cvtepi32_epi64(_mm256_castsi256_si128(offi))));
    const __m256i hi = _mm256_add_epi64(_mm256_set1_epi64x(start),
                                        _mm256_add_epi64(_mm256_setr_epi64x(8, 10, 12, 14),
                                                         _mm256_cvtepi32_epi64(_mm256_extracti128_si256(offi, 1))));
    if (r >= 8) {
        _mm256_storeu_ps(o, best);
        _mm256_storeu_si256((__m256i *)am, lo);
        _mm256_storeu_si256((__m256i *)(am + 4), hi);
    } else {
        _mm256_maskstore_ps(o, cnn_lanes_ps(r), best);
        _mm256_maskstore_epi64((long long *)am, cnn_lanes_pd(r), lo);
        _mm256_maskstore_epi64((long long *)(am + 4), cnn_lanes_pd(r - 4), hi);
    }
}

/* Outputs ow..ow+3 (the first r when r < 4), offsets carried as int64 lanes. */
MP_AVX2 void d_step(const double *r0, const double *r1, double *o, int64_t *am, int64_t start, int64_t W,
                    ptrdiff_t r)
{
    __m256d a0, a1, b0, b1;
    if (r >= 4) {
        a0 = _mm256_loadu_pd(r0); a1 = _mm256_loadu_pd(r0 + 4);
        b0 = _mm256_loadu_pd(r1); b1 = _mm256_loadu_pd(r1 + 4);
    } else {
        const __m256i m0 = cnn_lanes_pd(2 * r), m1 = cnn_lanes_pd(2 * r - 4);
        a0 = _mm256_maskload_pd(r0, m0); a1 = _mm256_maskload_pd(r0 + 4, m1);
        b0 = _mm256_maskload_pd(r1, m0); b1 = _mm256_maskload_pd(r1 + 4, m1);
    }
    /* unpack picks even/odd columns within 128-bit lanes; the permute restores column order */
    const __m256d tr = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a0, a1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m256d bl = _mm256_permute4x64_pd(_mm256_unpacklo_pd(b0, b1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m256d br = _mm256_permute4x64_pd(_mm256_unpackhi_pd(b0, b1), _MM_SHUFFLE(3, 1, 2, 0));
    __m256d best = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a0, a1), _MM_SHUFFLE(3, 1, 2, 0));
    __m256d off = _mm256_setzero_pd(), t;
    t = d_wins(tr, best);
    best = _mm256_blendv_pd(best, tr, t);
    off = _mm256_blendv_pd(off, _mm256_castsi256_pd(_mm256_set1_epi64x(1)), t);
    t = d_wins(bl, best);
    best = _mm256_blendv_pd(best, bl, t);
    off = _mm256_blendv_pd(off, _mm256_castsi256_pd(_mm256_set1_epi64x(W)), t);
    t = d_wins(br, best);
    best = _mm256_blendv_pd(best, br, t);
    off = _mm256_blendv_pd(off, _mm256_castsi256_pd(_mm256_set1_epi64x(W + 1)), t);
    const __m256i idx = _mm256_add_epi64(_mm256_set1_epi64x(start),
                                         _mm256_add_epi64(_mm256_setr_epi64x(0, 2, 4, 6), _mm256_castpd_si256(off)));
    if (r >= 4) {
        _mm256_storeu_pd(o, best);
        _mm256_storeu_si256((__m256i *)am, idx);
    } else {
        _mm256_maskstore_pd(o, cnn_lanes_pd(r), best);
        _mm256_maskstore_epi64((long long *)am, cnn_lanes_pd(r), idx);
    }
}

#define MP_PLANE(T, V)                                                                                   \
    CNN_AVX2 static void T##_plane_avx2(const V *x, V *out, int64_t *argmax,      \
                                                              ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW)   \
    {                                                                                                    \
        const ptrdiff_t lanes = 32 / sizeof(V);                                                          \
        for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                                          \
            const V *r0 = x + 2 * oh * W;                                                                \
            for (ptrdiff_t ow = 0; ow < OW; ow += lanes)                                                 \
                T##_step(r0 + 2 * ow, r0 + W + 2 * ow, out + oh * OW + ow, argmax + oh * OW + ow,        \
                         2 * oh * W + 2 * ow, W, OW - ow);                                               \
        }                                                                                                \
    }
MP_PLANE(s, float)
MP_PLANE(d, double)

#endif /* CNN_X86 */

/* The plane kernels of each instruction-set level; NULL: the caller's general loop. */
typedef void (*s_plane_t)(const float *, float *, int64_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t);
typedef void (*d_plane_t)(const double *, double *, int64_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t);
static const struct {
    s_plane_t s_plane;
    d_plane_t d_plane;
} cnn_mp_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = {NULL, NULL},
#if CNN_X86
    [CNN_SIMD_AVX2] = {s_plane_avx2, d_plane_avx2},
    [CNN_SIMD_AVX512] = {s_plane_avx2, d_plane_avx2},   /* no AVX-512 kernel yet (issue 10) */
#endif
};

static int cnn_mp_baseline(void)
{
    return CNN_SIMD_BASELINE;
}

static cnn_simd_level_fn cnn_mp_level = cnn_mp_baseline;

void cnn_maxpool2x2_init(cnn_simd_level_fn simd_level)
{
    cnn_mp_level = simd_level;
}

#define MP_ENTRY(T, V, LIMIT)                                                                            \
    int cnn_##T##maxpool2x2_plane(const V *x, V *out, int64_t *argmax, ptrdiff_t W, ptrdiff_t OH,        \
                                  ptrdiff_t OW)                                                          \
    {                                                                                                    \
        const int level = cnn_mp_level();                                                                \
        const T##_plane_t plane = level > 0 && level < CNN_SIMD_NLEVELS ? cnn_mp_table[level].T##_plane  \
                                                                         : NULL;                         \
        if (plane == NULL || W >= (LIMIT))                                                               \
            return 0;                                                                                    \
        plane(x, out, argmax, W, OH, OW);                                                                \
        return 1;                                                                                        \
    }
/* float offsets ride in int32 lanes (s_step): W + 1 must fit */
MP_ENTRY(s, float, (ptrdiff_t)1 << 30)
MP_ENTRY(d, double, PTRDIFF_MAX)
