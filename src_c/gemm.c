/* Dense GEMM for cnn_core: cache-blocked Goto/BLIS loop nest with packed panels (gemm_template.h),
 * register-blocked micro-kernels (AVX2+FMA when the CPU has them, chosen once at run time; portable C
 * otherwise) and OpenMP over rectangles of C when the problem is big enough to pay for the threads. */
#include "gemm.h"

#include <stdlib.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <pthread.h>
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CNN_GEMM_X86 1
#include <immintrin.h>
#else
#define CNN_GEMM_X86 0
#endif

#if defined(_MSC_VER)
#define CNN_ALIGN64 __declspec(align(64))
#else
#define CNN_ALIGN64 __attribute__((aligned(64)))
#endif

/* Below this many multiply-adds per thread, thread start-up and the duplicated packing cost more than
 * they save (about 20 us of single-core work). */
#define CNN_GEMM_MIN_WORK_PER_THREAD (1 << 20)

/* Bytes of A the unpacked path keeps in L2 while B streams past. */
#define CNN_GEMM_SUP_A_BYTES (256 * 1024)

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

/* ---- per-thread packing buffers ------------------------------------------------------------------ */

/* One pair of packing buffers per thread, shared by the float and double drivers (a thread runs one GEMM
 * at a time), grown on demand and kept between calls: allocating (and page-faulting) fresh buffers on
 * every call costs more than a small GEMM itself. A thread-exit destructor frees them, so short-lived
 * threads (and OpenMP pools that end with their thread) leave nothing behind. */
typedef struct {
    void *a, *b;
    size_t bytes_a, bytes_b;
} cnn_gemm_bufs;

static void cnn_gemm_free_bufs(void *p)
{
    cnn_gemm_bufs *t = (cnn_gemm_bufs *)p;
    cnn_aligned_free(t->a);
    cnn_aligned_free(t->b);
    free(t);
}

#if defined(_WIN32)
static DWORD cnn_bufs_key = FLS_OUT_OF_INDEXES;
static void WINAPI cnn_gemm_free_bufs_fls(void *p)
{
    if (p != NULL)
        cnn_gemm_free_bufs(p);
}
static int cnn_bufs_key_create(void)
{
    cnn_bufs_key = FlsAlloc(cnn_gemm_free_bufs_fls);
    return cnn_bufs_key == FLS_OUT_OF_INDEXES ? -1 : 0;
}
#define cnn_bufs_get() ((cnn_gemm_bufs *)FlsGetValue(cnn_bufs_key))
#define cnn_bufs_set(t) (FlsSetValue(cnn_bufs_key, (t)) ? 0 : -1)
#else
static pthread_key_t cnn_bufs_key;
static int cnn_bufs_key_create(void)
{
    return pthread_key_create(&cnn_bufs_key, cnn_gemm_free_bufs) == 0 ? 0 : -1;
}
#define cnn_bufs_get() ((cnn_gemm_bufs *)pthread_getspecific(cnn_bufs_key))
#define cnn_bufs_set(t) (pthread_setspecific(cnn_bufs_key, (t)) == 0 ? 0 : -1)
#endif

static int cnn_gemm_grow(void **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap)
        return 0;
    cnn_aligned_free(*buf);     /* the old contents are never needed: free first, lower peak */
    *buf = cnn_aligned_alloc(bytes);
    *cap = *buf == NULL ? 0 : bytes;
    return *buf == NULL ? -1 : 0;
}

