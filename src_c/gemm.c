/* Dense GEMM for cnn_core: cache-blocked Goto/BLIS loop nest with packed panels (gemm_template.h),
 * register-blocked micro-kernels (AVX2+FMA when the CPU has them, chosen once at run time; portable C
 * otherwise) and OpenMP over rectangles of C when the problem is big enough to pay for the threads. */
#include "gemm.h"

#include <stdlib.h>

#if CNN_CORE_OPENMP
#include <omp.h>
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CNN_GEMM_X86 1
#include <immintrin.h>
#else
#define CNN_GEMM_X86 0
#endif

#if defined(_MSC_VER)
#define CNN_TLS __declspec(thread)
#define CNN_ALIGN64 __declspec(align(64))
#else
#define CNN_TLS __thread
#define CNN_ALIGN64 __attribute__((aligned(64)))
#endif

/* Below this many multiply-adds per thread, thread start-up and the duplicated packing cost more than
 * they save (about 20 us of single-core work). */
#define CNN_GEMM_MIN_WORK_PER_THREAD (1 << 20)

static void *cnn_aligned_alloc(size_t bytes)
{
#if defined(_WIN32)
    return _aligned_malloc(bytes, 64);
#else
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
#endif
}

static void cnn_aligned_free(void *p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

/* ---- run-time kernel choice ---------------------------------------------------------------------- */

static int cnn_cpu_has_avx2_fma(void)
{
#if CNN_GEMM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* -1 = not decided yet. Deciding twice from two threads is harmless: both store the same value. */
static volatile int cnn_simd_state = -1;

int cnn_gemm_simd(void)
{
    if (cnn_simd_state < 0)
        cnn_simd_state = cnn_cpu_has_avx2_fma();
    return cnn_simd_state;
}

int cnn_gemm_set_simd(int enable)
{
    cnn_simd_state = enable ? cnn_cpu_has_avx2_fma() : 0;
    return cnn_simd_state;
}

/* ---- threading ----------------------------------------------------------------------------------- */

/* Choose a tm x tn grid of C rectangles, one per thread, or 1 x 1 to stay serial: serial for small
 * problems and inside an enclosing parallel region (no nested teams, no oversubscription). The grid
 * minimizes one thread's cost: its MACs / 16 (a vector FMA does ~16 per cycle) plus its packing work. */
static void cnn_gemm_thread_grid(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int mr, int nr, int *tm, int *tn)
{
    *tm = *tn = 1;
#if CNN_CORE_OPENMP
    if (omp_in_parallel())
        return;
    int nt = omp_get_max_threads();
    const double cap = (double)m * (double)n * (double)k / CNN_GEMM_MIN_WORK_PER_THREAD;
    if (cap < nt)
        nt = (int)cap;
    if (nt <= 1)
        return;
    const ptrdiff_t row_tiles = (m + mr - 1) / mr, col_tiles = (n + nr - 1) / nr;
    double best = -1;
    for (int t = 1; t <= nt; ++t) {
        if (nt % t != 0)
            continue;
        const double pm = (double)((row_tiles + t - 1) / t * mr);
        const double pn = (double)((col_tiles + nt / t - 1) / (nt / t) * nr);
        const double cost = pm * pn / 16.0 + pm + pn;
        if (best < 0 || cost < best) {
            best = cost;
            *tm = t;
            *tn = nt / t;
        }
    }
#else
    (void)m; (void)n; (void)k; (void)mr; (void)nr;
#endif
}

/* ---- AVX2+FMA micro-kernels ---------------------------------------------------------------------- */

#if CNN_GEMM_X86

/* 6 x 16 floats: 12 ymm accumulators + 2 for the B row + 1 broadcast of A = 15 of 16 registers. */
__attribute__((target("avx2,fma")))
static void s_kernel_avx2(ptrdiff_t k, const float *a, const float *b, float *c, ptrdiff_t ldc,
                          float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int i = 0; i < 6; ++i)
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    for (ptrdiff_t p = 0; p < k; ++p) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        ai = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += 6;
        b += 16;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define S_STORE(row, x0, x1)                                                                          \
    do {                                                                                              \
        float *cr = c + (row) * ldc;                                                                  \
        if (beta == 0) {                                                                              \
            _mm256_storeu_ps(cr, _mm256_mul_ps(va, x0));                                              \
            _mm256_storeu_ps(cr + 8, _mm256_mul_ps(va, x1));                                          \
        } else {                                                                                      \
            _mm256_storeu_ps(cr, _mm256_fmadd_ps(va, x0, _mm256_mul_ps(vb, _mm256_loadu_ps(cr))));    \
            _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(va, x1, _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8)))); \
        }                                                                                             \
    } while (0)
    S_STORE(0, c00, c01); S_STORE(1, c10, c11); S_STORE(2, c20, c21);
    S_STORE(3, c30, c31); S_STORE(4, c40, c41); S_STORE(5, c50, c51);
