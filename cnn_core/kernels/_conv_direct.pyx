# distutils: sources = src_c/conv_direct.c
# distutils: depends = src_c/conv_direct.h src_c/conv_direct_template.h src_c/cpu.h
"""Direct convolution for few-channel stride-1 convolutions in training (src_c/conv_direct.c): forward with bias,
the weight and bias gradient, and the input gradient, parallel over samples.

Forward and the input gradient: each sample independent (any schedule). Weight and bias gradient: the batch is
cut into min(NSLOTS, N) slots of fixed sample ranges (from N alone), each summed in sample order into its row of
`partial`, then the rows added in slot order: the same arithmetic for any thread count, as _conv.conv_backward.
Shapes are checked by the caller (nn.Conv2d).
"""
from cython cimport floating
from libc.string cimport memset

from cnn_core._config cimport run_team, simd_level, team_size
from cnn_core.kernels._conv import NSLOTS as _NSLOTS_PY

cdef extern from "conv_direct.h" nogil:
    ctypedef struct cnn_dconv_geom:
        Py_ssize_t C, H, W, F, KH, KW, PH, PW, OH, OW
        int level
    void cnn_dconv_geom_init(cnn_dconv_geom *g, int level, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                             Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t OH,
                             Py_ssize_t OW)
    Py_ssize_t cnn_dconv_packed_size(const cnn_dconv_geom *g)
    Py_ssize_t cnn_dconv_scratch(const cnn_dconv_geom *g)
    void cnn_sdconv_pack(const cnn_dconv_geom *g, const float *w, float *wp)
    void cnn_ddconv_pack(const cnn_dconv_geom *g, const double *w, double *wp)
    void cnn_sdconv_pack_dx(const cnn_dconv_geom *g, const float *w, float *wp)
    void cnn_ddconv_pack_dx(const cnn_dconv_geom *g, const double *w, double *wp)
    void cnn_sdconv_dx(const cnn_dconv_geom *g, Py_ssize_t n, const float *dy, const float *a, const float *wp,
                       float *dx, float *scratch)
    void cnn_ddconv_dx(const cnn_dconv_geom *g, Py_ssize_t n, const double *dy, const double *a, const double *wp,
                       double *dx, double *scratch)
    void cnn_sdconv_forward(const cnn_dconv_geom *g, Py_ssize_t n, const float *x, const float *wp,
                            const float *bias, int relu, float *y, float *scratch)
    void cnn_ddconv_forward(const cnn_dconv_geom *g, Py_ssize_t n, const double *x, const double *wp,
                            const double *bias, int relu, double *y, double *scratch)
    void cnn_sdconv_dw(const cnn_dconv_geom *g, Py_ssize_t n, const float *x, const float *dy, const float *a,
                       float *gw, float *gb, float *scratch)
    void cnn_ddconv_dw(const cnn_dconv_geom *g, Py_ssize_t n, const double *x, const double *dy, const double *a,
                       double *gw, double *gb, double *scratch)

cdef Py_ssize_t NSLOTS = _NSLOTS_PY


cdef cnn_dconv_geom _geom(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW,
                          Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t OH, Py_ssize_t OW, int level) noexcept:
    cdef cnn_dconv_geom g
    cnn_dconv_geom_init(&g, level, C, H, W, F, KH, KW, PH, PW, OH, OW)
    return g


def sizes(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t PH,
          Py_ssize_t PW, Py_ssize_t OH, Py_ssize_t OW) -> tuple:
    """(packed weight elements, scratch elements per thread) that direct_forward and direct_backward need for
    this convolution (C -> F, H x W -> OH x OW, padding PH, PW before) at any instruction-set level."""
    cdef Py_ssize_t packed = 0, scratch = 0
    cdef cnn_dconv_geom g
    cdef int level
    for level in range(3):
        g = _geom(C, H, W, F, KH, KW, PH, PW, OH, OW, level)
        packed = max(packed, cnn_dconv_packed_size(&g))
        scratch = max(scratch, cnn_dconv_scratch(&g))
    return packed, scratch