/* The calling thread's buffers, with room for bytes_a and bytes_b; -1 when memory runs out. */
static int cnn_gemm_buffers(size_t bytes_a, size_t bytes_b, void **pa, void **pb)
{
    cnn_gemm_bufs *t = cnn_bufs_get();
    if (t == NULL) {
        t = (cnn_gemm_bufs *)calloc(1, sizeof *t);
        if (t == NULL)
            return -1;
        if (cnn_bufs_set(t) != 0) {
            free(t);
            return -1;
        }
    }
    if (cnn_gemm_grow(&t->a, &t->bytes_a, bytes_a) != 0 || cnn_gemm_grow(&t->b, &t->bytes_b, bytes_b) != 0)
        return -1;
    *pa = t->a;
    *pb = t->b;
    return 0;
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

/* -1: choose packed or unpacked by problem shape; 0/1: force (tests cover both on every shape). */
static int cnn_gemm_sup_mode = -1;

void cnn_gemm_set_unpacked(int mode)
{
    cnn_gemm_sup_mode = mode < 0 ? -1 : mode > 0;
}

/* ---- threading ----------------------------------------------------------------------------------- */

/* Team size source, installed by cnn_gemm_init: serial until then. */
static int cnn_gemm_serial_team(ptrdiff_t work)
{
    (void)work;
    return 1;
}

static cnn_team_size_fn cnn_gemm_team_size = cnn_gemm_serial_team;

int cnn_gemm_init(cnn_team_size_fn team_size)
{
    static int done = 0;
    if (!done && cnn_bufs_key_create() != 0)
        return -1;
    done = 1;
    cnn_gemm_team_size = team_size;
    return 0;
}

/* Choose a tm x tn grid of C rectangles, one per thread, or 1 x 1 to stay serial: serial for small
 * problems and inside an enclosing parallel region (the team size source gives 1 there: no nested teams,
 * no oversubscription). The grid minimizes one thread's cost: its MACs / 16 (a vector FMA does ~16 per
 * cycle) plus its packing work. */
static void cnn_gemm_thread_grid(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int mr, int nr, int *tm, int *tn)
{
    *tm = *tn = 1;
    const double work = (double)m * (double)n * (double)k / CNN_GEMM_MIN_WORK_PER_THREAD;
    const int nt = cnn_gemm_team_size(work < CNN_MAX_NUM_THREADS ? (ptrdiff_t)work : CNN_MAX_NUM_THREADS);
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

/* "Unpacked" micro-kernels for problems too small to repay packing: A is read in place through its
 * strides (6 row streams) and B's rows, which must be contiguous, are loaded directly (masked at the
 * right edge), so no buffer is filled. Rows past mr repeat row mr - 1 and are computed but not stored.
 * The whole depth k is done in one pass, so C is read and written once. */

__attribute__((target("avx2,fma")))
static void s_sup_avx2(ptrdiff_t k, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,
                       ptrdiff_t rsb, float *c, ptrdiff_t ldc, float alpha, float beta,
                       ptrdiff_t mr, ptrdiff_t nr)
{
    const float *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;
    const float *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa;
    const float *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr - 8), lane);
#define S_SUP_STEP(B0, B1)                                                                            \
    do {                                                                                              \
        const __m256 b0 = (B0), b1 = (B1);                                                            \
        __m256 ai;                                                                                    \
        ai = _mm256_broadcast_ss(a0 + pa); c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01); \
        ai = _mm256_broadcast_ss(a1 + pa); c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11); \
        ai = _mm256_broadcast_ss(a2 + pa); c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21); \
        ai = _mm256_broadcast_ss(a3 + pa); c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31); \
        ai = _mm256_broadcast_ss(a4 + pa); c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41); \
        ai = _mm256_broadcast_ss(a5 + pa); c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51); \
    } while (0)
    ptrdiff_t pa = 0;
    const float *bp = b;
    if (nr == 16) {
        for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb)
            S_SUP_STEP(_mm256_loadu_ps(bp), _mm256_loadu_ps(bp + 8));
    } else {
        for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb)
            S_SUP_STEP(_mm256_maskload_ps(bp, m0), _mm256_maskload_ps(bp + 8, m1));
    }
#undef S_SUP_STEP
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (mr == 6 && nr == 16) {
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
        return;
    }
    /* Edge tile: masked stores (masked-off lanes are not touched), rows past mr skipped. */
#define S_MSTORE(row, x0, x1)                                                                         \
    do {                                                                                              \
        float *cr = c + (row) * ldc;                                                                  \
        if ((row) >= mr)                                                                              \
            break;                                                                                    \
        if (beta == 0) {                                                                              \
            _mm256_maskstore_ps(cr, m0, _mm256_mul_ps(va, x0));                                       \
            _mm256_maskstore_ps(cr + 8, m1, _mm256_mul_ps(va, x1));                                   \
        } else {                                                                                      \
            _mm256_maskstore_ps(cr, m0, _mm256_fmadd_ps(va, x0, _mm256_mul_ps(vb, _mm256_maskload_ps(cr, m0)))); \
            _mm256_maskstore_ps(cr + 8, m1,                                                           \
                                _mm256_fmadd_ps(va, x1, _mm256_mul_ps(vb, _mm256_maskload_ps(cr + 8, m1)))); \
        }                                                                                             \
    } while (0)
    S_MSTORE(0, c00, c01); S_MSTORE(1, c10, c11); S_MSTORE(2, c20, c21);
    S_MSTORE(3, c30, c31); S_MSTORE(4, c40, c41); S_MSTORE(5, c50, c51);
