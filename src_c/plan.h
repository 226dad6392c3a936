/* An inference plan's interpreter: a network's forward pass as an array of ops over buffers allocated once,
 * run by one call without Python between layers (cnn_core/plan.py builds the ops, cnn_core/kernels/_plan.pyx
 * binds them).
 *
 * Every op reads and writes per-sample blocks of m samples (a chunk): its shape parameters are per sample,
 * m comes at run time, so one op array serves any batch. A buffer is named by a slot: CNN_PLAN_IN (the
 * chunk's input rows), CNN_PLAN_OUT (the chunk's output rows) or an offset (elements) into the running
 * thread's arena, which holds every intermediate of one chunk. The batch runs chunk by chunk; with more
 * than one thread each thread takes whole chunks through the whole network on its own arena (no barrier
 * between layers), with one thread an op may use a team of its own (the GEMM's).
 */
#ifndef CNN_CORE_PLAN_H
#define CNN_CORE_PLAN_H

#include <stddef.h>

#include "cpu.h"
#include "threads.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_PLAN_IN (-1)
#define CNN_PLAN_OUT (-2)

/* The ops. Shapes are per sample; rows of a chunk are consecutive samples. */
typedef enum {
    /* y[m, N] = act(x[m, K] @ Wt + b): Wt is K x ldw (ldw >= N, zero-padded to the level's block), b may
     * be NULL. p: K, N, ldw. */
    CNN_OP_LINEAR = 0,
    /* y[m, F, OH, OW] = act(conv(x[m, C, H, W], W) + b) through im2col into tmp (C*KH*KW x m*OH*OWc) and
     * one GEMM per group into tmp2 (F x m*OH*OWc; straight into y when m == 1 and OWc == OW), whose
     * epilogue adds the bias, applies act and writes NCHW. OWc = OW, or at stride 1 the padded width
     * OW + DW*(KW-1) ("wide" columns, plan_template.h), with src2 the (C, OH + DH*(KH-1), OWc) padded copy
     * of a sample. W is F x C/G*KH*KW, or with transposed != 0 the GEMM runs the other way round (the
     * positions as rows, plan_template.h says when that pays) and W holds each group's C/G*KH*KW x F/G
     * transpose. p: C, H, W, F, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, G, transposed. */
    CNN_OP_CONV = 1,
    /* 2 x 2 max pooling at stride 2, no padding, then act. p: C, H, W, OH, OW. */
    CNN_OP_MAXPOOL2 = 2,
    /* General pooling over per-axis window tables, then act: tab holds OH triples (first input row, taps,
     * divisor factor) then OW triples for the columns; taps are DH / DW apart. Max: padding is never the
     * maximum, a window of padding only gives -inf; average: the window sum over div_row * div_col.
     * p: C, H, W, OH, OW, DH, DW, is_max. */
    CNN_OP_POOL = 3,
    /* y = act(x) elementwise. p: size. */
    CNN_OP_ACT = 4,
    /* y[m, C, S] = act(x * scale[c] + shift[c]) (a batch norm in eval mode that could not be folded):
     * w = scale, b = shift. p: C, S. */
    CNN_OP_AFFINE = 5,
    /* softmax (p[1] == 0) or log-softmax (1) of each row of length N, R rows per sample. p: N, log, R. */
    CNN_OP_SOFTMAX = 6,
    /* y = act(x + x2) elementwise (a residual's sum; x2 is slot src2). p: size. */
    CNN_OP_ADD = 7,
    /* y = x. p: size. */
    CNN_OP_COPY = 8,
} cnn_plan_kind;

/* Activations an op applies to its output (epilogue). Sigmoid, tanh and ELU are activations.c's loops, so
 * the plan's values are the layers' own. */
typedef enum {
    CNN_PACT_NONE = 0,
    CNN_PACT_RELU = 1,
    CNN_PACT_SIGMOID = 2,
    CNN_PACT_TANH = 3,
    CNN_PACT_ELU = 4,
    CNN_PACT_LEAKY = 5,
    CNN_PACT_SILU = 6,
} cnn_plan_act;

#define CNN_PLAN_NPARAM 16

typedef struct {
    int kind, act;
    double alpha;                       /* ELU's alpha, LeakyReLU's slope */
    ptrdiff_t src, src2, dst, tmp, tmp2;   /* slots */
    ptrdiff_t p[CNN_PLAN_NPARAM];
    const void *w, *b;                  /* the plan's dtype */
    const ptrdiff_t *tab;
} cnn_plan_op;

/* Once, at import: the thread-team and SIMD-level sources (cnn_core._config's), as cnn_gemm_init. */
void cnn_plan_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level);

/* Runs the ops over n samples: x holds n rows of x_row elements, y receives n rows of y_row; chunks of at
 * most `chunk` samples; arena holds max_threads blocks of arena_row elements (one per thread). Threads:
 * at most max_threads, one per chunk, and only when the batch's work (work_per_sample multiply-adds per
 * sample) gives each at least CNN_GEMM_MIN_WORK_PER_THREAD. Returns 0, or -1 when a GEMM could not
 * allocate its packing buffers. */
int cnn_plan_run_f32(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const float *x,
                     ptrdiff_t x_row, float *y, ptrdiff_t y_row, float *arena, ptrdiff_t arena_row,
                     int max_threads, double work_per_sample);
int cnn_plan_run_f64(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const double *x,
                     ptrdiff_t x_row, double *y, ptrdiff_t y_row, double *arena, ptrdiff_t arena_row,
                     int max_threads, double work_per_sample);

/* The threads cnn_plan_run would use for n samples in chunks of `chunk` (for sizing the arena). */
int cnn_plan_threads(ptrdiff_t n, ptrdiff_t chunk, int max_threads, double work_per_sample);

/* A Linear op's ldw is a multiple of this: the small-batch kernel's vector (elements). */
ptrdiff_t cnn_plan_linear_block(int dtype);

#ifdef __cplusplus
}
#endif

#endif
