# distutils: sources = src_c/maxpool2x2.c
# distutils: depends = src_c/maxpool2x2.h src_c/avx2.h src_c/cpu.h src_c/thresholds.h
"""Max and average pooling loops, parallel over the N*C planes.

Each (n, c) plane is pooled independently, so every thread owns whole planes of the output (forward)
or of dx (backward) and overlapping windows accumulate without races. Windows that lie inside the input
(no padding, no dilation, no ceil-mode overhang) take the fast loops; the others (padding, dilation, windows
clipped at the border, adaptive pooling) take the general ones, which test every tap against the border.
A team starts only for at least CNN_POOL_MIN_PER_THREAD input elements a thread (src_c/thresholds.h).
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.math cimport INFINITY
from libc.string cimport memset

from cnn_core._config cimport CNN_MAX_NUM_THREADS, run_team, simd_level, team_size
from cnn_core.kernels._rows cimport zero_row

import numpy as np


cdef extern from "maxpool2x2.h" nogil:
    int cnn_smaxpool2x2_plane(const float *x, float *out, int64_t *argmax, Py_ssize_t W, Py_ssize_t OH,
                              Py_ssize_t OW)
    int cnn_dmaxpool2x2_plane(const double *x, double *out, int64_t *argmax, Py_ssize_t W, Py_ssize_t OH,
                              Py_ssize_t OW)
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_maxpool2x2_init(cnn_simd_level_fn simd_level)


cdef extern from "thresholds.h" nogil:
    Py_ssize_t CNN_POOL_MIN_PER_THREAD


cnn_maxpool2x2_init(simd_level)


cdef inline int _team(Py_ssize_t planes, Py_ssize_t elements) noexcept nogil:
    """Threads for `planes` planes holding `elements` input elements in all: one per
    CNN_POOL_MIN_PER_THREAD elements, at most one per plane."""
    cdef Py_ssize_t work = elements // CNN_POOL_MIN_PER_THREAD
    return team_size(work if work < planes else planes)


cdef inline bint _max_plane_2x2(const floating* x, floating* out, int64_t* argmax, Py_ssize_t W,
                                Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """The 2x2/stride-2 kernel of src_c/maxpool2x2.c; False when the SIMD level in use has none."""
    if floating is float:
        return cnn_smaxpool2x2_plane(x, out, argmax, W, OH, OW)
    else:
        return cnn_dmaxpool2x2_plane(x, out, argmax, W, OH, OW)


cdef void _max_plane(const floating* x, floating* out, int64_t* argmax, Py_ssize_t W,
                     Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                     Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Window maxima one output row at a time, visiting window offsets (i, j) in row-major order.

    Every output of the row takes its (i, j) candidate in one branch-free sweep: on random data a
    compare-and-branch mispredicts about every other element. Only the winner's index is carried (an
    integer select via a mask); its value is re-read from x. A candidate wins when it is larger
    (strictly: ties keep the first) or when it is the first NaN (NaN propagates).
    """
    cdef Py_ssize_t oh, ow, i, j, r
    cdef int64_t cand, m
    cdef floating v, best
    cdef int64_t* a
    for oh in range(OH):
        a = argmax + oh * OW
        r = oh * SH * W
        for ow in range(OW):
            a[ow] = r + ow * SW
        for i in range(KH):
            for j in range(KW):
                if i == 0 and j == 0:
                    continue
                r = (oh * SH + i) * W + j
                for ow in range(OW):
                    cand = r + ow * SW
                    v = x[cand]
                    best = x[a[ow]]
                    m = -<int64_t> ((v > best) | ((v != v) & (best == best)))
                    a[ow] = (cand & m) | (a[ow] & ~m)
        for ow in range(OW):
            out[oh * OW + ow] = x[a[ow]]


