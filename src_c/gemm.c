/* Dense GEMM for cnn_core: cache-blocked Goto/BLIS loop nest with packed panels (gemm_template.h),
 * register-blocked micro-kernels and blocking taken from the table of the instruction-set level in use
 * (cpu.h: AVX-512 in gemm_avx512.c, AVX2+FMA here, or portable C) and an OpenMP team sharing the packed
 * panels when the problem is big enough to pay for the threads. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE   /* sched_getcpu */
#endif
#include "gemm.h"
#include "gemm_cntx.h"
#include "thresholds.h"

#include <stdatomic.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if CNN_CORE_OPENMP
#include <omp.h>
#endif

#if defined(_WIN32)
#include <windows.h>
#else
#include <pthread.h>
#endif

#if CNN_X86
#include "avx2.h"
#endif

#if defined(_MSC_VER)
#define CNN_ALIGN64 __declspec(align(64))
#else
#define CNN_ALIGN64 __attribute__((aligned(64)))
#endif

/* Bytes of A the unpacked path keeps in L2 while B streams past. */
#define CNN_GEMM_SUP_A_BYTES (256 * 1024)
/* Bytes of packed A up to which the serial nest packs all of A's rows for a depth block once for every
 * column block (gemm_template.h's gemm_serial): 2048 rows x KC = 256 doubles is 4 MiB. */
#define CNN_GEMM_A_SLICE_BYTES (8 << 20)
/* Depth steps the packing routine copies side by side (gemm_template.h's pack_w): 8 beat 1, 4 and 16 by
 * 2-17% on im2col products, the same at square sizes (Zen 4, float32 and float64). */
#define CNN_GEMM_PACK_STEPS 8

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

/* ---- threading ----------------------------------------------------------------------------------- */

/* Team size and level sources, installed by cnn_gemm_init: serial and portable until then. */
static int cnn_gemm_serial_team(ptrdiff_t work)
{
    (void)work;
    return 1;
}

static int cnn_gemm_baseline(void)
{
    return CNN_SIMD_BASELINE;
}

static cnn_team_size_fn cnn_gemm_team_size = cnn_gemm_serial_team;
static cnn_simd_level_fn cnn_gemm_level = cnn_gemm_baseline;
/* The small products' team (threads.h's pool), installed by cnn_gemm_set_pool; NULL: OpenMP teams. */
static cnn_pool_run_fn cnn_gemm_pool = NULL;

void cnn_gemm_set_pool(cnn_pool_run_fn pool)
{
    cnn_gemm_pool = pool;
}

/* threads.h's cnn_threads_team_start, called by every thread of an OpenMP team as its share starts (the
 * pool calls it itself): keeps the members off the leader's CPU on an otherwise idle machine. Installed by
 * cnn_gemm_set_team_start; NULL: the scheduler places them. */
static cnn_team_start_fn cnn_gemm_team_start = NULL;

void cnn_gemm_set_team_start(cnn_team_start_fn team_start)
{
    cnn_gemm_team_start = team_start;
}

/* At the start of thread t's share of an OpenMP team. */
static void cnn_gemm_share_start(int t)
{
    if (cnn_gemm_team_start != NULL)
        cnn_gemm_team_start(t);
}

/* threads.h's cnn_team_barrier, where the shared-panel driver's team waits between its steps (installed by
 * cnn_gemm_set_barrier; NULL: OpenMP's barrier). OpenMP's barrier spins GOMP_SPINCOUNT pauses (cnn_core
 * sets 1000, ~50 us, for busy machines) and then sleeps, and a leader asleep there is woken on its
 * member's CPU, so the next call re-steers the masks, and until then both threads share one CPU (on the
 * 2-vCPU EPYC, 128x576x3136 on 2 threads ran whole blocks of calls at one thread's speed, 4.3-5.0 ms
 * against 2.5 ms). threads.c's wait yields instead while the process is alone on its cores. Measured on
 * a 2-vCPU Xeon (AVX-512), 8 blocks of 12-22 calls after 0.2 s pauses, load 0.3: mask changes 9-36 -> 2-5
 * (128x576x3136 float32) and 18 -> 4-8 (512^3 float64), block medians 2540-2732 -> 2322-2526 us and
 * 2586-2698 -> 2387-2550 us. (Measured while these products still took the shared panels; they now take
 * the static split, CNN_GEMM_STATIC_MAX_WORK, and the shared panels run products above 2048^3.) */
static cnn_team_barrier_fn cnn_gemm_team_barrier = NULL;