# One call's arguments, shared by the threads of its team (run_team): float32 or float64 data behind void
# pointers, `is_double` saying which; each thread t takes a fixed share (samples for the forward, slots for
# the backward) and its own scratch row.
ctypedef struct _Call:
    cnn_dconv_geom g
    bint is_double, relu, want_dx
    int nt
    Py_ssize_t n, nslots, xs, ys, ss, psize, ps
    const void *x
    const void *w
    const void *bias
    const void *delta
    const void *a
    void *y
    void *scratch
    void *partial
    void *dx


cdef void _forward_share(void *arg, int t) noexcept nogil:
    """Samples [t*N/nt, (t+1)*N/nt) of direct_forward."""
    cdef _Call *c = <_Call *>arg
    cdef Py_ssize_t s0 = t * c.n // c.nt, s1 = (t + 1) * c.n // c.nt
    if c.is_double:
        cnn_ddconv_forward(&c.g, s1 - s0, <const double *>c.x + s0 * c.xs, <const double *>c.w,
                           <const double *>c.bias, c.relu, <double *>c.y + s0 * c.ys,
                           <double *>c.scratch + t * c.ss)
    else:
        cnn_sdconv_forward(&c.g, s1 - s0, <const float *>c.x + s0 * c.xs, <const float *>c.w,
                           <const float *>c.bias, c.relu, <float *>c.y + s0 * c.ys, <float *>c.scratch + t * c.ss)


cdef void _backward_share(void *arg, int t) noexcept nogil:
    """Slots [t*nslots/nt, (t+1)*nslots/nt) of direct_backward."""
    cdef _Call *c = <_Call *>arg
    cdef Py_ssize_t sl
    for sl in range(t * c.nslots // c.nt, (t + 1) * c.nslots // c.nt):
        if c.is_double:
            _backward_slot(c, t, sl, <const double *>c.x, <const double *>c.delta, <const double *>c.a,
                           <double *>c.partial)
        else:
            _backward_slot(c, t, sl, <const float *>c.x, <const float *>c.delta, <const float *>c.a,
                           <float *>c.partial)


cdef inline void _backward_slot(_Call *c, int t, Py_ssize_t sl, const floating *x, const floating *delta,
                                const floating *a, floating *partial) noexcept nogil:
    """Slot sl's fixed samples, summed into its row of partial (dW, then db when wanted); their input
    gradients when wanted. `a`: the fused ReLU's output, or NULL."""
    cdef Py_ssize_t n0 = sl * c.n // c.nslots, n1 = (sl + 1) * c.n // c.nslots
    cdef floating *pw = partial + sl * c.ps
    cdef floating *pb = NULL if c.bias == NULL else pw + c.psize - c.g.F
    cdef floating *scratch = <floating *>c.scratch + t * c.ss
    if a != NULL:
        a = a + n0 * c.ys
    memset(pw, 0, c.psize * sizeof(floating))
    if floating is float:
        cnn_sdconv_dw(&c.g, n1 - n0, x + n0 * c.xs, delta + n0 * c.ys, a, pw, pb, scratch)
        if c.want_dx:
            cnn_sdconv_dx(&c.g, n1 - n0, delta + n0 * c.ys, a, <const float *>c.w, <float *>c.dx + n0 * c.xs,
                          scratch)
    else:
        cnn_ddconv_dw(&c.g, n1 - n0, x + n0 * c.xs, delta + n0 * c.ys, a, pw, pb, scratch)
        if c.want_dx:
            cnn_ddconv_dx(&c.g, n1 - n0, delta + n0 * c.ys, a, <const double *>c.w, <double *>c.dx + n0 * c.xs,
                          scratch)


def direct_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, const floating[::1] bias,
                   floating[:, :, :, ::1] y, floating[::1] packed, floating[:, ::1] scratch, Py_ssize_t PH,
                   Py_ssize_t PW, bint relu=False):
    """y (N, F, OH, OW) = the stride-1 convolution of x (N, C, H, W) with w (F, C, KH, KW), padding PH, PW before
    (+ bias when not None; then max(., 0) with `relu`, a fused ReLU). packed, scratch: at least sizes(...)[0]
    elements, and one row of sizes(...)[1] per thread."""
    cdef _Call c
    c.g = _geom(x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3], PH, PW, y.shape[2],
                y.shape[3], simd_level())
    c.is_double, c.relu, c.n = floating is double, relu, x.shape[0]
    c.xs, c.ys, c.ss = x.shape[1] * x.shape[2] * x.shape[3], y.shape[1] * y.shape[2] * y.shape[3], scratch.shape[1]
    c.x, c.w, c.y, c.scratch = &x[0, 0, 0, 0], &packed[0], &y[0, 0, 0, 0], &scratch[0, 0]
    c.bias = NULL
    if bias is not None:
        c.bias = &bias[0]
    c.nt = min(team_size(c.n), scratch.shape[0])
    with nogil:
        if floating is float:
            cnn_sdconv_pack(&c.g, &w[0, 0, 0, 0], &packed[0])
        else:
            cnn_ddconv_pack(&c.g, &w[0, 0, 0, 0], &packed[0])
        run_team(_forward_share, &c, c.nt)


