/* fit's batch gather in pieces that any thread may take (cnn_core/kernels/_batches.pyx's Gatherer).
 *
 * A job is one batch of `batch` rows: rows order[job * batch ...] of up to CNN_GATHER_MAX_ARRAYS source
 * arrays copied into slot job % 2 of their two buffers, source 0's rows screened for NaN/inf. The job is
 * cut into pieces of `piece_rows` rows; the caller hands a job over (cnn_gather_submit), helpers take its
 * pieces one at a time (cnn_gather_piece: the pool's workers between their jobs, threads.h's idle hook,
 * and a helper thread), and the caller, when it needs the batch, takes whatever piece is left and waits
 * only for pieces already under way (cnn_gather_result), as the pool's callers wait. So a helper that is
 * slow to start, or preempted, holds the caller up for one piece at most, never for the whole job.
 *
 * Pieces are claimed through one word, job << 32 | next piece: a helper that read a job number the caller
 * has since replaced fails its compare-and-swap and takes nothing. The caller submits job k + 1 only after
 * job k's pieces have all finished (cnn_gather_result), so a finished-piece count per job is enough.
 */
#ifndef CNN_CORE_GATHER_H
#define CNN_CORE_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "threads.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_GATHER_MAX_ARRAYS 3   /* X, y and the labels fit scores against */

/* 1 when the nbytes at p (rows of source 0) hold a NaN or infinity. */
typedef int (*cnn_rows_bad_fn)(const unsigned char *p, ptrdiff_t nbytes);

/* Who gathered a piece (the counters of cnn_gather_counts). */
enum { CNN_GATHER_CALLER = 0, CNN_GATHER_THREAD = 1, CNN_GATHER_POOL = 2, CNN_GATHER_WHO = 3 };

typedef struct cnn_gather cnn_gather;

/* A gather over n = len(order) rows: src[j] (n rows of row[j] bytes); dst[s * CNN_GATHER_MAX_ARRAYS + j],
 * slot s's buffer for source j (at least min(batch, n) rows); bad NULL for no screening. NULL when out of
 * memory. The pointers are borrowed. */
cnn_gather *cnn_gather_new(int narrays, const unsigned char *const *src, unsigned char *const *dst,
                           const ptrdiff_t *row, const int64_t *order, ptrdiff_t n, ptrdiff_t batch,
                           ptrdiff_t piece_rows, cnn_rows_bad_fn bad);
void cnn_gather_free(cnn_gather *g);
/* How pieces finish and the caller waits for them: threads.h's cnn_team_arrive and cnn_team_wait, which live
 * in another extension module (cnn_core/_config), set once at import before any gather. */
void cnn_gather_set_wait(cnn_team_barrier_fn arrive, cnn_team_barrier_fn wait);
/* Hand job k over (the previous job's result taken first). */
void cnn_gather_submit(cnn_gather *g, ptrdiff_t k);
/* Take one piece of the current job and gather it, counted for `who`: 1, or 0 when none is left. */
int cnn_gather_piece(cnn_gather *g, int who);
/* threads.h's idle hook: one piece for the pool (arg: the cnn_gather). */
int cnn_gather_pool_piece(void *g);
/* The caller: gather the pieces left, wait for those under way; the source index of the job's first row
 * (in batch order) with a NaN/inf in source 0, or -1 (also before any job). */
int64_t cnn_gather_result(cnn_gather *g);
/* Pieces gathered so far by each of CNN_GATHER_WHO. */
void cnn_gather_counts(cnn_gather *g, long out[CNN_GATHER_WHO]);

#ifdef __cplusplus
}
#endif

#endif