void cnn_gemm_set_barrier(cnn_team_barrier_fn barrier)
{
    cnn_gemm_team_barrier = barrier;
}

#if CNN_CORE_OPENMP
/* The next barrier of a team of nthr threads on count c; *passed: the barriers this thread has passed. */
static void cnn_gemm_barrier(cnn_team_count *c, int *passed, int nthr)
{
    if (cnn_gemm_team_barrier != NULL) {
        cnn_gemm_team_barrier(c, ++*passed * nthr);
    } else {
        #pragma omp barrier
    }
}
#endif

/* Run job(arg, t) for t = 0..nt-1: on the pool when there is one and it takes the job, else on an OpenMP
 * team (or serially in a build without OpenMP). The shares never depend on which runs them. */
static void cnn_gemm_run_team(cnn_pool_job job, void *arg, int nt)
{
    if (nt > 1 && cnn_gemm_pool != NULL && cnn_gemm_pool(job, arg, nt) == 0)
        return;
#if CNN_CORE_OPENMP
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int t = 0; t < nt; ++t) {
        if (nt > 1)
            cnn_gemm_share_start(t);
        job(arg, t);
    }
}

/* An Intel CPU (the AVX-512 level's blocking: gemm_avx512_intel), read once at import by cnn_gemm_init. */
static int cnn_gemm_intel = 0;

/* One core's L2 cache in bytes, read once at import (glibc's sysconf, from CPUID); 0 where unknown. */
static ptrdiff_t cnn_gemm_l2_bytes = 0;

/* NC for a depth block of kc elements of `size` bytes: the level's NC, capped so that the packed kc x nc block
 * of B fills at most half of one core's L2. The macro-kernel runs each MR-row panel of A across the whole
 * block (ir outside jr), so the block is read once per panel: it must stay in L2. With NC from the table
 * (4096 floats, 2048 doubles: 4 MiB at KC = 256, tuned on a Zen 4 core, whose L3 kept up) the block spilled
 * out of the 2 MiB L2 of an Intel Xeon with AVX-512 (a model 0xA7 VM) and the large products fell behind:
 * one thread, ratio to numpy.matmul (OpenBLAS SkylakeX), table NC / capped (1024 floats, 512 doubles):
 * 2048^3 float32 1.14-1.20 / 0.95-0.97, float64 1.18-1.44 / 0.99-1.01, 1024^3 float64 1.11-1.18 /
 * 0.94-0.95, 512^3 and below unchanged. NC only splits C's columns: results do not depend on it. */
static ptrdiff_t cnn_gemm_nc(const cnn_gemm_blksz *bs, ptrdiff_t kc, size_t size)
{
    if (cnn_gemm_l2_bytes <= 0)
        return bs->nc;
    const ptrdiff_t cap = cnn_gemm_l2_bytes / 2 / (kc * (ptrdiff_t)size) / bs->nr * bs->nr;
    return cap >= bs->nc ? bs->nc : cap > bs->nr ? cap : bs->nr;
}

int cnn_gemm_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level)
{
    static int done = 0;
    if (!done && cnn_bufs_key_create() != 0)
        return -1;
    done = 1;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    cnn_gemm_l2_bytes = l2 > 0 ? (ptrdiff_t)l2 : 0;
#endif
    cnn_gemm_team_size = team_size;
    cnn_gemm_level = simd_level;
#if CNN_X86
    __builtin_cpu_init();
    cnn_gemm_intel = __builtin_cpu_is("intel");
#endif
    return 0;
}

/* -1: choose packed or unpacked by problem shape; 0/1: force (tests cover both on every shape). */
static int cnn_gemm_sup_mode = -1;

void cnn_gemm_set_unpacked(int mode)
{
    cnn_gemm_sup_mode = mode < 0 ? -1 : mode > 0;
}

/* -1: the parallel packed driver by problem size; 0: always the shared panels (gemm_parallel); 1: always
 * the static partition (gemm_static). Tests force both on every shape. */
static int cnn_gemm_partition_mode = -1;

void cnn_gemm_set_partition(int mode)
{
    cnn_gemm_partition_mode = mode < 0 ? -1 : mode > 0;
}

static int cnn_gemm_use_static(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    if (cnn_gemm_partition_mode >= 0)
        return cnn_gemm_partition_mode;
    return (double)m * (double)n * (double)k <= (double)CNN_GEMM_STATIC_MAX_WORK;
}

static int cnn_gemm_is_small(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return (double)m * (double)n * (double)k <= (double)CNN_GEMM_SMALL_MAX_WORK;
}