def direct_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                    const floating[:, :, :, ::1] delta, floating[:, :, :, ::1] gw, floating[::1] gb,
                    floating[:, :, :, ::1] dx, floating[::1] packed, floating[:, ::1] scratch,
                    floating[:, ::1] partial, Py_ssize_t PH, Py_ssize_t PW, const floating[:, :, :, ::1] a=None):
    """gw (F, C, KH, KW) += dC/dw, gb (F,) += dC/db (when not None), dx (N, C, H, W) = dC/dx (when not None) of
    the convolution of direct_forward, from x and delta (N, F, OH, OW); with `a` (the output of a forward with
    `relu`, delta's shape) delta is dC/da, read as dC/dz = delta where a > 0, 0 elsewhere. partial: at least
    min(NSLOTS, N) rows of F*C*KH*KW + F elements (the slots' sums); packed and scratch as for
    direct_forward."""
    cdef Py_ssize_t N = x.shape[0], F = delta.shape[1], e, sl
    cdef Py_ssize_t wsize = F * x.shape[1] * w.shape[2] * w.shape[3]
    cdef floating acc
    cdef _Call c
    c.g = _geom(x.shape[1], x.shape[2], x.shape[3], F, w.shape[2], w.shape[3], PH, PW, delta.shape[2],
                delta.shape[3], simd_level())
    c.is_double, c.want_dx, c.n, c.nslots = floating is double, dx is not None, N, min(NSLOTS, N)
    c.xs, c.ys, c.ss = x.shape[1] * x.shape[2] * x.shape[3], F * delta.shape[2] * delta.shape[3], scratch.shape[1]
    c.psize, c.ps = wsize + F, partial.shape[1]
    c.x, c.delta, c.w, c.scratch, c.partial = &x[0, 0, 0, 0], &delta[0, 0, 0, 0], &packed[0], &scratch[0, 0], \
        &partial[0, 0]
    c.a = c.bias = c.dx = NULL
    if a is not None:
        c.a = &a[0, 0, 0, 0]
    if gb is not None:
        c.bias = &gb[0]                     # (only whether dC/db is wanted: the shares write partial)
    if dx is not None:
        c.dx = &dx[0, 0, 0, 0]
    c.nt = min(team_size(c.nslots), scratch.shape[0])
    with nogil:
        if c.want_dx:
            if floating is float:
                cnn_sdconv_pack_dx(&c.g, &w[0, 0, 0, 0], &packed[0])
            else:
                cnn_ddconv_pack_dx(&c.g, &w[0, 0, 0, 0], &packed[0])
        run_team(_backward_share, &c, c.nt)
        # The slots' sums, added in slot order (a few thousand elements: serial).
        for e in range(c.psize):
            acc = 0
            for sl in range(c.nslots):
                acc = acc + partial[sl, e]
            if e < wsize:
                (&gw[0, 0, 0, 0])[e] += acc
            elif gb is not None:
                gb[e - wsize] += acc