#undef S_STORE
}

/* 6 x 8 doubles: the same register budget as the float kernel. */
__attribute__((target("avx2,fma")))
static void d_kernel_avx2(ptrdiff_t k, const double *a, const double *b, double *c, ptrdiff_t ldc,
                          double alpha, double beta)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int i = 0; i < 6; ++i)
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    for (ptrdiff_t p = 0; p < k; ++p) {
        const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
        __m256d ai;
        ai = _mm256_broadcast_sd(a + 0); c00 = _mm256_fmadd_pd(ai, b0, c00); c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a + 1); c10 = _mm256_fmadd_pd(ai, b0, c10); c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a + 2); c20 = _mm256_fmadd_pd(ai, b0, c20); c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a + 3); c30 = _mm256_fmadd_pd(ai, b0, c30); c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a + 4); c40 = _mm256_fmadd_pd(ai, b0, c40); c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a + 5); c50 = _mm256_fmadd_pd(ai, b0, c50); c51 = _mm256_fmadd_pd(ai, b1, c51);
        a += 6;
        b += 8;
    }
    const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
#define D_STORE(row, x0, x1)                                                                          \
    do {                                                                                              \
        double *cr = c + (row) * ldc;                                                                 \
        if (beta == 0) {                                                                              \
            _mm256_storeu_pd(cr, _mm256_mul_pd(va, x0));                                              \
            _mm256_storeu_pd(cr + 4, _mm256_mul_pd(va, x1));                                          \
        } else {                                                                                      \
            _mm256_storeu_pd(cr, _mm256_fmadd_pd(va, x0, _mm256_mul_pd(vb, _mm256_loadu_pd(cr))));    \
            _mm256_storeu_pd(cr + 4, _mm256_fmadd_pd(va, x1, _mm256_mul_pd(vb, _mm256_loadu_pd(cr + 4)))); \
        }                                                                                             \
    } while (0)
    D_STORE(0, c00, c01); D_STORE(1, c10, c11); D_STORE(2, c20, c21);
    D_STORE(3, c30, c31); D_STORE(4, c40, c41); D_STORE(5, c50, c51);
#undef D_STORE
}

#endif /* CNN_GEMM_X86 */

/* ---- float and double instantiations ------------------------------------------------------------- */

#define T float
#define G(name) s_##name
#define MR 6
#define NR 16
#define MC 144
#define KC 256
#define NC 4096
#if CNN_GEMM_X86
#define SIMD_KERNEL s_kernel_avx2
#endif
#include "gemm_template.h"
#undef T
#undef G
#undef MR
#undef NR
#undef MC
#undef KC
#undef NC
#undef SIMD_KERNEL

#define T double
#define G(name) d_##name
#define MR 6
#define NR 8
#define MC 96
#define KC 256
#define NC 2048
#if CNN_GEMM_X86
#define SIMD_KERNEL d_kernel_avx2
#endif
#include "gemm_template.h"
#undef T
#undef G
#undef MR
#undef NR
#undef MC
#undef KC
#undef NC
#undef SIMD_KERNEL

/* ---- public entry points ------------------------------------------------------------------------- */

int cnn_sgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb,
                      float beta, float *c, ptrdiff_t ldc)
{
    return s_gemm_strided(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
}

int cnn_dgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                      const double *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const double *b, ptrdiff_t rsb, ptrdiff_t csb,
                      double beta, double *c, ptrdiff_t ldc)
{
    return d_gemm_strided(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
}

/* Row-major BLAS-style interface: A is M x K (lda) or, transposed, K x M; likewise B. */
int cnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
              float alpha, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
              float beta, float *c, ptrdiff_t ldc)
{
    return s_gemm_strided(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1,
                          b, trans_b ? 1 : ldb, trans_b ? ldb : 1, beta, c, ldc);
}

int cnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
              double alpha, const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb,
              double beta, double *c, ptrdiff_t ldc)
{
    return d_gemm_strided(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1,
                          b, trans_b ? 1 : ldb, trans_b ? ldb : 1, beta, c, ldc);
}