/* The team for an m x n x k product: one thread per CNN_GEMM_MIN_WORK_PER_THREAD multiply-adds, capped
 * by the process-wide count (and 1 inside an enclosing parallel region: no nested teams). */
static int cnn_gemm_team(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    const double work = (double)m * (double)n * (double)k / CNN_GEMM_MIN_WORK_PER_THREAD;
    return cnn_gemm_team_size(work < CNN_MAX_NUM_THREADS ? (ptrdiff_t)work : CNN_MAX_NUM_THREADS);
}

/* Teams that share one core. When other processes hold the other cores, the scheduler may start every
 * thread of a team on one core: the shares then run one after the other, with a wake-up, time slices and
 * the finished threads' spin at the closing barrier in between. Traced on the 2-vCPU EPYC under the other
 * helpers' compiler load (omp_get_wtime and sched_getcpu per thread of gemm_static): 128^3 on 2 threads on
 * one CPU took 104 us (thread 1 ran 28-52 us, thread 0 78-102 us) against 41 us on one thread, and MLP
 * fc1's 64x100x784 201 us on one CPU against 102 us on two and ~100 us on one thread. So every parallel
 * product of the static split or the unpacked path notes the CPU each thread starts on; when all started
 * on one, the next CNN_GEMM_SHARED_CORE_BACKOFF small products (CNN_GEMM_SMALL_MAX_WORK) run on the
 * calling thread, then a team is tried again. (On an otherwise idle machine the members are kept off the
 * leader's CPU, cnn_threads_team_start, and once the load shows other processes' tasks no team starts,
 * cnn_threads_team: the back-off covers the load that appears between two looks, and the one the look
 * cannot see.)
 * Results never depend on the thread count: only the time changes. Linux only (sched_getcpu); elsewhere
 * every team counts as spread. */
static atomic_int cnn_gemm_backoff = 0;

