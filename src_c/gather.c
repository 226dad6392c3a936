/* fit's batch gather in pieces (see gather.h). */
#include "gather.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CNN_GATHER_NO_JOB ((uint64_t)UINT32_MAX)   /* the claim word before the first job: no piece */

struct cnn_gather {
    const unsigned char *src[CNN_GATHER_MAX_ARRAYS];
    unsigned char *dst[2][CNN_GATHER_MAX_ARRAYS];
    ptrdiff_t row[CNN_GATHER_MAX_ARRAYS];
    const int64_t *order;
    ptrdiff_t n, batch, piece_rows;
    int narrays;
    cnn_rows_bad_fn bad;
    _Atomic uint64_t claim;          /* job << 32 | the next piece to take */
    cnn_team_count done;             /* pieces of the current job finished */
    _Atomic ptrdiff_t first_bad;     /* the current job's first bad row (a position in order), n: none */
    atomic_long counts[CNN_GATHER_WHO];
};

cnn_gather *cnn_gather_new(int narrays, const unsigned char *const *src, unsigned char *const *dst,
                           const ptrdiff_t *row, const int64_t *order, ptrdiff_t n, ptrdiff_t batch,
                           ptrdiff_t piece_rows, cnn_rows_bad_fn bad)
{
    cnn_gather *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->narrays = narrays;
    for (int j = 0; j < narrays; ++j) {
        g->src[j] = src[j];
        g->dst[0][j] = dst[j];
        g->dst[1][j] = dst[CNN_GATHER_MAX_ARRAYS + j];
        g->row[j] = row[j];
    }
    g->order = order;
    g->n = n;
    g->batch = batch;
    g->piece_rows = piece_rows < 1 ? 1 : piece_rows;
    g->bad = bad;
    atomic_init(&g->claim, CNN_GATHER_NO_JOB);
    atomic_init(&g->done.count, 0);
    atomic_init(&g->done.sleepers, 0);
    atomic_init(&g->first_bad, n);
    for (int w = 0; w < CNN_GATHER_WHO; ++w)
        atomic_init(&g->counts[w], 0);
    return g;
}

/* threads.h's cnn_team_arrive and cnn_team_wait (cnn_core/_config's), handed over at import. */
static cnn_team_barrier_fn cnn_gather_arrive = NULL, cnn_gather_wait = NULL;

void cnn_gather_set_wait(cnn_team_barrier_fn arrive, cnn_team_barrier_fn wait)
{
    cnn_gather_arrive = arrive;
    cnn_gather_wait = wait;
}

void cnn_gather_free(cnn_gather *g)
{
    free(g);
}

/* Job k's rows: positions [lo, hi) of order. */
static void cnn_gather_rows(const cnn_gather *g, ptrdiff_t k, ptrdiff_t *lo, ptrdiff_t *hi)
{
    *lo = k * g->batch;
    *hi = *lo + g->batch < g->n ? *lo + g->batch : g->n;
}

static long cnn_gather_pieces(const cnn_gather *g, ptrdiff_t k)
{
    ptrdiff_t lo, hi;
    cnn_gather_rows(g, k, &lo, &hi);
    return (long)((hi - lo + g->piece_rows - 1) / g->piece_rows);
}

void cnn_gather_submit(cnn_gather *g, ptrdiff_t k)
{
    atomic_store_explicit(&g->done.count, 0, memory_order_relaxed);
    atomic_store_explicit(&g->first_bad, g->n, memory_order_relaxed);
    /* release: a helper whose claim succeeds sees the counts reset */
    atomic_store_explicit(&g->claim, (uint64_t)k << 32, memory_order_release);
}

/* Piece p of job k: its rows copied into slot k % 2 (back to back: the copy waits on memory, and screening
 * each row between copies made it ~20% slower), then source 0's rows screened in one pass while they are
 * in cache, row by row only when they hold a bad value; the first bad row's position, or n. */
