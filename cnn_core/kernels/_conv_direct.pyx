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
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from cnn_core._config cimport simd_level, team_size
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


def direct_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, const floating[::1] bias,
                   floating[:, :, :, ::1] y, floating[::1] packed, floating[:, ::1] scratch, Py_ssize_t PH,
                   Py_ssize_t PW, bint relu=False):
    """y (N, F, OH, OW) = the stride-1 convolution of x (N, C, H, W) with w (F, C, KH, KW), padding PH, PW before
    (+ bias when not None; then max(., 0) with `relu`, a fused ReLU). packed, scratch: at least sizes(...)[0]
    elements, and one row of sizes(...)[1] per thread."""
    cdef Py_ssize_t N = x.shape[0], s
    cdef cnn_dconv_geom g = _geom(x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3], PH, PW,
                                  y.shape[2], y.shape[3], simd_level())
    cdef Py_ssize_t xs = x.shape[1] * x.shape[2] * x.shape[3], ys = y.shape[1] * y.shape[2] * y.shape[3]
    cdef const floating* bp = NULL
    if bias is not None:
        bp = &bias[0]
    cdef int nt = min(team_size(N), scratch.shape[0])
    with nogil:
        if floating is float:
            cnn_sdconv_pack(&g, &w[0, 0, 0, 0], &packed[0])
        else:
            cnn_ddconv_pack(&g, &w[0, 0, 0, 0], &packed[0])
        for s in prange(N, schedule="static", num_threads=nt):
            if floating is float:
                cnn_sdconv_forward(&g, 1, &x[0, 0, 0, 0] + s * xs, &packed[0], bp, relu, &y[0, 0, 0, 0] + s * ys,
                                   &scratch[threadid(), 0])
            else:
                cnn_ddconv_forward(&g, 1, &x[0, 0, 0, 0] + s * xs, &packed[0], bp, relu, &y[0, 0, 0, 0] + s * ys,
                                   &scratch[threadid(), 0])


def direct_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                    const floating[:, :, :, ::1] delta, floating[:, :, :, ::1] gw, floating[::1] gb,
                    floating[:, :, :, ::1] dx, floating[::1] packed, floating[:, ::1] scratch,
                    floating[:, ::1] partial, Py_ssize_t PH, Py_ssize_t PW, const floating[:, :, :, ::1] a=None):
    """gw (F, C, KH, KW) += dC/dw, gb (F,) += dC/db (when not None), dx (N, C, H, W) = dC/dx (when not None) of
    the convolution of direct_forward, from x and delta (N, F, OH, OW); with `a` (the output of a forward with
    `relu`, delta's shape) delta is dC/da, read as dC/dz = delta where a > 0, 0 elsewhere. partial: at least
    min(NSLOTS, N) rows of F*C*KH*KW + F elements (the slots' sums); packed and scratch as for
    direct_forward."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = delta.shape[1], OH = delta.shape[2], OW = delta.shape[3], KH = w.shape[2], KW = w.shape[3]
    cdef int level = simd_level()
    cdef cnn_dconv_geom g = _geom(C, H, W, F, KH, KW, PH, PW, OH, OW, level)
    cdef Py_ssize_t xs = C * H * W, ds = F * OH * OW, wsize = F * C * KH * KW, psize = wsize + F
    cdef Py_ssize_t nslots = min(NSLOTS, N), sl, n0, n1, e
    cdef bint has_bias = gb is not None, want_dx = dx is not None
    cdef floating* pw
    cdef floating* pb
    cdef const floating* pa = NULL
    cdef const floating* pa_sl
    cdef floating acc
    if a is not None:
        pa = &a[0, 0, 0, 0]
    cdef int nt = min(team_size(nslots), scratch.shape[0])
    with nogil:
        if want_dx:
            if floating is float:
                cnn_sdconv_pack_dx(&g, &w[0, 0, 0, 0], &packed[0])
            else:
                cnn_ddconv_pack_dx(&g, &w[0, 0, 0, 0], &packed[0])
        for sl in prange(nslots, schedule="static", num_threads=nt):
            n0 = sl * N // nslots
            n1 = (sl + 1) * N // nslots
            pw = &partial[sl, 0]
            pb = pw + wsize if has_bias else NULL
            memset(pw, 0, psize * sizeof(floating))
            pa_sl = pa
            if pa != NULL:
                pa_sl = pa + n0 * ds
            if floating is float:
                cnn_sdconv_dw(&g, n1 - n0, &x[0, 0, 0, 0] + n0 * xs, &delta[0, 0, 0, 0] + n0 * ds, pa_sl, pw, pb,
                              &scratch[threadid(), 0])
                if want_dx:
                    cnn_sdconv_dx(&g, n1 - n0, &delta[0, 0, 0, 0] + n0 * ds, pa_sl, &packed[0],
                                  &dx[0, 0, 0, 0] + n0 * xs, &scratch[threadid(), 0])
            else:
                cnn_ddconv_dw(&g, n1 - n0, &x[0, 0, 0, 0] + n0 * xs, &delta[0, 0, 0, 0] + n0 * ds, pa_sl, pw, pb,
                              &scratch[threadid(), 0])
                if want_dx:
                    cnn_ddconv_dx(&g, n1 - n0, &delta[0, 0, 0, 0] + n0 * ds, pa_sl, &packed[0],
                                  &dx[0, 0, 0, 0] + n0 * xs, &scratch[threadid(), 0])
        # The slots' sums, added in slot order (a few thousand elements: serial).
        for e in range(psize):
            acc = 0
            for sl in range(nslots):
                acc = acc + partial[sl, e]
            if e < wsize:
                (&gw[0, 0, 0, 0])[e] += acc
            elif has_bias:
                gb[e - wsize] += acc