static int cnn_gemm_cpu(void)
{
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* After a small product's team: back off when every thread (cpus[0..nt)) started on one CPU. */
static void cnn_gemm_note_cpus(const int *cpus, int nt)
{
    for (int t = 0; t < nt; ++t)
        if (cpus[t] < 0 || cpus[t] != cpus[0])
            return;
    atomic_store_explicit(&cnn_gemm_backoff, CNN_GEMM_SHARED_CORE_BACKOFF, memory_order_relaxed);
}

/* The team for a small product: nt, or 1 while backing off after a team that shared one core. A path
 * forced for the tests (set_partition, set_unpacked) keeps its team, so that they exercise it. */
static int cnn_gemm_small_team(int nt)
{
    if (nt <= 1 || cnn_gemm_partition_mode >= 0 || cnn_gemm_sup_mode >= 0
            || atomic_load_explicit(&cnn_gemm_backoff, memory_order_relaxed) <= 0)
        return nt;
    atomic_fetch_sub_explicit(&cnn_gemm_backoff, 1, memory_order_relaxed);
    return 1;
}

void cnn_gemm_reset_backoff(void)
{
    atomic_store(&cnn_gemm_backoff, 0);
}

int cnn_gemm_backoff_left(void)
{
    return atomic_load(&cnn_gemm_backoff);
}

/* ---- AVX2+FMA micro-kernels, one definition for both dtypes ----------------------------------------
 *
 * Instantiated by AVX2_KERNELS(T, V, W, SFX, BC, LANES): T the s/d prefix, V the element type, W its
 * 256-bit vector type, SFX the intrinsics' ps/pd suffix, BC the broadcast's ss/sd suffix, LANES elements
 * per vector. The micro-tile is 6 x 2*LANES (6 x 16 floats, 6 x 8 doubles): 12 accumulators c<i><j> hold
 * row i, vector j of the tile, plus 2 registers for the B row and 1 for the broadcast of A: 15 of 16 ymm. */

#if CNN_X86

#define AVX2_ZERO_ACC(W, SFX)                                                                             \
    W c00 = _mm256_setzero_##SFX(), c01 = _mm256_setzero_##SFX();                                         \
    W c10 = _mm256_setzero_##SFX(), c11 = _mm256_setzero_##SFX();                                         \
    W c20 = _mm256_setzero_##SFX(), c21 = _mm256_setzero_##SFX();                                         \
    W c30 = _mm256_setzero_##SFX(), c31 = _mm256_setzero_##SFX();                                         \
    W c40 = _mm256_setzero_##SFX(), c41 = _mm256_setzero_##SFX();                                         \
    W c50 = _mm256_setzero_##SFX(), c51 = _mm256_setzero_##SFX()

/* One depth step: the accumulators += A column (6 values at A0..A5) x the B row (b0, b1). */
#define AVX2_RANK1(W, SFX, BC, A0, A1, A2, A3, A4, A5)                                                    \
    do {                                                                                                  \
        W ai;                                                                                             \
        ai = _mm256_broadcast_##BC(A0); c00 = _mm256_fmadd_##SFX(ai, b0, c00); c01 = _mm256_fmadd_##SFX(ai, b1, c01); \
        ai = _mm256_broadcast_##BC(A1); c10 = _mm256_fmadd_##SFX(ai, b0, c10); c11 = _mm256_fmadd_##SFX(ai, b1, c11); \
        ai = _mm256_broadcast_##BC(A2); c20 = _mm256_fmadd_##SFX(ai, b0, c20); c21 = _mm256_fmadd_##SFX(ai, b1, c21); \
        ai = _mm256_broadcast_##BC(A3); c30 = _mm256_fmadd_##SFX(ai, b0, c30); c31 = _mm256_fmadd_##SFX(ai, b1, c31); \
        ai = _mm256_broadcast_##BC(A4); c40 = _mm256_fmadd_##SFX(ai, b0, c40); c41 = _mm256_fmadd_##SFX(ai, b1, c41); \
        ai = _mm256_broadcast_##BC(A5); c50 = _mm256_fmadd_##SFX(ai, b0, c50); c51 = _mm256_fmadd_##SFX(ai, b1, c51); \
    } while (0)

/* The epilogues: row `row` of C = alpha * (x0 | x1) + beta * C; with beta == 0, C is never read.
 * AVX2_STORE writes a full row; AVX2_MSTORE the first nr columns (masks m0, m1) of rows below mr. */
#define AVX2_STORE(V, SFX, LANES, row, x0, x1)                                                            \
    do {                                                                                                  \
        V *cr = c + (row) * ldc;                                                                          \
        if (beta == 0) {                                                                                  \
            _mm256_storeu_##SFX(cr, _mm256_mul_##SFX(va, x0));                                            \
            _mm256_storeu_##SFX(cr + LANES, _mm256_mul_##SFX(va, x1));                                    \
        } else {                                                                                          \
            _mm256_storeu_##SFX(cr, _mm256_fmadd_##SFX(va, x0, _mm256_mul_##SFX(vb, _mm256_loadu_##SFX(cr)))); \
            _mm256_storeu_##SFX(cr + LANES,                                                               \
                                _mm256_fmadd_##SFX(va, x1, _mm256_mul_##SFX(vb, _mm256_loadu_##SFX(cr + LANES)))); \
        }                                                                                                 \
    } while (0)

#define AVX2_MSTORE(V, SFX, LANES, row, x0, x1)                                                           \
    do {                                                                                                  \
        V *cr = c + (row) * ldc;                                                                          \
        if ((row) >= mr)                                                                                  \
            break;                                                                                        \
        if (beta == 0) {                                                                                  \
            _mm256_maskstore_##SFX(cr, m0, _mm256_mul_##SFX(va, x0));                                     \
            _mm256_maskstore_##SFX(cr + LANES, m1, _mm256_mul_##SFX(va, x1));                             \
        } else {                                                                                          \
            _mm256_maskstore_##SFX(cr, m0,                                                                \
                                   _mm256_fmadd_##SFX(va, x0, _mm256_mul_##SFX(vb, _mm256_maskload_##SFX(cr, m0)))); \
            _mm256_maskstore_##SFX(cr + LANES, m1,                                                        \
                                   _mm256_fmadd_##SFX(va, x1,                                             \
                                                      _mm256_mul_##SFX(vb, _mm256_maskload_##SFX(cr + LANES, m1)))); \
        }                                                                                                 \
    } while (0)

#define AVX2_EPILOGUE(STORE, V, SFX, LANES)                                                               \
    STORE(V, SFX, LANES, 0, c00, c01); STORE(V, SFX, LANES, 1, c10, c11);                                 \
    STORE(V, SFX, LANES, 2, c20, c21); STORE(V, SFX, LANES, 3, c30, c31);                                 \
    STORE(V, SFX, LANES, 4, c40, c41); STORE(V, SFX, LANES, 5, c50, c51)

#define AVX2_KERNELS(T, V, W, SFX, BC, LANES)                                                             \
    /* Packed: A panel 6 values per depth step, B panel 2*LANES values per step. */                      \
    CNN_AVX2 static void T##_kernel_avx2(ptrdiff_t k, const V *a, const V *b, V *c, ptrdiff_t ldc,       \
                                         V alpha, V beta)                                                 \
    {                                                                                                     \
        AVX2_ZERO_ACC(W, SFX);                                                                            \
        for (int i = 0; i < 6; ++i)                                                                       \
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                                       \
        for (ptrdiff_t p = 0; p < k; ++p) {                                                               \
            const W b0 = _mm256_loadu_##SFX(b), b1 = _mm256_loadu_##SFX(b + LANES);                       \
            AVX2_RANK1(W, SFX, BC, a + 0, a + 1, a + 2, a + 3, a + 4, a + 5);                             \
            a += 6;                                                                                       \
            b += 2 * LANES;                                                                               \
        }                                                                                                 \
        const W va = _mm256_set1_##SFX(alpha), vb = _mm256_set1_##SFX(beta);                              \
        AVX2_EPILOGUE(AVX2_STORE, V, SFX, LANES);                                                         \
    }                                                                                                     \
                                                                                                          \
    /* Unpacked, for problems too small to repay packing: A read in place through its strides (6 row     \
     * streams; rows past mr repeat row mr - 1, computed but not stored), B's contiguous rows loaded      \
     * directly (masked past nr), the whole depth in one pass, so C is read and written once. Full-width  \
     * tiles prefetch the B sliver two slivers to the right, as the AVX-512 kernel does (its comment says \
     * why): avx2 level forced on the Xeon, one thread, best of 7 blocks, (16 x 150) @ (150 x 6400)       \
     * float32 690-764 -> 546-596 us, float64 1586-1874 -> 1330-1468 us; (6 x 25) @ (25 x 50176) and      \
     * (64 x 100) @ (100 x 784) within noise. */                                                          \
    CNN_AVX2 static void T##_sup_avx2(ptrdiff_t k, const V *a, ptrdiff_t rsa, ptrdiff_t csa, const V *b, \
                                      ptrdiff_t rsb, V *c, ptrdiff_t ldc, V alpha, V beta, ptrdiff_t mr,  \
                                      ptrdiff_t nr)                                                       \
    {                                                                                                     \
        const V *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;         \
        const V *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa;             \
        const V *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa;                                                    \
        AVX2_ZERO_ACC(W, SFX);                                                                            \
        const __m256i m0 = cnn_lanes_##SFX(nr), m1 = cnn_lanes_##SFX(nr - LANES);                         \
        ptrdiff_t pa = 0;                                                                                 \
        const V *bp = b;                                                                                  \
        if (nr == 2 * LANES) {                                                                            \
            for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb) {                                     \
                const W b0 = _mm256_loadu_##SFX(bp), b1 = _mm256_loadu_##SFX(bp + LANES);                 \
                _mm_prefetch((const char *)(bp + 4 * LANES), _MM_HINT_T0);                                \
                AVX2_RANK1(W, SFX, BC, a0 + pa, a1 + pa, a2 + pa, a3 + pa, a4 + pa, a5 + pa);             \
            }                                                                                             \
        } else {                                                                                          \
            for (ptrdiff_t p = 0; p < k; ++p, pa += csa, bp += rsb) {                                     \
                const W b0 = _mm256_maskload_##SFX(bp, m0), b1 = _mm256_maskload_##SFX(bp + LANES, m1);   \
                AVX2_RANK1(W, SFX, BC, a0 + pa, a1 + pa, a2 + pa, a3 + pa, a4 + pa, a5 + pa);             \
            }                                                                                             \
        }                                                                                                 \
        const W va = _mm256_set1_##SFX(alpha), vb = _mm256_set1_##SFX(beta);                              \
        if (mr == 6 && nr == 2 * LANES) {                                                                 \
            AVX2_EPILOGUE(AVX2_STORE, V, SFX, LANES);                                                     \
            return;                                                                                       \
        }                                                                                                 \
        /* Edge tile: masked stores (masked-off lanes are not touched), rows past mr skipped. */          \
        AVX2_EPILOGUE(AVX2_MSTORE, V, SFX, LANES);                                                        \
    }