#undef S_MSTORE
}

__attribute__((target("avx2,fma")))
static void d_sup_avx2(ptrdiff_t k, const double *a, ptrdiff_t rsa, ptrdiff_t csa, const double *b,
                       ptrdiff_t rsb, double *c, ptrdiff_t ldc, double alpha, double beta,
                       ptrdiff_t mr, ptrdiff_t nr)
{
    const double *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;
    const double *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa;
    const double *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa;
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i m0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nr - 4), lane);
#define D_SUP_STEP(B0, B1)                                                                            \
    do {                                                                                              \
        const __m256d b0 = (B0), b1 = (B1);                                                           \
        __m256d ai;                                                                                   \
        ai = _mm256_broadcast_sd(a0 + pa); c00 = _mm256_fmadd_pd(ai, b0, c00); c01 = _mm256_fmadd_pd(ai, b1, c01); \
        ai = _mm256_broadcast_sd(a1 + pa); c10 = _mm256_fmadd_pd(ai, b0, c10); c11 = _mm256_fmadd_pd(ai, b1, c11); \
        ai = _mm256_broadcast_sd(a2 + pa); c20 = _mm256_fmadd_pd(ai, b0, c20); c21 = _mm256_fmadd_pd(ai, b1, c21); \
        ai = _mm256_broadcast_sd(a3 + pa); c30 = _mm256_fmadd_pd(ai, b0, c30); c31 = _mm256_fmadd_pd(ai, b1, c31); \
        ai = _mm256_broadcast_sd(a4 + pa); c40 = _mm256_fmadd_pd(ai, b0, c40); c41 = _mm256_fmadd_pd(ai, b1, c41); \
        ai = _mm256_broadcast_sd(a5 + pa); c50 = _mm256_fmadd_pd(ai, b0, c50); c51 = _mm256_fmadd_pd(ai, b1, c51); \
    } while (0)
    ptrdiff_t pa = 0;
    const double *bp = b;
    if (nr == 8) {
        for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb)
            D_SUP_STEP(_mm256_loadu_pd(bp), _mm256_loadu_pd(bp + 4));
    } else {
        for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb)
            D_SUP_STEP(_mm256_maskload_pd(bp, m0), _mm256_maskload_pd(bp + 4, m1));
    }
#undef D_SUP_STEP
    const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
    if (mr == 6 && nr == 8) {
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
        return;
    }
#define D_MSTORE(row, x0, x1)                                                                         \
    do {                                                                                              \
        double *cr = c + (row) * ldc;                                                                 \
        if ((row) >= mr)                                                                              \
            break;                                                                                    \
        if (beta == 0) {                                                                              \
            _mm256_maskstore_pd(cr, m0, _mm256_mul_pd(va, x0));                                       \
            _mm256_maskstore_pd(cr + 4, m1, _mm256_mul_pd(va, x1));                                   \
        } else {                                                                                      \
            _mm256_maskstore_pd(cr, m0, _mm256_fmadd_pd(va, x0, _mm256_mul_pd(vb, _mm256_maskload_pd(cr, m0)))); \
            _mm256_maskstore_pd(cr + 4, m1,                                                           \
                                _mm256_fmadd_pd(va, x1, _mm256_mul_pd(vb, _mm256_maskload_pd(cr + 4, m1)))); \
        }                                                                                             \
    } while (0)
    D_MSTORE(0, c00, c01); D_MSTORE(1, c10, c11); D_MSTORE(2, c20, c21);
    D_MSTORE(3, c30, c31); D_MSTORE(4, c40, c41); D_MSTORE(5, c50, c51);
#undef D_MSTORE
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
#define SUP_KERNEL s_sup_avx2
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
#undef SUP_KERNEL

#define T double
#define G(name) d_##name
#define MR 6
#define NR 8
#define MC 96
#define KC 256
#define NC 2048
#if CNN_GEMM_X86
#define SIMD_KERNEL d_kernel_avx2
#define SUP_KERNEL d_sup_avx2
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
#undef SUP_KERNEL

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