cdef void _avg_plane(const floating* x, floating* out, floating* acc, Py_ssize_t W,
                     Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                     Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Window means via column sums: acc (W scratch) sums the KH input rows of an output row in
    contiguous (vectorizable) sweeps, then each output adds its KW neighbouring column sums."""
    cdef Py_ssize_t oh, ow, i, j, w
    cdef const floating* r
    cdef floating total
    cdef floating scale = 1.0 / (KH * KW)  # multiply: a division per element costs ~10x more
    for oh in range(OH):
        r = x + oh * SH * W
        for w in range(W):
            acc[w] = r[w]
        for i in range(1, KH):
            r = r + W
            for w in range(W):
                acc[w] += r[w]
        for ow in range(OW):
            total = acc[ow * SW]
            for j in range(1, KW):
                total += acc[ow * SW + j]
            out[oh * OW + ow] = total * scale


cdef void _avg_backward_plane(const floating* dout, floating* dx, floating* spread, Py_ssize_t H,
                              Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                              Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Transpose of _avg_plane. Disjoint windows (stride >= kernel) are written with plain stores.
    Overlapping windows go through spread (W scratch): one output row's gradient gathered along the row
    (sweeping j outside ow keeps each sweep's stores disjoint), divided by the window size, then added
    to each of the window's KH input rows in contiguous (vectorizable) sweeps."""
    cdef Py_ssize_t oh, ow, i, j, w, r
    cdef Py_ssize_t span = (OW - 1) * SW + KW  # columns any window touches
    cdef floating scale = 1.0 / (KH * KW)  # multiply: a division per element costs ~10x more
    cdef floating v
    cdef const floating* g
    cdef floating* d
    if SH == KH and SW == KW:  # windows tile the top-left corner: zero only the dropped border
        for r in range(OH * KH):
            zero_row(dx + r * W + span, W - span)
        zero_row(dx + OH * KH * W, (H - OH * KH) * W)
    else:
        memset(dx, 0, H * W * sizeof(floating))
    if KW == 2 and SW == 2 and SH >= KH:
        # the common 2-wide tiling, with the window width known to the compiler: each output row is
        # a vectorizable duplicate-and-store sweep per input row instead of scattered scalar stores
        for oh in range(OH):
            g = dout + oh * OW
            for i in range(KH):
                d = dx + (oh * SH + i) * W
                for ow in range(OW):
                    v = g[ow] * scale
                    d[2 * ow] = v
                    d[2 * ow + 1] = v
        return
    if SH >= KH and SW >= KW:
        for oh in range(OH):
            for ow in range(OW):
                v = dout[oh * OW + ow] * scale
                d = dx + oh * SH * W + ow * SW
                for i in range(KH):
                    for j in range(KW):
                        d[i * W + j] = v
        return
    for oh in range(OH):
        g = dout + oh * OW
        zero_row(spread, span)
        for j in range(KW):
            for ow in range(OW):
                spread[ow * SW + j] += g[ow]
        for w in range(span):
            spread[w] = spread[w] * scale
        d = dx + oh * SH * W
        for i in range(KH):
            for w in range(span):
                d[w] += spread[w]
            d = d + W


# One max-pooling call's arguments, shared by its team (run_team): float32 or float64 behind void pointers,
# `is_double` saying which; thread t takes planes [t*NC/nt, (t+1)*NC/nt) and counts its bad indices in bad[t].
ctypedef struct _MaxCall:
    bint is_double, fast, empty_windows
    int nt
    Py_ssize_t NC, HW, W, L, OH, OW, KH, KW, SH, SW
    const void *src
    void *dst
    int64_t *argmax
    Py_ssize_t *bad


cdef void _max_forward_share(void *arg, int t) noexcept nogil:
    cdef _MaxCall *c = <_MaxCall *>arg
    cdef Py_ssize_t p
    for p in range(t * c.NC // c.nt, (t + 1) * c.NC // c.nt):
        if c.is_double:
            _max_plane_any(<const double *>c.src + p * c.HW, <double *>c.dst + p * c.L, c.argmax + p * c.L, c)
        else:
            _max_plane_any(<const float *>c.src + p * c.HW, <float *>c.dst + p * c.L, c.argmax + p * c.L, c)


cdef inline void _max_plane_any(const floating* x, floating* out, int64_t* argmax, _MaxCall *c) noexcept nogil:
    if not (c.fast and _max_plane_2x2(x, out, argmax, c.W, c.OH, c.OW)):
        _max_plane(x, out, argmax, c.W, c.KH, c.KW, c.SH, c.SW, c.OH, c.OW)


def max_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                       int64_t[:, :, :, ::1] argmax, Py_ssize_t KH, Py_ssize_t KW,
                       Py_ssize_t SH, Py_ssize_t SW):
    """Fill out and argmax (N, C, OH, OW) from x (N, C, H, W); shapes are checked by the caller."""
    cdef _MaxCall c
    c.is_double, c.fast = floating is double, KH == 2 and KW == 2 and SH == 2 and SW == 2
    c.NC, c.HW, c.W = x.shape[0] * x.shape[1], x.shape[2] * x.shape[3], x.shape[3]
    c.OH, c.OW, c.L = out.shape[2], out.shape[3], out.shape[2] * out.shape[3]
    c.KH, c.KW, c.SH, c.SW = KH, KW, SH, SW
    c.src, c.dst, c.argmax = &x[0, 0, 0, 0], &out[0, 0, 0, 0], &argmax[0, 0, 0, 0]
    c.nt = _team(c.NC, c.NC * c.HW)
    with nogil:
        run_team(_max_forward_share, &c, c.nt)


cdef void _max_backward_share(void *arg, int t) noexcept nogil:
    cdef _MaxCall *c = <_MaxCall *>arg
    cdef Py_ssize_t p, bad = 0       # (bad[t] written once: the threads' counters share a cache line)
    for p in range(t * c.NC // c.nt, (t + 1) * c.NC // c.nt):
        if c.is_double:
            bad += _route(<const double *>c.src + p * c.L, c.argmax + p * c.L, <double *>c.dst + p * c.HW, c)
        else:
            bad += _route(<const float *>c.src + p * c.L, c.argmax + p * c.L, <float *>c.dst + p * c.HW, c)
    c.bad[t] = bad


cdef inline Py_ssize_t _route(const floating* g, const int64_t* ap, floating* d, _MaxCall *c) noexcept nogil:
    """One plane of dx: zeros, then each of the L deltas added at its argmax; the indices out of range
    (skipped) counted."""
    cdef Py_ssize_t k, bad = 0
    cdef int64_t idx
    memset(d, 0, c.HW * sizeof(floating))
    for k in range(c.L):
        idx = ap[k]
        if idx == -1 and c.empty_windows:   # a window of padding only: no winner, no gradient
            pass
        elif idx < 0 or idx >= c.HW:
            bad += 1
        else:
            d[idx] += g[k]
    return bad


def max_pool2d_backward(const floating[:, :, :, ::1] dout, const int64_t[:, :, :, ::1] argmax,
                        floating[:, :, :, ::1] dx, bint empty_windows=False):
    """Overwrite dx (N, C, H, W) with dout routed to argmax; returns how many indices were out of range.

    Out-of-range indices are skipped (never written), so a bad argmax cannot corrupt memory; the caller
    raises when the count is non-zero. With empty_windows, -1 (a window of padding only, from
    max_pool2d_forward_general) is no winner rather than out of range.
    """
    cdef Py_ssize_t bad[CNN_MAX_NUM_THREADS]
    cdef _MaxCall c
    c.is_double, c.empty_windows = floating is double, empty_windows
    c.NC, c.HW, c.L = dx.shape[0] * dx.shape[1], dx.shape[2] * dx.shape[3], dout.shape[2] * dout.shape[3]
    c.src, c.dst, c.argmax, c.bad = &dout[0, 0, 0, 0], &dx[0, 0, 0, 0], <int64_t *>&argmax[0, 0, 0, 0], bad
    c.nt = _team(c.NC, c.NC * c.HW)
    with nogil:
        run_team(_max_backward_share, &c, c.nt)
    return sum(bad[t] for t in range(c.nt))


cdef Py_ssize_t _scratch_stride(Py_ssize_t W, Py_ssize_t itemsize) noexcept:
    """Elements between per-thread scratch rows: W rounded up to whole 64-byte cache lines, plus one line,
    so no two threads ever write the same line (false sharing had erased all gain from a second thread)."""
    cdef Py_ssize_t per_line = 64 // itemsize
    return ((W + per_line - 1) // per_line + 1) * per_line


def avg_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                       Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW):
    """Fill out (N, C, OH, OW) with window means of x (N, C, H, W)."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], p
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef int nt = _team(NC, NC * H * W)
    cdef Py_ssize_t ld = _scratch_stride(W, sizeof(floating))
    cdef floating[:, ::1] scratch = np.empty((nt, ld), dtype=np.asarray(x).dtype)  # a row per thread
    cdef floating* sp = &scratch[0, 0]
    with nogil:
        for p in prange(NC, schedule="static", num_threads=nt):
            _avg_plane(xp + p * H * W, op + p * OH * OW, sp + threadid() * ld, W, KH, KW, SH, SW, OH, OW)


def avg_pool2d_backward(const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW):
    """Overwrite dx (N, C, H, W) with dout (N, C, OH, OW) spread evenly over each window."""
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], p
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef floating* dp = &dx[0, 0, 0, 0]
    cdef int nt = _team(NC, NC * H * W)
    cdef Py_ssize_t ld = _scratch_stride(W, sizeof(floating))
    cdef floating[:, ::1] scratch = np.empty((nt, ld), dtype=np.asarray(dx).dtype)  # a row per thread
    cdef floating* sp = &scratch[0, 0]
    with nogil:
        for p in prange(NC, schedule="static", num_threads=nt):
            _avg_backward_plane(gp + p * OH * OW, dp + p * H * W, sp + threadid() * ld, H, W, KH, KW, SH, SW,
                                OH, OW)


# ---- the general loops: padding, dilation, windows clipped at the border, adaptive windows -------------

cdef void _max_plane_general(const floating* x, floating* out, int64_t* argmax, Py_ssize_t H, Py_ssize_t W,
                             Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH,
                             Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH,
                             Py_ssize_t OW) noexcept nogil:
    """Window maxima over the taps (oh*SH - PH + i*DH, ow*SW - PW + j*DW) that fall inside the plane
    (padding is never a candidate), in row-major tap order: ties keep the first, the first NaN wins. A
    window with no tap inside gives -inf and argmax -1 (PyTorch's -inf; no gradient goes anywhere)."""
    cdef Py_ssize_t oh, ow, i, j, h, w, best_idx
    cdef floating v, best
    for oh in range(OH):
        for ow in range(OW):
            best_idx = -1
            best = -INFINITY
            for i in range(KH):
                h = oh * SH - PH + i * DH
                if h < 0 or h >= H:
                    continue
                for j in range(KW):
                    w = ow * SW - PW + j * DW
                    if w < 0 or w >= W:
                        continue
                    v = x[h * W + w]
                    if best_idx < 0 or (best == best and (v > best or v != v)):
                        best = v
                        best_idx = h * W + w
            out[oh * OW + ow] = best
            argmax[oh * OW + ow] = best_idx


def max_pool2d_forward_general(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                               int64_t[:, :, :, ::1] argmax, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                               Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW):
    """max_pool2d_forward with zero padding PH, PW (never a candidate) and dilation DH, DW."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], p
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    cdef int64_t* ap = &argmax[0, 0, 0, 0]
    with nogil:
        for p in prange(NC, schedule="static", num_threads=_team(NC, NC * H * W)):
            _max_plane_general(xp + p * H * W, op + p * OH * OW, ap + p * OH * OW, H, W, KH, KW, SH, SW, PH, PW,
                               DH, DW, OH, OW)


def avg_pool2d_forward_windows(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                               const Py_ssize_t[::1] hs, const Py_ssize_t[::1] he, const Py_ssize_t[::1] hn,
                               const Py_ssize_t[::1] ws, const Py_ssize_t[::1] we, const Py_ssize_t[::1] wn):
    """out[.., oh, ow] = sum of x[.., hs[oh]:he[oh], ws[ow]:we[ow]] / (hn[oh] * wn[ow]).

    The caller gives each output row's and column's window, clipped to the plane, and its divisor's
    factor (the clipped length, or the length counting padding: count_include_pad)."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], p, oh, ow, h, w
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* plane
    cdef floating* op = &out[0, 0, 0, 0]
    cdef floating total
    with nogil:
        for p in prange(NC, schedule="static", num_threads=_team(NC, NC * H * W)):
            plane = xp + p * H * W
            for oh in range(OH):
                for ow in range(OW):
                    total = 0
                    for h in range(hs[oh], he[oh]):
                        for w in range(ws[ow], we[ow]):
                            total = total + plane[h * W + w]
                    op[(p * OH + oh) * OW + ow] = total / (hn[oh] * wn[ow])


def avg_pool2d_backward_windows(const floating[:, :, :, ::1] dout, floating[:, :, :, ::1] dx,
                                const Py_ssize_t[::1] hs, const Py_ssize_t[::1] he, const Py_ssize_t[::1] hn,
                                const Py_ssize_t[::1] ws, const Py_ssize_t[::1] we, const Py_ssize_t[::1] wn):
    """Transpose of avg_pool2d_forward_windows: dx (overwritten) gets dout / divisor on every window tap."""
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], p, oh, ow, h, w
    cdef const floating* gp = &dout[0, 0, 0, 0]
    cdef floating* dp = &dx[0, 0, 0, 0]
    cdef floating* plane
    cdef floating v
    with nogil:
        for p in prange(NC, schedule="static", num_threads=_team(NC, NC * H * W)):
            plane = dp + p * H * W
            memset(plane, 0, H * W * sizeof(floating))
            for oh in range(OH):
                for ow in range(OW):
                    v = gp[(p * OH + oh) * OW + ow] / (hn[oh] * wn[ow])
                    for h in range(hs[oh], he[oh]):
                        for w in range(ws[ow], we[ow]):
                            plane[h * W + w] += v
