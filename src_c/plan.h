/* An inference plan's interpreter: a network's forward pass as an array of ops over buffers allocated once,
 * run by one call without Python between layers (cnn_core/plan.py builds the ops, cnn_core/kernels/_plan.pyx
 * binds them).
 *
 * Every op reads and writes per-sample blocks of m samples (a chunk): its shape parameters are per sample,
 * m comes at run time, so one op array serves any batch. A buffer is named by a slot: CNN_PLAN_IN (the
 * chunk's input rows), CNN_PLAN_OUT (the chunk's output rows) or an offset (elements) into the running
 * thread's arena, which holds every intermediate of one chunk. The batch runs chunk by chunk; with more
 * than one chunk's worth of work each thread takes whole chunks through the whole network on its own arena
 * (no barrier between layers); when the chunks run one at a time (one image, say), a team may run each
 * chunk together in one parallel region per call, the ops' work claimed piece by piece by its threads, each
 * op ending when all its pieces are done (plan_template.h's run_chunk), or, when the ops a team would leave
 * to one thread are GEMMs big enough for a team, each op takes a team of its own.
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
     * transpose. p[15] 2 and 3: stride 1, one group, the direct kernels instead (plan_template.h's dconv,
     * cconv); 4: 3x3, stride 1, one group, Winograd F(2x2, 3x3) (wconv: w the transformed weights, tmp and
     * tmp2 the transformed input and products). p: C, H, W, F, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, G,
     * transposed. */
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
    /* One recurrent layer (Elman RNN, LSTM or GRU) over the T steps of x[m, T, D] from zero states:
     * y[m, T, H] = h_1 .. h_T. The input projection of all steps is one product into tmp (T x G*H per
     * sample, G the gates: 1, 4, 3) with w = W_ih^T (D x ldi, zero-padded) and b = b_ih + b_hh (the GRU's
     * b_ih alone); each step then adds h_{t-1} W_hh^T (w2 = W_hh^T, H x ldh) and does the gate math of
     * cnn_core/kernels/_recurrent.pyx in the same order; tmp2 holds a chunk's h_{t-1} W_hh^T (+ b2 = the
     * GRU's b_hh) then the LSTM's cells (G*H + H per sample). cell: 0 RNN tanh, 1 RNN relu, 2 LSTM, 3 GRU.
     * p: T, D, H, cell, ldi, ldh. */
    CNN_OP_RECURRENT = 9,
    /* An embedding lookup: y[m, L, E] = w[x[m, L]], x the plan's input read as ptrdiff_t indices (checked
     * in range by the caller). p: L, E. */
    CNN_OP_GATHER = 10,
    /* A strided copy (a concatenation's part, a sequence's last step): for each sample and o < outer,
     * len elements from x + o*s_stride + s_off to y + o*d_stride + d_off, within per-sample blocks of s_size
     * and d_size elements. p: outer, len, s_stride, s_off, s_size, d_stride, d_off, d_size. */
    CNN_OP_PLACE = 11,
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
    /* z * Phi(z) with libm's erf, GELU's exact form, and its tanh approximation (the layer's formulas) */
    CNN_PACT_GELU = 7,
    CNN_PACT_GELU_TANH = 8,
} cnn_plan_act;

#define CNN_PLAN_NPARAM 16

typedef struct {
    int kind, act;
    double alpha;                       /* ELU's alpha, LeakyReLU's slope */
    ptrdiff_t src, src2, dst, tmp, tmp2;   /* slots */
    ptrdiff_t p[CNN_PLAN_NPARAM];
    const void *w, *b;                  /* the plan's dtype */
    const void *w2, *b2;                /* a recurrent op's W_hh^T and the GRU's b_hh */
    const ptrdiff_t *tab;
} cnn_plan_op;

/* Once, at import: the thread-team and SIMD-level sources (cnn_core._config's), as cnn_gemm_init. */
void cnn_plan_init(cnn_team_size_fn team_size, cnn_simd_level_fn simd_level);
/* Once, at import: threads.h's cnn_threads_team_start, for the threads of the plan's teams. */
void cnn_plan_set_team_start(cnn_team_start_fn team_start);

/* Runs the ops over n samples: x holds n rows of x_row bytes (the dtype's values, or ptrdiff_t indices
 * when the first op is a gather), y receives n rows of y_row elements; chunks of at
 * most `chunk` samples; arena holds max_threads blocks of arena_row elements (one per thread). Threads:
 * at most max_threads, one per chunk, and only when the batch's work (work_per_sample multiply-adds per
 * sample) gives each at least CNN_GEMM_MIN_WORK_PER_THREAD; when that leaves one chunk at a time, a team of
 * at most team_threads may run each chunk together (on the arena's first block), every op split among
 * them, when a chunk gives each thread CNN_PLAN_TEAM_MIN_WORK (thresholds.h); team_threads also bounds the
 * teams single direct or Winograd convolutions take otherwise (1: the chunks on the calling thread alone,
 * but for the GEMMs' own teams). Returns 0, or -1 when a GEMM could not allocate its packing buffers. */
int cnn_plan_run_f32(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,
                     ptrdiff_t x_row, float *y, ptrdiff_t y_row, float *arena, ptrdiff_t arena_row,
                     int max_threads, int team_threads, double work_per_sample);
int cnn_plan_run_f64(const cnn_plan_op *ops, int nops, ptrdiff_t n, ptrdiff_t chunk, const void *x,
                     ptrdiff_t x_row, double *y, ptrdiff_t y_row, double *arena, ptrdiff_t arena_row,
                     int max_threads, int team_threads, double work_per_sample);

/* The threads cnn_plan_run would use for n samples in chunks of `chunk` (for sizing the arena). */
int cnn_plan_threads(ptrdiff_t n, ptrdiff_t chunk, int max_threads, double work_per_sample);

/* The team that would run each chunk of m samples together (1: none) with at most max_threads threads. */
int cnn_plan_chunk_team(const cnn_plan_op *ops, int nops, ptrdiff_t m, double work_per_sample, int max_threads);

/* A Linear op's ldw is a multiple of this: the small-batch kernel's vector (elements). */
ptrdiff_t cnn_plan_linear_block(int dtype);

#ifdef __cplusplus
}
#endif

#endif