AVX2_KERNELS(s, float, __m256, ps, ss, 8)
AVX2_KERNELS(d, double, __m256d, pd, sd, 4)

/* ---- packing of contiguous lines (gemm_cntx.h's packt): a transpose in LANES x LANES register blocks --
 *
 * A row-major A (its rows are the panel's lines) and the B of x @ w.T (w's rows) are packed step-major,
 * dst[p*W + i] = x[i*ls + p]: element by element that is a load and a store per value, ~30 us of the
 * 64 x 100 x 784 product x @ w.T (162 us, float32, Zen 4). Here each block of LANES lines x LANES steps is
 * loaded as LANES row vectors, transposed in registers (unpack/shuffle/permute) and stored as LANES step
 * vectors; lines past w load as zeros (the panel's padding), the last group of a width W that is not a
 * multiple of LANES (MR = 6 or 14) is stored masked, and steps past the last whole block one by one. A copy:
 * the packed values, and so every result, are the element-by-element loop's. */

#define AVX2_PACKT(T, V, W_, SFX, LANES, TRANSPOSE)                                                       \
    CNN_AVX2 static void T##_packt_avx2(int W, ptrdiff_t w, ptrdiff_t kc, const V *x, ptrdiff_t ls,      \
                                        V *dst)                                                           \
    {                                                                                                     \
        const ptrdiff_t kv = kc / LANES * LANES;                                                          \
        for (ptrdiff_t p = 0; p < kv; p += LANES) {                                                       \
            for (int i0 = 0; i0 < W; i0 += LANES) {                                                       \
                W_ r[LANES];                                                                              \
                for (int i = 0; i < LANES; ++i)                                                           \
                    r[i] = i0 + i < w ? _mm256_loadu_##SFX(x + (i0 + i) * ls + p) : _mm256_setzero_##SFX(); \
                TRANSPOSE(r);                                                                             \
                V *d = dst + p * W + i0;                                                                  \
                if (W - i0 >= LANES) {                                                                    \
                    for (int q = 0; q < LANES; ++q)                                                       \
                        _mm256_storeu_##SFX(d + q * W, r[q]);                                             \
                } else {                                                                                  \
                    const __m256i mask = cnn_lanes_##SFX(W - i0);                                         \
                    for (int q = 0; q < LANES; ++q)                                                       \
                        _mm256_maskstore_##SFX(d + q * W, mask, r[q]);                                    \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        for (ptrdiff_t p = kv; p < kc; ++p)                                                               \
            for (int i = 0; i < W; ++i)                                                                   \
                dst[p * W + i] = i < w ? x[i * ls + p] : 0;                                               \
    }

AVX2_PACKT(s, float, __m256, ps, 8, cnn_transpose8_ps)
AVX2_PACKT(d, double, __m256d, pd, 4, cnn_transpose4_pd)

#endif /* CNN_X86 */

/* ---- float and double instantiations of the blocked driver ---------------------------------------- */

#define T float
#define G(name) s_##name
#define C_MR 6
#define C_NR 16
/* How gemm_template.h's gemm_nest reads a batch (gemm.h's cnn_?gemm_batch, cnn_?gemm_nt_batch): C's and
 * B's columns in runs of w, run s at B + s*sb and C + s*sc (w = n: one run); the depth in runs of kw, run r
 * at A + r*sa and B + r*sbk (kw = 0: op(A) and op(B) through their strides). */
typedef struct {
    ptrdiff_t w, sb, sc;
    ptrdiff_t kw, sa, sbk;
} cnn_gemm_runs;

#include "gemm_template.h"

#define T double
#define G(name) d_##name
#define C_MR 6
#define C_NR 8
#include "gemm_template.h"

/* ---- the kernels and blocking of each instruction-set level ----------------------------------------
 *
 * Block sizes are data, one line per dtype and level (BLIS's blocksizes): MR x NR the micro-tile, MC x KC
 * the block of A kept in L2, KC x NC the block of B (NC capped at run time to half of the core's L2,
 * cnn_gemm_nc), then the unpacked kernel's tile and when
 * it is used (use_sup in gemm_template.h). The AVX-512 figures were tuned on a Zen 4 core (32 KiB L1d,
 * 1 MiB L2, 3.7 GHz), timing KC in 128..320, MC in 140..420 and NC in 512..4096 at square sizes 256..2048
 * and on im2col products: KC = 256 beat 128 by 5-8% at 1024 and 2048, MC and NC moved results by < 3%. */

/*                   MR  NR   MC   KC    NC  supMR supNR supKmax supRatio (one thread, team) */
#define S_BLK_AVX2   {6, 16, 144, 256, 4096,    6,   16,    256,     160, 160}
#define D_BLK_AVX2   {6,  8,  96, 256, 2048,    6,    8,    256,      80,  80}
#define S_BLK_AVX512 {CNN_AVX512_S_MR, CNN_AVX512_S_NR, 280, 256, 4096, CNN_AVX512_SUP_MR, 32, 256, 128, 128}
#define D_BLK_AVX512 {CNN_AVX512_D_MR, CNN_AVX512_D_NR, 280, 256, 2048, CNN_AVX512_SUP_MR, 16, 256, 96, 96}
/* Intel cores with AVX-512 (BLIS keeps skx apart from zen4 the same way): the same kernels and cache
 * blocks, a smaller unpacked region, and a larger one for teams, whose threads each pack all of the
 * operand they share (the static split). Measured on the Xeon VM (model 0xA7, 2 MiB L2), best of 7 blocks,
 * packed / unpacked us: one thread, float32 128^3 22.7 / 21.8, 192^3 70 / 86, 256^3 162 / 209 (numpy.matmul
 * 186: the Zen 4 table's unpacked 256^3 was 1.12x OpenBLAS here), (100 x 64) @ (64 x 784) 52.8 / 57.1;
 * float64 96^3 19.9 / 19.9, 128^3 46 / 55, 192^3 147 / 184; two threads, float32 128^3 17.0 / 14.1, 192^3
 * 37.4 / 34.8, 256^3 95 / 103; float64 128^3 28.3 / 22.8, 192^3 93 / 104. At this level the unpacked and
 * packed kernels give the same bits for k <= KC (tests/test_gemm.py checks it). */
#define S_BLK_AVX512_INTEL {CNN_AVX512_S_MR, CNN_AVX512_S_NR, 280, 256, 4096, CNN_AVX512_SUP_MR, 32, 256, 64, 96}
#define D_BLK_AVX512_INTEL {CNN_AVX512_D_MR, CNN_AVX512_D_NR, 280, 256, 2048, CNN_AVX512_SUP_MR, 16, 256, 48, 72}
/* The AVX-512 sup ratios, measured on the Zen 4 core with the AVX-512 unpacked kernel (one thread, best of 15
 * blocks, us, unpacked vs packed): float32 256^3 291 vs 319, 192^3 123 vs 139, (128 x 128) @ (128 x 3136)
 * 1354 vs 1370, (300 x 128) @ (128 x 300) 218 vs 220, LeNet conv2 dcols (150 x 16) @ (16 x 6400) 341 vs 322
 * (stays packed); float64 128^3 74 vs 82, 192^3 247 vs 264, 256^3 588 vs 620 (stays packed at 96, the
 * lesser gain), (128 x 128) @ (128 x 3136) 3787 vs 2894 (B's 25 KB rows: its slivers stream badly). */

#define BASELINE_CNTX {s_kernel_c, d_kernel_c, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, S_BLK_AVX2, \
                       D_BLK_AVX2}
#define AVX512_KERNELS_CNTX cnn_s_ukr_avx512, cnn_d_ukr_avx512, cnn_s_edge_avx512, cnn_d_edge_avx512, \
                            cnn_s_sup_avx512, cnn_d_sup_avx512, NULL, NULL, s_packt_avx2, d_packt_avx2
static const cnn_gemm_cntx cnn_gemm_table[CNN_SIMD_NLEVELS] = {
    [CNN_SIMD_BASELINE] = BASELINE_CNTX,
#if CNN_X86
    [CNN_SIMD_AVX2] = {s_kernel_avx2, d_kernel_avx2, NULL, NULL, s_sup_avx2, d_sup_avx2, cnn_s_nt_avx2,
                       cnn_d_nt_avx2, s_packt_avx2, d_packt_avx2, S_BLK_AVX2, D_BLK_AVX2},
    /* packed and unpacked GEMM in AVX-512; no NT kernel: A @ B^T takes the GEMM, which beat the AVX2 NT
     * kernel on every weight-gradient shape measured here (one thread, float32 / float64, NT / GEMM us:
     * (128x128x392) 171 / 88, 205 / 155; (64x32x64) 10.2 / 2.8, 12.6 / 5.3; (128x576x196) 417 / 185,
     * 662 / 380; LeNet-5's (16x150x800) 44.5 / 45.5, 85 / 89), as did an AVX-512 NT kernel (4 x 6 blocks:
     * 131 us at 128x128x392); the packing transpose is AVX2's */
    [CNN_SIMD_AVX512] = {AVX512_KERNELS_CNTX, S_BLK_AVX512, D_BLK_AVX512},
#else
    [CNN_SIMD_AVX2] = BASELINE_CNTX,
    [CNN_SIMD_AVX512] = BASELINE_CNTX,
#endif
};

#if CNN_X86
static const cnn_gemm_cntx cnn_gemm_avx512_intel = {AVX512_KERNELS_CNTX, S_BLK_AVX512_INTEL, D_BLK_AVX512_INTEL};
#endif
const cnn_gemm_cntx *cnn_gemm_context(void)
{
    const int level = cnn_gemm_level();
#if CNN_X86
    if (level == CNN_SIMD_AVX512 && cnn_gemm_intel)
        return &cnn_gemm_avx512_intel;
#endif
    return &cnn_gemm_table[level >= 0 && level < CNN_SIMD_NLEVELS ? level : CNN_SIMD_BASELINE];
}

void cnn_gemm_blocking(int dtype, ptrdiff_t out[9])
{
    const cnn_gemm_cntx *cx = cnn_gemm_context();
    const cnn_gemm_blksz *bs = dtype ? &cx->d_blk : &cx->s_blk;
    out[0] = bs->mr;
    out[1] = bs->nr;
    out[2] = bs->mc;
    out[3] = bs->kc;
    out[4] = cnn_gemm_nc(bs, bs->kc, dtype ? sizeof(double) : sizeof(float));
    out[5] = cnn_gemm_l2_bytes;
    out[6] = bs->sup_kmax;
    out[7] = bs->sup_ratio;
    out[8] = bs->sup_ratio_team;
}

/* ---- public entry points ------------------------------------------------------------------------- */

int cnn_sgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float *b, ptrdiff_t rsb, ptrdiff_t csb,
                      float beta, float *c, ptrdiff_t ldc)
{
    return s_gemm_strided(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, 0);
}

int cnn_dgemm_strided(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                      const double *a, ptrdiff_t rsa, ptrdiff_t csa,
                      const double *b, ptrdiff_t rsb, ptrdiff_t csb,
                      double beta, double *c, ptrdiff_t ldc)
{
    return d_gemm_strided(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, 0);
}

int cnn_sgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, float alpha,
                    const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta,
                    float *c, ptrdiff_t ldc, ptrdiff_t sc)
{
    return s_gemm_batch(m, w, k, batch, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, ldb, sb, beta, c, ldc,
                        sc);
}