static ptrdiff_t cnn_gather_copy(const cnn_gather *g, ptrdiff_t k, ptrdiff_t p)
{
    ptrdiff_t lo, hi;
    cnn_gather_rows(g, k, &lo, &hi);
    const ptrdiff_t first = p * g->piece_rows, rows = hi - lo - first < g->piece_rows ? hi - lo - first
                                                                                     : g->piece_rows;
    const int64_t *idx = g->order + lo + first;
    for (int j = 0; j < g->narrays; ++j) {
        const ptrdiff_t rb = g->row[j];
        unsigned char *out = g->dst[k & 1][j] + first * rb;
        if (rb == 0)
            continue;
        for (ptrdiff_t r = 0; r < rows; ++r)
            memcpy(out + r * rb, g->src[j] + idx[r] * rb, (size_t)rb);
    }
    const ptrdiff_t rb = g->row[0];
    const unsigned char *out = g->dst[k & 1][0] + first * rb;
    if (g->bad == NULL || rb == 0 || !g->bad(out, rows * rb))
        return g->n;
    for (ptrdiff_t r = 0; r < rows; ++r)
        if (g->bad(out + r * rb, rb))
            return lo + first + r;
    return g->n;
}

int cnn_gather_piece(cnn_gather *g, int who)
{
    uint64_t w = atomic_load_explicit(&g->claim, memory_order_acquire);
    for (;;) {
        if ((long)(uint32_t)w >= cnn_gather_pieces(g, (ptrdiff_t)(w >> 32)))   /* CNN_GATHER_NO_JOB too */
            return 0;
        if (atomic_compare_exchange_weak_explicit(&g->claim, &w, w + 1, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    const ptrdiff_t bad = cnn_gather_copy(g, (ptrdiff_t)(w >> 32), (ptrdiff_t)(uint32_t)w);
    if (bad < g->n) {                /* keep the lowest position: the first bad row in batch order */
        ptrdiff_t seen = atomic_load_explicit(&g->first_bad, memory_order_relaxed);
        while (bad < seen && !atomic_compare_exchange_weak_explicit(&g->first_bad, &seen, bad,
                                                                     memory_order_relaxed, memory_order_relaxed))
            ;
    }
    atomic_fetch_add_explicit(&g->counts[who], 1, memory_order_relaxed);
    /* the rows copied (and first_bad) before the caller sees the piece finished; the job's last piece wakes
     * a caller asleep in cnn_gather_result */
    cnn_gather_arrive(&g->done, (int)cnn_gather_pieces(g, (ptrdiff_t)(w >> 32)));
    return 1;
}

int cnn_gather_pool_piece(void *g)
{
    return cnn_gather_piece((cnn_gather *)g, CNN_GATHER_POOL);
}

int64_t cnn_gather_result(cnn_gather *g)
{
    const uint64_t w = atomic_load_explicit(&g->claim, memory_order_relaxed);
    if (w == CNN_GATHER_NO_JOB)
        return -1;
    while (cnn_gather_piece(g, CNN_GATHER_CALLER))
        ;
    /* A piece under way on a helper takes a few microseconds, unless the helper was preempted: the caller
     * waits as the pool's callers do (threads.h's cnn_team_wait: pauses, yields while the process is alone,
     * then sleeps until the last piece's arrival wakes it), not spinning on a core such a helper may need. */
    cnn_gather_wait(&g->done, (int)cnn_gather_pieces(g, (ptrdiff_t)(w >> 32)));
    const ptrdiff_t bad = atomic_load_explicit(&g->first_bad, memory_order_relaxed);
    return bad < g->n ? g->order[bad] : -1;
}

void cnn_gather_counts(cnn_gather *g, long out[CNN_GATHER_WHO])
{
    for (int w = 0; w < CNN_GATHER_WHO; ++w)
        out[w] = atomic_load_explicit(&g->counts[w], memory_order_relaxed);
}