int cnn_dgemm_batch(int trans_a, ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, ptrdiff_t batch, double alpha,
                    const double *a, ptrdiff_t lda, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta,
                    double *c, ptrdiff_t ldc, ptrdiff_t sc)
{
    return d_gemm_batch(m, w, k, batch, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, ldb, sb, beta, c, ldc,
                        sc);
}

int cnn_sgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const float *a, ptrdiff_t lda,
                       ptrdiff_t sa, const float *b, ptrdiff_t ldb, ptrdiff_t sb, float beta, float *c, ptrdiff_t ldc)
{
    return s_gemm_nt_batch(m, n, k, batch, a, lda, sa, b, ldb, sb, beta, c, ldc);
}

int cnn_dgemm_nt_batch(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t batch, const double *a, ptrdiff_t lda,
                       ptrdiff_t sa, const double *b, ptrdiff_t ldb, ptrdiff_t sb, double beta, double *c,
                       ptrdiff_t ldc)
{
    return d_gemm_nt_batch(m, n, k, batch, a, lda, sa, b, ldb, sb, beta, c, ldc);
}

/* Row-major BLAS-style interface: A is M x K (lda) or, transposed, K x M; likewise B. The _row_shares
 * variants split C's rows between a team's threads as threads.h's cnn_row_share does. */
#define ROW_MAJOR_ENTRIES(T, P)                                                                               \
    int cnn_##P##gemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, \
                      ptrdiff_t lda, const T *b, ptrdiff_t ldb, T beta, T *c, ptrdiff_t ldc)                  \
    {                                                                                                         \
        return P##_gemm_strided(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, trans_b ? 1 : ldb, \
                                trans_b ? ldb : 1, beta, c, ldc, 0);                                          \
    }                                                                                                         \
    int cnn_##P##gemm_row_shares(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,    \
                                 const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb, T beta, T *c,          \
                                 ptrdiff_t ldc)                                                               \
    {                                                                                                         \
        return P##_gemm_strided(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, trans_b ? 1 : ldb, \
                                trans_b ? ldb : 1, beta, c, ldc, 1);                                          \
    }

ROW_MAJOR_ENTRIES(float, s)
ROW_MAJOR_ENTRIES(double, d)
