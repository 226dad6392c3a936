# distutils: sources = src_c/winograd.c
# distutils: depends = src_c/winograd.h src_c/winograd_template.h src_c/cpu.h
"""im2col / col2im loops, and the convolution layer's compiled forward and backward built on them.

Two column layouts, the same loops:
- per sample, torch.nn.functional.unfold's: cols[n, c*KH*KW + i*KW + j, oh*OW + ow] (the deck's reference
  path, the public im2col / col2im);
- a chunk of m samples side by side in the columns: cols[c*KH*KW + i*KW + j, n*OH*OW + oh*OW + ow], so that
  the chunk is one GEMM (weight (F, C*KH*KW) @ cols (C*KH*KW, m*OH*OW)) whose N dimension stays wide even
  for 7x7 images (conv_forward / conv_backward below).
One (n, c) input plane maps to KH*KW rows of cols (of length OH*OW, at row stride `ld`), so planes are
independent and the outer loop runs in parallel over N*C. Padding is handled by computing, once per kernel
offset, the range of output positions whose input lies inside the image: the inner loops never branch per
element. Dilation DH, DW spaces the kernel taps: tap (i, j) reads x[oh*SH - PH + i*DH, ow*SW - PW + j*DW].
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from cnn_core._config cimport team_size
from cnn_core.kernels._rows cimport copy_row, zero_row


cdef extern from "thresholds.h" nogil:
    Py_ssize_t CNN_IM2COL_MIN_PER_THREAD
    Py_ssize_t CNN_WINO_WEIGHT_MIN_PAIRS
    Py_ssize_t CNN_WINO_FINISH_MIN_PAIRS


cdef inline int _team(Py_ssize_t planes, Py_ssize_t elements) noexcept nogil:
    """Threads for `planes` planes whose column blocks hold `elements` in all: one per
    CNN_IM2COL_MIN_PER_THREAD elements (src_c/thresholds.h), at most one per plane."""
    cdef Py_ssize_t work = elements // CNN_IM2COL_MIN_PER_THREAD
    return team_size(work if work < planes else planes)


cdef inline void _valid_range(Py_ssize_t size, Py_ssize_t out_size, Py_ssize_t k, Py_ssize_t s,
                              Py_ssize_t p, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Set [lo, hi) to the outputs o with 0 <= o*s - p + k < size (clamped to [0, out_size])."""
    cdef Py_ssize_t first = p - k            # smallest o*s allowed
    cdef Py_ssize_t last = size - 1 + p - k  # largest o*s allowed
    cdef Py_ssize_t a = 0, b = 0
    if first > 0:
        a = (first + s - 1) // s
    if last >= 0:
        b = last // s + 1
    if b > out_size:
        b = out_size
    if a > b:
        a = b
    lo[0] = a
    hi[0] = b


cdef void _im2col_plane(const floating* x, floating* cols, Py_ssize_t ld, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW,
                        Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """x: one (H, W) plane; cols: its KH*KW rows of length OH*OW, `ld` elements apart."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid, step = SH * W
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for i in range(KH):
        _valid_range(H, OH, i * DH, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j * DW, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            row = cols + (i * KW + j) * ld
            zero_row(row, oh_lo * OW)
            zero_row(row + oh_hi * OW, (OH - oh_hi) * OW)
            if n_valid <= 0:
                zero_row(row + oh_lo * OW, (oh_hi - oh_lo) * OW)
                continue
            dst = row + oh_lo * OW
            src = x + (oh_lo * SH - PH + i * DH) * W + (ow_lo * SW - PW + j * DW)
            if n_valid < OW:  # some columns fall in the padding
                for oh in range(oh_lo, oh_hi):
                    zero_row(dst, ow_lo)
                    zero_row(dst + ow_hi, OW - ow_hi)
                    dst += OW
            dst = row + oh_lo * OW + ow_lo
            if SW == 1 and n_valid == OW and step == OW:
                # whole rows back to back in both (a 1x1 stride-1 kernel, the middle column of a padded
                # stride-1 one): one run
                copy_row(dst, src, (oh_hi - oh_lo) * OW)
            elif SW == 1:
                for oh in range(oh_lo, oh_hi):
                    copy_row(dst, src, n_valid)
                    dst += OW
                    src += step
            else:
                for oh in range(oh_lo, oh_hi):
                    for t in range(n_valid):
                        dst[t] = src[t * SW]
                    dst += OW
                    src += step


cdef void _col2im_plane(const floating* cols, floating* x, Py_ssize_t ld, Py_ssize_t H, Py_ssize_t W,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                        Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW,
                        Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Adjoint of _im2col_plane: zero the plane, then add every in-image column entry back."""
    cdef Py_ssize_t i, j, oh, t, oh_lo, oh_hi, ow_lo, ow_hi, n_valid
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    if KH == 1 and KW == 1 and SH == 1 and SW == 1 and PH == 0 and PW == 0 and OH == H and OW == W:
        # 1x1, stride 1, no padding: each position has exactly one entry, so the sum is a copy (one write
        # of the plane instead of a zeroing pass and a read-add-write pass)
        copy_row(x, cols, H * W)
        return
    memset(x, 0, H * W * sizeof(floating))
    for i in range(KH):
        _valid_range(H, OH, i * DH, SH, PH, &oh_lo, &oh_hi)
        for j in range(KW):
            _valid_range(W, OW, j * DW, SW, PW, &ow_lo, &ow_hi)
            n_valid = ow_hi - ow_lo
            if n_valid <= 0:
                continue
            row = cols + (i * KW + j) * ld
            if SW == 1 and n_valid == OW and SH * W == OW:
                # whole rows back to back in both (as in im2col): one run
                src = row + oh_lo * OW
                dst = x + (oh_lo * SH - PH + i * DH) * W + (ow_lo * SW - PW + j * DW)
                for t in range((oh_hi - oh_lo) * OW):
                    dst[t] += src[t]
                continue
            for oh in range(oh_lo, oh_hi):
                src = row + oh * OW + ow_lo
                dst = x + (oh * SH - PH + i * DH) * W + (ow_lo * SW - PW + j * DW)
                if SW == 1:
                    for t in range(n_valid):
                        dst[t] += src[t]
                else:
                    for t in range(n_valid):
                        dst[t * SW] += src[t]


def im2col(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
           Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW):
    """Fill cols (N, C*KH*KW, OH*OW) from x (N, C, H, W); shapes are checked by the caller."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p, L = OH * OW, KK = KH * KW
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=_team(N * C, N * C * KK * L)):
            _im2col_plane(xp + p * H * W, cp + p * KK * L, L, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


def col2im(const floating[:, :, ::1] cols, floating[:, :, :, ::1] x,
           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
           Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW):
    """Overwrite x (N, C, H, W) with the adjoint of im2col applied to cols (N, C*KH*KW, OH*OW)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t p, L = OH * OW, KK = KH * KW
    cdef const floating* cp = &cols[0, 0, 0]
    cdef floating* xp = &x[0, 0, 0, 0]
    with nogil:
        for p in prange(N * C, schedule="static", num_threads=_team(N * C, N * C * KK * L)):
            _col2im_plane(cp + p * KK * L, xp + p * H * W, L, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


# ---- the convolution layer's driver: one parallel region per forward or backward call ----------------------
#
# The batch is cut into chunks of `chunk` samples (a count fixed by the caller from the shapes alone). A thread
# takes whole chunks: im2col of the chunk into its own scratch (batch in the columns, so it stays in cache),
# one serial GEMM per group, and the layout moves, all inside one OpenMP region, rather than a region per
# kernel per chunk (each a fork and a barrier, which on a loaded machine cost more than the work). Backward
# sums dW and db over chunks into min(NSLOTS, chunks) partial sums, slot s taking a fixed range of chunks in order, then
# adds the slots in order: the arithmetic is the same for any thread count.

from cnn_core.kernels._gemm cimport gemm, gemm_batch, gemm_nt_acc, gemm_nt_batch

cdef enum:
    _NSLOTS = 8
NSLOTS = _NSLOTS   # the partial sums of dW and db (rows of conv_backward's `partial`)


cdef inline floating _sum(const floating* a, Py_ssize_t n) noexcept nogil:
    """a[0] + ... + a[n-1] in a fixed order: eight running sums (every eighth element each, so that eight
    additions are in flight rather than one chain at the adder's latency), added pairwise, then the tail.
    db's sums over the batch and positions: at 64 x 64 x 49 values a single chain took ~0.2 ms per step."""
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t t = 0
    while t + 8 <= n:
        s0 = s0 + a[t]
        s1 = s1 + a[t + 1]
        s2 = s2 + a[t + 2]
        s3 = s3 + a[t + 3]
        s4 = s4 + a[t + 4]
        s5 = s5 + a[t + 5]
        s6 = s6 + a[t + 6]
        s7 = s7 + a[t + 7]
        t = t + 8
    s0 = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while t < n:
        s0 = s0 + a[t]
        t = t + 1
    return s0


# ---- the 3x3 stride-2 padding-1 convolution of an even-sized plane (a network's downsampling conv) ----------
#
# The generic loops copy OH rows of OW elements per tap, every second input element: at 14x14 -> 7x7 the
# per-row work costs more than the copies. Here the plane is split once into its four phases
# P_pq[a, b] = x[2a + p, 2b + q] (each OH x OW, H = 2*OH and W = 2*OW), which are the column rows of the taps
# (1, 1), (1, 2), (2, 1), (2, 2) (tap (i, j) reads x[2*oh - 1 + i, 2*ow - 1 + j]); the five other taps are
# those rows shifted by one output row (tap row 0: P_1q[oh - 1, .]) and / or one output column (tap column 0:
# P_p1[., ow - 1]), zero where the shift leaves the phase: each one contiguous copy of a column row.

cdef inline bint _is_s2_3x3(Py_ssize_t H, Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                            Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW,
                            Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    return (KH == 3 and KW == 3 and SH == 2 and SW == 2 and PH == 1 and PW == 1 and DH == 1 and DW == 1
            and H == 2 * OH and W == 2 * OW)


cdef inline void _shift_row(const floating* src, floating* dst, Py_ssize_t OH, Py_ssize_t OW, bint down,
                            bint right) noexcept nogil:
    """dst[oh, ow] = src[oh - down, ow - right], zero where that falls outside (one column row, L = OH*OW)."""
    cdef Py_ssize_t t, L = OH * OW, d = down * OW + right
    for t in range(d):
        dst[t] = 0
    for t in range(d, L):
        dst[t] = src[t - d]
    if right:
        for t in range(OH):
            dst[t * OW] = 0


cdef inline void _shift_row_adjoint(floating* dst, floating* src, Py_ssize_t OH, Py_ssize_t OW, bint down,
                                    bint right) noexcept nogil:
    """The adjoint of _shift_row: src[oh - down, ow - right] += dst[oh, ow] where both are inside. dst's entries
    that map outside (its first `down` rows; with `right`, its first column) are zeroed first (dst is the
    column gradient, scratch), so that one contiguous sum does the rest."""
    cdef Py_ssize_t t, L = OH * OW, d = down * OW + right
    if right:
        for t in range(OH):
            dst[t * OW] = 0
    for t in range(d, L):
        src[t - d] += dst[t]


cdef void _im2col_plane_s2(const floating* x, floating* cols, Py_ssize_t ld, Py_ssize_t OH,
                           Py_ssize_t OW) noexcept nogil:
    """_im2col_plane for _is_s2_3x3: the 9 column rows of one (2*OH, 2*OW) plane, `ld` apart."""
    cdef Py_ssize_t a, b, W = 2 * OW
    cdef floating* p00 = cols + 4 * ld     # tap (1, 1)
    cdef floating* p01 = cols + 5 * ld     # tap (1, 2)
    cdef floating* p10 = cols + 7 * ld     # tap (2, 1)
    cdef floating* p11 = cols + 8 * ld     # tap (2, 2)
    cdef const floating* r0
    cdef const floating* r1
    for a in range(OH):
        r0 = x + 2 * a * W
        r1 = r0 + W
        for b in range(OW):
            p00[a * OW + b] = r0[2 * b]
            p01[a * OW + b] = r0[2 * b + 1]
            p10[a * OW + b] = r1[2 * b]
            p11[a * OW + b] = r1[2 * b + 1]
    _shift_row(p11, cols, OH, OW, True, True)            # tap (0, 0)
    _shift_row(p10, cols + ld, OH, OW, True, False)      # tap (0, 1)
    _shift_row(p11, cols + 2 * ld, OH, OW, True, False)  # tap (0, 2)
    _shift_row(p01, cols + 3 * ld, OH, OW, False, True)  # tap (1, 0)
    _shift_row(p11, cols + 6 * ld, OH, OW, False, True)  # tap (2, 0)


cdef void _col2im_plane_s2(floating* cols, floating* x, Py_ssize_t ld, Py_ssize_t OH,
                           Py_ssize_t OW) noexcept nogil:
    """_col2im_plane for _is_s2_3x3, the adjoint of _im2col_plane_s2: the shifted taps' rows added into the
    phase rows (cols is the column gradient, scratch, and is overwritten), then the phases interleaved into x
    (every element of the plane belongs to exactly one phase)."""
    cdef Py_ssize_t a, b, W = 2 * OW
    cdef floating* p00 = cols + 4 * ld
    cdef floating* p01 = cols + 5 * ld
    cdef floating* p10 = cols + 7 * ld
    cdef floating* p11 = cols + 8 * ld
    cdef floating* r0
    cdef floating* r1
    _shift_row_adjoint(cols, p11, OH, OW, True, True)
    _shift_row_adjoint(cols + ld, p10, OH, OW, True, False)
    _shift_row_adjoint(cols + 2 * ld, p11, OH, OW, True, False)
    _shift_row_adjoint(cols + 3 * ld, p01, OH, OW, False, True)
    _shift_row_adjoint(cols + 6 * ld, p11, OH, OW, False, True)
    for a in range(OH):
        r0 = x + 2 * a * W
        r1 = r0 + W
        for b in range(OW):
            r0[2 * b] = p00[a * OW + b]
            r0[2 * b + 1] = p01[a * OW + b]
            r1[2 * b] = p10[a * OW + b]
            r1[2 * b + 1] = p11[a * OW + b]


cdef inline void _im2col_chunk(const floating* x, floating* cols, Py_ssize_t m, Py_ssize_t C, Py_ssize_t H,
                               Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                               Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH,
                               Py_ssize_t OW) noexcept nogil:
    """cols (C*KH*KW, m*OH*OW) of the m samples at x."""
    cdef Py_ssize_t j, c, L = OH * OW, KK = KH * KW
    cdef bint s2 = _is_s2_3x3(H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    for j in range(m):
        for c in range(C):
            if s2:
                _im2col_plane_s2(x + (j * C + c) * H * W, cols + c * KK * m * L + j * L, m * L, OH, OW)
            else:
                _im2col_plane(x + (j * C + c) * H * W, cols + c * KK * m * L + j * L, m * L,
                              H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)


# Groups of at most SMALL_FILTERS filters whose columns are at most SMALL_DEPTH deep (depthwise: a 3x3 has
# 9 rows, 1 or 2 filters per group) skip the GEMM: at that size its packing costs as much as the products,
# while these row loops stream each row a few times. With more filters the GEMM's register blocking wins
# (1 -> 32 channels 3x3, one group: 5 ms by GEMM, 8 ms by rows).
cdef enum:
    SMALL_DEPTH = 16
    SMALL_FILTERS = 4

# Images of at least this many output positions get one GEMM per sample, straight into the output (wide
# enough for the micro-kernels); smaller ones one GEMM per chunk, then a layout move.
cdef enum:
    WIDE_ROWS = 256


cdef inline void _add_bias(floating* z, const floating* bias, Py_ssize_t F, Py_ssize_t L) noexcept nogil:
    """z[f, t] += bias[f] for one sample's (F, L) output."""
    cdef Py_ssize_t f, t
    cdef floating b
    for f in range(F):
        b = bias[f]
        for t in range(L):
            z[f * L + t] = z[f * L + t] + b


cdef void _rows_nn(Py_ssize_t M, Py_ssize_t K, Py_ssize_t n, const floating* a, const floating* b,
                   floating* c) noexcept nogil:
    """c (M, n) = a (M, K) @ b (K, n): each row of c a sum of K scaled rows of b, in order."""
    cdef Py_ssize_t i, p, j
    cdef floating* ci
    cdef const floating* bp
    cdef floating s
    for i in range(M):
        ci = c + i * n
        memset(ci, 0, n * sizeof(floating))
        for p in range(K):
            s = a[i * K + p]
            bp = b + p * n
            for j in range(n):
                ci[j] += s * bp[j]


cdef void _rows_tn(Py_ssize_t M, Py_ssize_t K, Py_ssize_t n, const floating* a, const floating* b,
                   floating* c) noexcept nogil:
    """c (K, n) = a (M, K)^T @ b (M, n)."""
    cdef Py_ssize_t i, p, j
    cdef floating* cp
    cdef const floating* bi
    cdef floating s
    for p in range(K):
        cp = c + p * n
        memset(cp, 0, n * sizeof(floating))
        for i in range(M):
            s = a[i * K + p]
            bi = b + i * n
            for j in range(n):
                cp[j] += s * bi[j]


cdef void _rows_nt_acc(Py_ssize_t M, Py_ssize_t K, Py_ssize_t n, const floating* a, const floating* b,
                       floating* c) noexcept nogil:
    """c (M, K) += a (M, n) @ b (K, n)^T: dot products of rows, four running sums each (in a fixed order)."""
    cdef Py_ssize_t i, p, j
    cdef const floating* ai
    cdef const floating* bp
    cdef floating s0, s1, s2, s3
    for i in range(M):
        ai = a + i * n
        for p in range(K):
            bp = b + p * n
            s0 = s1 = s2 = s3 = 0
            j = 0
            while j + 4 <= n:
                s0 = s0 + ai[j] * bp[j]
                s1 = s1 + ai[j + 1] * bp[j + 1]
                s2 = s2 + ai[j + 2] * bp[j + 2]
                s3 = s3 + ai[j + 3] * bp[j + 3]
                j = j + 4
            while j < n:
                s0 = s0 + ai[j] * bp[j]
                j = j + 1
            c[i * K + p] += (s0 + s1) + (s2 + s3)


def conv_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w2, const floating[::1] bias,
                 floating[:, :, ::1] z, floating[:, ::1] scratch, Py_ssize_t groups, Py_ssize_t chunk,
                 Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
                 Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW, floating[::1] kept=None):
    """z (N, F, OH*OW) = conv(x, w2 (F, C/G*KH*KW)) (+ bias), PH and PW the padding before (the output size
    bounds the padding after); scratch: one row of at least (C*KH*KW + F) * chunk * L elements per thread
    of the team, or F * chunk * L with `kept`: at least N * C*KH*KW * L elements where the columns of every
    chunk stay for conv_backward (chunk c's at c * chunk * C*KH*KW * L) instead of in the scratch."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = z.shape[1], L = OH * OW, K = C * KH * KW, Kg = K // groups, Fg = F // groups
    cdef Py_ssize_t nchunks = (N + chunk - 1) // chunk, ci, n0, m, g, j, f, t
    cdef bint has_bias = bias is not None
    cdef int err = 0
    cdef floating* cols
    cdef floating* rows
    cdef floating* dst
    cdef const floating* src
    cdef floating b
    cdef bint keep = kept is not None
    cdef int nt = min(team_size(nchunks), scratch.shape[0])
    with nogil:
        for ci in prange(nchunks, schedule="static", num_threads=nt):
            n0 = ci * chunk
            m = min(chunk, N - n0)
            if keep:
                cols = &kept[n0 * K * L]
                rows = &scratch[threadid(), 0]
            else:
                cols = &scratch[threadid(), 0]
                rows = cols + K * m * L
            _im2col_chunk(&x[n0, 0, 0, 0], cols, m, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
            if L >= WIDE_ROWS and not (Kg <= SMALL_DEPTH and Fg <= SMALL_FILTERS):
                # Wide images: one GEMM per sample and group, straight into z (no layout move).
                for j in range(m):
                    for g in range(groups):
                        err |= gemm(False, False, Fg, L, Kg, <floating>1, &w2[g * Fg, 0], Kg,
                                    cols + g * Kg * m * L + j * L, m * L, <floating>0, &z[n0 + j, g * Fg, 0], L)
                    if has_bias:
                        _add_bias(&z[n0 + j, 0, 0], &bias[0], F, L)
                continue
            for g in range(groups):
                if Kg <= SMALL_DEPTH and Fg <= SMALL_FILTERS:
                    _rows_nn(Fg, Kg, m * L, &w2[g * Fg, 0], cols + g * Kg * m * L, rows + g * Fg * m * L)
                else:
                    err |= gemm(False, False, Fg, m * L, Kg, <floating>1, &w2[g * Fg, 0], Kg,
                                cols + g * Kg * m * L, m * L, <floating>0, rows + g * Fg * m * L, m * L)
            for j in range(m):
                for f in range(F):
                    dst = &z[n0 + j, f, 0]
                    src = rows + f * m * L + j * L
                    b = bias[f] if has_bias else 0
                    for t in range(L):
                        dst[t] = src[t] + b
    if err:
        raise MemoryError("conv_forward: could not allocate the GEMM packing buffers")


def conv_backward(const floating[:, :, :, ::1] x, const floating[:, ::1] w2, const floating[:, :, ::1] delta,
                  floating[:, ::1] gw, floating[::1] gb, floating[:, :, :, ::1] dx, floating[:, ::1] scratch,
                  floating[:, ::1] partial, Py_ssize_t groups, Py_ssize_t chunk,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW, const floating[::1] kept=None):
    """gw (F, C/G*KH*KW) += dC/dw, gb (F,) += dC/db (when not None), dx = dC/dx (when not None), from x and
    delta (N, F, L). scratch: one row of (2*C*KH*KW + F) * chunk * L elements per thread, or (C*KH*KW + F)
    * chunk * L with `kept`, the columns conv_forward kept (then x is not read: no im2col); partial: at least
    min(NSLOTS, number of chunks) rows of F*(C/G*KH*KW + 1) elements (the slots' sums)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = delta.shape[1], L = OH * OW, K = C * KH * KW, Kg = K // groups, Fg = F // groups
    cdef Py_ssize_t KK = KH * KW
    cdef Py_ssize_t nchunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t nslots = min(<Py_ssize_t>_NSLOTS, nchunks), s, ci, n0, m, g, j, f, c
    cdef Py_ssize_t wsize = F * Kg, psize = wsize + F
    cdef bint has_bias = gb is not None, want_dx = dx is not None
    cdef bint s2 = _is_s2_3x3(H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    cdef int err = 0
    cdef bint keep = kept is not None
    cdef const floating* cols
    cdef floating* own
    cdef floating* dt
    cdef floating* dcols
    cdef floating* pw
    cdef floating* pb
    cdef int nt = min(team_size(nslots), scratch.shape[0])
    with nogil:
        for s in prange(nslots, schedule="static", num_threads=nt):
            own = &scratch[threadid(), 0]
            dt = own + (0 if keep else K * chunk * L)
            dcols = dt + F * chunk * L
            pw = &partial[s, 0]
            pb = pw + wsize
            memset(pw, 0, psize * sizeof(floating))
            for ci in range(s * nchunks // nslots, (s + 1) * nchunks // nslots):
                n0 = ci * chunk
                m = min(chunk, N - n0)
                if keep:
                    cols = &kept[n0 * K * L]
                else:
                    _im2col_chunk(&x[n0, 0, 0, 0], own, m, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
                    cols = own
                for j in range(m):                      # delta (m, F, L) -> dt (F, m*L)
                    for f in range(F):
                        copy_row(dt + f * m * L + j * L, &delta[n0 + j, f, 0], L)
                if has_bias:
                    for f in range(F):
                        pb[f] += _sum(dt + f * m * L, m * L)
                for g in range(groups):
                    if Kg <= SMALL_DEPTH and Fg <= SMALL_FILTERS:
                        _rows_nt_acc(Fg, Kg, m * L, dt + g * Fg * m * L, cols + g * Kg * m * L, pw + g * Fg * Kg)
                        if want_dx:
                            _rows_tn(Fg, Kg, m * L, &w2[g * Fg, 0], dt + g * Fg * m * L, dcols + g * Kg * m * L)
                        continue
                    # dW_g += dt_g @ cols_g^T: rows of both contiguous along the sum, the NT kernel's case
                    err |= gemm_nt_acc(Fg, Kg, m * L, dt + g * Fg * m * L, m * L, cols + g * Kg * m * L, m * L,
                                       pw + g * Fg * Kg, Kg)
                    if want_dx:
                        # dcols_g = W_g^T @ dt_g
                        err |= gemm(True, False, Kg, m * L, Fg, <floating>1, &w2[g * Fg, 0], Kg,
                                    dt + g * Fg * m * L, m * L, <floating>0, dcols + g * Kg * m * L, m * L)
                if want_dx:
                    for j in range(m):
                        for c in range(C):
                            if s2:
                                _col2im_plane_s2(dcols + c * KK * m * L + j * L, &dx[n0 + j, c, 0, 0], m * L,
                                                 OH, OW)
                            else:
                                _col2im_plane(dcols + c * KK * m * L + j * L, &dx[n0 + j, c, 0, 0], m * L,
                                              H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
        _add_slots(&partial[0, 0], partial.shape[1], nslots, &gw[0, 0], wsize, &gb[0] if has_bias else NULL,
                   F if has_bias else 0)
    if err:
        raise MemoryError("conv_backward: could not allocate the GEMM packing buffers")


cdef void _add_slots(const floating* partial, Py_ssize_t ld, Py_ssize_t nslots, floating* gw, Py_ssize_t wsize,
                     floating* gb, Py_ssize_t nb) noexcept nogil:
    """gw += the slots' sums of dW (wsize values), gb += those of db (the nb values after them, nb = 0 without
    a bias): each element's nslots partial sums (rows of `partial`, ld apart) added in slot order, each
    element by one thread."""
    cdef Py_ssize_t e, s
    cdef floating acc
    for e in prange(wsize + nb, schedule="static", num_threads=team_size(wsize + nb)):
        acc = 0
        for s in range(nslots):
            acc = acc + partial[s * ld + e]
        if e < wsize:
            gw[e] += acc
        else:
            gb[e - wsize] += acc


# ---- 1x1 stride-1 unpadded convolutions: GEMMs on the NCHW arrays themselves ------------------------------
#
# A sample's (C, H*W) plane is already its im2col columns, so no columns are built: z_n = w @ x_n per sample,
# run as gemm_batch's one product over a chunk's samples side by side (the weight packed once a chunk, the
# micro-tiles across samples), reading x and writing z in place; the input gradient likewise, dx_n = w^T @
# delta_n; the weight gradient sums delta_n @ x_n^T over the batch. No scratch, no layout moves: at 128 -> 128
# channels on 7x7, the im2col copy, the moves to and from the GEMM's (F, chunk * L) layout and col2im's copy
# were ~20% of the step's CPU time (perf, float64, two threads).

def pointwise_forward(const floating[:, :, ::1] x, const floating[:, ::1] w2, const floating[::1] bias,
                      floating[:, :, ::1] z, Py_ssize_t groups, Py_ssize_t chunk, floating[::1] kept=None):
    """z (N, F, L) = w2 (F, C/G) @ x (N, C, L) per sample and group (+ bias), chunks of `chunk` samples
    split between the threads. With `kept` (at least N*C*L elements), each chunk of x is first copied there,
    for the weight gradient (the copy, made by the chunk's thread, is what its GEMM then reads from cache)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], F = z.shape[1]
    cdef Py_ssize_t Cg = C // groups, Fg = F // groups, nchunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t ci, n0, m, g, j
    cdef bint has_bias = bias is not None
    cdef const floating* xs
    cdef int err = 0
    with nogil:
        for ci in prange(nchunks, schedule="static", num_threads=team_size(nchunks)):
            n0 = ci * chunk
            m = min(chunk, N - n0)
            xs = &x[n0, 0, 0]
            if kept is not None:
                memcpy(&kept[n0 * C * L], xs, m * C * L * sizeof(floating))
                xs = &kept[n0 * C * L]
            for g in range(groups):
                err |= gemm_batch(False, Fg, L, Cg, m, <floating>1, &w2[g * Fg, 0], Cg, xs + g * Cg * L, L,
                                  C * L, <floating>0, &z[n0, g * Fg, 0], L, F * L)
            if has_bias:
                for j in range(n0, n0 + m):
                    _add_bias(&z[j, 0, 0], &bias[0], F, L)
    if err:
        raise MemoryError("pointwise_forward: could not allocate the GEMM packing buffers")


def pointwise_backward(const floating[:, :, ::1] x, const floating[:, ::1] w2, const floating[:, :, ::1] delta,
                       floating[:, ::1] gw, floating[::1] gb, floating[:, :, ::1] dx, floating[:, ::1] partial,
                       Py_ssize_t groups, Py_ssize_t chunk):
    """gw (F, C/G) += dC/dw = sum_n delta_n @ x_n^T, gb (F,) += dC/db (when not None), dx (N, C, L) = dC/dx
    = w^T @ delta_n (when not None), from x (N, C, L) and delta (N, F, L). The chunks' sums go into
    min(NSLOTS, chunks) rows of `partial` (at least F*(C/G + 1) elements each), slot s taking a fixed range of
    chunks, and are then added in slot order: the result is the same for any thread count."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], F = delta.shape[1]
    cdef Py_ssize_t Cg = C // groups, Fg = F // groups, nchunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t nslots = min(<Py_ssize_t>_NSLOTS, nchunks), s, c0, ci, n0, m, g, j, f
    cdef Py_ssize_t wsize = F * Cg
    cdef bint has_bias = gb is not None, want_dx = dx is not None
    cdef floating* pw
    cdef floating acc
    cdef int err = 0
    with nogil:
        for s in prange(nslots, schedule="static", num_threads=team_size(nslots)):
            pw = &partial[s, 0]
            c0 = s * nchunks // nslots       # the slot's first chunk writes its sums, the others add to them
            for ci in range(c0, (s + 1) * nchunks // nslots):
                n0 = ci * chunk
                m = min(chunk, N - n0)
                if has_bias:
                    for f in range(F):
                        acc = 0 if ci == c0 else pw[wsize + f]
                        for j in range(n0, n0 + m):
                            acc = acc + _sum(&delta[j, f, 0], L)
                        pw[wsize + f] = acc
                for g in range(groups):
                    # dW_g = sum over the chunk's samples of delta_g @ x_g^T (+ the slot's sum so far), both
                    # rows contiguous along the positions summed over
                    err |= gemm_nt_batch(Fg, Cg, L, m, &delta[n0, g * Fg, 0], L, F * L, &x[n0, g * Cg, 0], L,
                                         C * L, 0 if ci == c0 else 1, pw + g * Fg * Cg, Cg)
                if want_dx:
                    for g in range(groups):
                        err |= gemm_batch(True, Cg, L, Fg, m, <floating>1, &w2[g * Fg, 0], Cg, &delta[n0, g * Fg, 0],
                                          L, F * L, <floating>0, &dx[n0, g * Cg, 0], L, C * L)
        _add_slots(&partial[0, 0], partial.shape[1], nslots, &gw[0, 0], wsize, &gb[0] if has_bias else NULL,
                   F if has_bias else 0)
    if err:
        raise MemoryError("pointwise_backward: could not allocate the GEMM packing buffers")



# ---- Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (src_c/winograd.c) ---------------------------------
#
# Forward, and the input gradient (itself a 3x3 stride-1 convolution of delta with the flipped kernel,
# channels transposed, padding 2 - p), as 16 GEMMs per chunk of samples on transformed tiles: 2.25x fewer
# multiplies than im2col + GEMM. A thread takes whole chunks, each with its own scratch row, and the C kernel
# calls the GEMM serially (inside the region the GEMM keeps to one thread).

from libc.stddef cimport ptrdiff_t
from cnn_core._config cimport cnn_row_share, run_team, simd_level

cdef extern from "winograd.h" nogil:
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    ctypedef int (*cnn_sgemm_fn)(int, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, float, const float *, ptrdiff_t,
                                 const float *, ptrdiff_t, float, float *, ptrdiff_t) noexcept nogil
    ctypedef int (*cnn_dgemm_fn)(int, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, double, const double *, ptrdiff_t,
                                 const double *, ptrdiff_t, double, double *, ptrdiff_t) noexcept nogil
    ctypedef int (*cnn_sgemm_nt_fn)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *,
                                    ptrdiff_t, float *, ptrdiff_t) noexcept nogil
    ctypedef int (*cnn_dgemm_nt_fn)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t, const double *,
                                    ptrdiff_t, double *, ptrdiff_t) noexcept nogil
    void cnn_wino_init(cnn_simd_level_fn simd_level)
    void cnn_swino_weights(const float *w, ptrdiff_t F, ptrdiff_t C, int flip, float *u, ptrdiff_t p0,
                           ptrdiff_t p1)
    void cnn_dwino_weights(const double *w, ptrdiff_t F, ptrdiff_t C, int flip, double *u, ptrdiff_t p0,
                           ptrdiff_t p1)
    ptrdiff_t cnn_wino_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW)
    ptrdiff_t cnn_wino_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW)
    int cnn_swino_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                          ptrdiff_t xs_c, ptrdiff_t F, const float *u, const float *bias, ptrdiff_t ph,
                          ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                          float *keep, float *scratch, cnn_sgemm_fn gemm)
    int cnn_dwino_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                          ptrdiff_t xs_c, ptrdiff_t F, const double *u, const double *bias, ptrdiff_t ph,
                          ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                          double *keep, double *scratch, cnn_dgemm_fn gemm)

    int cnn_swino_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                        ptrdiff_t xs_c, ptrdiff_t F, const float *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                        ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *du, const float *kept, float *scratch,
                        cnn_sgemm_nt_fn gemm_nt)
    int cnn_dwino_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                        ptrdiff_t xs_c, ptrdiff_t F, const double *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                        ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *du, const double *kept, double *scratch,
                        cnn_dgemm_nt_fn gemm_nt)
    void cnn_swino_dw_finish(const float *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C,
                             float *gw, ptrdiff_t q0, ptrdiff_t q1)
    void cnn_dwino_dw_finish(const double *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C,
                             double *gw, ptrdiff_t q0, ptrdiff_t q1)
    # F(4x4, 3x3): the same signatures on 36 transformed positions
    void cnn_swino4_weights(const float *w, ptrdiff_t F, ptrdiff_t C, int flip, float *u, ptrdiff_t p0,
                            ptrdiff_t p1)
    void cnn_dwino4_weights(const double *w, ptrdiff_t F, ptrdiff_t C, int flip, double *u, ptrdiff_t p0,
                            ptrdiff_t p1)
    ptrdiff_t cnn_wino4_scratch(ptrdiff_t n, ptrdiff_t C, ptrdiff_t F, ptrdiff_t OH, ptrdiff_t OW)
    ptrdiff_t cnn_wino4_vsize(ptrdiff_t n, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW)
    int cnn_swino4_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                           ptrdiff_t xs_c, ptrdiff_t F, const float *u, const float *bias, ptrdiff_t ph,
                           ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                           float *keep, float *scratch, cnn_sgemm_fn gemm)
    int cnn_dwino4_conv3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                           ptrdiff_t xs_c, ptrdiff_t F, const double *u, const double *bias, ptrdiff_t ph,
                           ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *y, ptrdiff_t ys_n, ptrdiff_t ys_f,
                           double *keep, double *scratch, cnn_dgemm_fn gemm)
    int cnn_swino4_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const float *x, ptrdiff_t xs_n,
                         ptrdiff_t xs_c, ptrdiff_t F, const float *dy, ptrdiff_t ys_n, ptrdiff_t ys_f, ptrdiff_t ph,
                         ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, float *du, const float *kept, float *scratch,
                         cnn_sgemm_nt_fn gemm_nt)
    int cnn_dwino4_dw3x3(ptrdiff_t n, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, const double *x, ptrdiff_t xs_n,
                         ptrdiff_t xs_c, ptrdiff_t F, const double *dy, ptrdiff_t ys_n, ptrdiff_t ys_f,
                         ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, double *du, const double *kept,
                         double *scratch, cnn_dgemm_nt_fn gemm_nt)
    void cnn_swino4_dw_finish(const float *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C,
                              float *gw, ptrdiff_t q0, ptrdiff_t q1)
    void cnn_dwino4_dw_finish(const double *du, ptrdiff_t nslots, ptrdiff_t ss, ptrdiff_t F, ptrdiff_t C,
                              double *gw, ptrdiff_t q0, ptrdiff_t q1)

cnn_wino_init(simd_level)


cdef int _sgemm(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a,
                ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) noexcept nogil:
    return gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef int _dgemm(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha, const double *a,
                ptrdiff_t lda, const double *b, ptrdiff_t ldb, double beta, double *c, ptrdiff_t ldc) noexcept nogil:
    return gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef int _sgemm_nt(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,
                   ptrdiff_t ldb, float *c, ptrdiff_t ldc) noexcept nogil:
    return gemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)


cdef int _dgemm_nt(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda, const double *b,
                   ptrdiff_t ldb, double *c, ptrdiff_t ldc) noexcept nogil:
    return gemm_nt_acc(m, n, k, a, lda, b, ldb, c, ldc)


def wino_scratch(Py_ssize_t n, Py_ssize_t C, Py_ssize_t F, Py_ssize_t OH, Py_ssize_t OW, int tile=2) -> int:
    """Scratch elements wino_conv3x3 / wino_dw3x3 need per thread for chunks of n samples, for F(tile x tile,
    3x3) (tile 2 or 4)."""
    return cnn_wino4_scratch(n, C, F, OH, OW) if tile == 4 else cnn_wino_scratch(n, C, F, OH, OW)


def wino_kept_size(Py_ssize_t n, Py_ssize_t C, Py_ssize_t OH, Py_ssize_t OW, int tile=2) -> int:
    """Elements of one chunk of n samples' transformed input tiles, V (16 or 36, C, T), in wino_conv3x3's
    `kept` (F(tile x tile, 3x3), tile 2 or 4)."""
    return cnn_wino4_vsize(n, C, OH, OW) if tile == 4 else cnn_wino_vsize(n, C, OH, OW)


# One call of the weight transform (wino_weights) or of its adjoint (wino_dw3x3's finish) for the team:
# thread t takes its row share (threads.h's cnn_row_share) of `rows`: rows of u's matrices (P of them), or
# filters (F: the finish's pairs f*C + c, whole filters a thread, so each thread writes the rows of gw the
# optimizer's step gives it).
ctypedef struct _PairsJob:
    const void *src                  # w, or the first of the weight gradient's partial sums du
    void *dst                        # u, or gw
    Py_ssize_t F, C, rows
    Py_ssize_t nslots, ss            # the finish: partial sums, ss elements apart
    int finish, flip, four, itemsize, nt


cdef void _pairs_share(void *arg, int t) noexcept nogil:
    cdef _PairsJob *j = <_PairsJob *>arg
    cdef Py_ssize_t lo = cnn_row_share(j.rows, j.nt, t, 1), hi = cnn_row_share(j.rows, j.nt, t + 1, 1)
    if j.finish:
        lo, hi = lo * j.C, hi * j.C
        if j.itemsize == 4:
            if j.four:
                cnn_swino4_dw_finish(<const float *>j.src, j.nslots, j.ss, j.F, j.C, <float *>j.dst, lo, hi)
            else:
                cnn_swino_dw_finish(<const float *>j.src, j.nslots, j.ss, j.F, j.C, <float *>j.dst, lo, hi)
        elif j.four:
            cnn_dwino4_dw_finish(<const double *>j.src, j.nslots, j.ss, j.F, j.C, <double *>j.dst, lo, hi)
        else:
            cnn_dwino_dw_finish(<const double *>j.src, j.nslots, j.ss, j.F, j.C, <double *>j.dst, lo, hi)
    elif j.itemsize == 4:
        if j.four:
            cnn_swino4_weights(<const float *>j.src, j.F, j.C, j.flip, <float *>j.dst, lo, hi)
        else:
            cnn_swino_weights(<const float *>j.src, j.F, j.C, j.flip, <float *>j.dst, lo, hi)
    elif j.four:
        cnn_dwino4_weights(<const double *>j.src, j.F, j.C, j.flip, <double *>j.dst, lo, hi)
    else:
        cnn_dwino_weights(<const double *>j.src, j.F, j.C, j.flip, <double *>j.dst, lo, hi)


cdef void _run_pairs(const void *src, void *dst, Py_ssize_t F, Py_ssize_t C, bint finish, bint flip, bint four,
                     int itemsize, Py_ssize_t nslots=1, Py_ssize_t ss=0) noexcept nogil:
    """_pairs_share on a team of one thread per CNN_WINO_WEIGHT_MIN_PAIRS (the transform) or
    CNN_WINO_FINISH_MIN_PAIRS (the finish, whose src holds nslots partial sums ss elements apart) filter-channel
    pairs, at most one per row: each element comes from its own pair, so every split gives the same bits."""
    cdef _PairsJob j
    j.src, j.dst, j.F, j.C, j.nslots, j.ss = src, dst, F, C, nslots, ss
    j.rows = C if flip and not finish else F
    j.finish, j.flip, j.four, j.itemsize = finish, flip, four, itemsize
    j.nt = team_size(F * C // (CNN_WINO_FINISH_MIN_PAIRS if finish else CNN_WINO_WEIGHT_MIN_PAIRS))
    if j.nt > j.rows:
        j.nt = <int>j.rows
    run_team(_pairs_share, &j, j.nt)


def wino_weights(const floating[:, :, :, ::1] w, floating[:, :, ::1] u, bint flip):
    """u (16, F, C) = G w G^T per filter and channel of w (F, C, 3, 3), F(2x2, 3x3)'s, or u (36, F, C),
    F(4x4, 3x3)'s (the first axis of u says which); with flip, u (16 or 36, C, F) for the input gradient (the
    kernel w[f, c, 2 - i, 2 - j], channels transposed). The rows of u's matrices are split between a team
    from CNN_WINO_WEIGHT_MIN_PAIRS filter-channel pairs a thread."""
    with nogil:
        _run_pairs(&w[0, 0, 0, 0], &u[0, 0, 0], w.shape[0], w.shape[1], False, flip, u.shape[0] == 36,
                   sizeof(floating))


cdef Py_ssize_t _kept_per_chunk(object kept, Py_ssize_t nchunks, Py_ssize_t chunk, Py_ssize_t C, Py_ssize_t OH,
                                Py_ssize_t OW, int tile, str who) except -1:
    """Elements per chunk in a `kept` buffer of transformed input tiles (0 without one), checked to hold
    every chunk's."""
    if kept is None:
        return 0
    cdef Py_ssize_t per = wino_kept_size(chunk, C, OH, OW, tile)
    if len(kept) < nchunks * per:
        raise ValueError(f"{who}: kept: expected at least {nchunks * per} elements, got {len(kept)}")
    return per


def wino_conv3x3(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u, const floating[::1] bias,
                 floating[:, :, :, ::1] y, floating[:, ::1] scratch, Py_ssize_t chunk, Py_ssize_t PH,
                 Py_ssize_t PW, floating[::1] kept=None):
    """y (N, F, OH, OW) = the 3x3 stride-1 convolution of x (N, C, H, W), padding PH, PW before, with the
    kernel transformed into u (+ bias when not None), by Winograd F(2x2, 3x3) when u is (16, F, C) or
    F(4x4, 3x3) when it is (36, F, C), chunks of `chunk` samples per thread; scratch: one row of
    wino_scratch(chunk, C, F, OH, OW, tile) elements per thread. kept: None, or at least chunks *
    wino_kept_size(chunk, C, OH, OW, tile) elements where every chunk's transformed input tiles stay (chunk
    c's at c * wino_kept_size(...)) for wino_dw3x3 to read instead of transforming x again."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = y.shape[1], OH = y.shape[2], OW = y.shape[3]
    cdef Py_ssize_t nchunks = (N + chunk - 1) // chunk, ci, n0, m
    cdef const floating* bp = NULL
    if bias is not None:
        bp = &bias[0]
    cdef int err = 0
    cdef bint four = u.shape[0] == 36
    cdef Py_ssize_t per = _kept_per_chunk(kept, nchunks, chunk, C, OH, OW, 4 if four else 2, "wino_conv3x3")
    cdef floating* kp
    cdef int nt = min(team_size(nchunks), scratch.shape[0])
    with nogil:
        # Dynamic: chunks are independent (no sums across them), so the order they are taken in changes no
        # result, and a thread that lost its core for a while does not hold the others up.
        for ci in prange(nchunks, schedule="dynamic", num_threads=nt):
            n0 = ci * chunk
            m = min(chunk, N - n0)
            kp = NULL if per == 0 else &kept[ci * per]
            if four:
                if floating is float:
                    err |= cnn_swino4_conv3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &u[0, 0, 0], bp,
                                              PH, PW, OH, OW, &y[n0, 0, 0, 0], F * OH * OW, OH * OW, kp,
                                              &scratch[threadid(), 0], _sgemm)
                else:
                    err |= cnn_dwino4_conv3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &u[0, 0, 0], bp,
                                              PH, PW, OH, OW, &y[n0, 0, 0, 0], F * OH * OW, OH * OW, kp,
                                              &scratch[threadid(), 0], _dgemm)
            elif floating is float:
                err |= cnn_swino_conv3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &u[0, 0, 0], bp,
                                         PH, PW, OH, OW, &y[n0, 0, 0, 0], F * OH * OW, OH * OW, kp,
                                         &scratch[threadid(), 0], _sgemm)
            else:
                err |= cnn_dwino_conv3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &u[0, 0, 0], bp,
                                         PH, PW, OH, OW, &y[n0, 0, 0, 0], F * OH * OW, OH * OW, kp,
                                         &scratch[threadid(), 0], _dgemm)
    if err:
        raise MemoryError("wino_conv3x3: could not allocate the GEMM packing buffers")



def wino_dw3x3(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] delta, floating[:, :, :, ::1] gw,
               floating[::1] gb, floating[:, ::1] scratch, floating[:, ::1] partial, Py_ssize_t chunk,
               Py_ssize_t PH, Py_ssize_t PW, int tile=2, const floating[::1] kept=None):
    """gw (F, C, 3, 3) += dC/dw and gb (F,) += dC/db (when not None) of the 3x3 stride-1 convolution of x
    (N, C, H, W), padding PH, PW before, whose output gradient is delta (N, F, OH, OW), by Winograd
    F(tile x tile, 3x3) (tile 2 or 4) in the transformed domain (chunks of `chunk` samples). As conv_backward,
    the chunks' sums go into min(NSLOTS, chunks) rows of `partial` (XI*F*C + F elements each, XI = 16 or 36),
    slot s taking a fixed range of chunks in order, then the slots are added in order: the same arithmetic
    for any thread count. scratch:
    one row of wino_scratch(chunk, C, F, OH, OW, tile) elements per thread. kept: None, or the transformed
    input tiles a wino_conv3x3 of this x with the same chunk left in its `kept` (x is then not read)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = delta.shape[1], OH = delta.shape[2], OW = delta.shape[3], L = OH * OW
    cdef Py_ssize_t nchunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t nslots = min(<Py_ssize_t>_NSLOTS, nchunks), s, ci, n0, m, f, j
    cdef bint four = tile == 4
    cdef Py_ssize_t usize = (36 if four else 16) * F * C, psize = usize + F
    cdef bint has_bias = gb is not None
    cdef int err = 0
    cdef floating* pu
    cdef floating* pb
    cdef floating acc
    cdef Py_ssize_t per = _kept_per_chunk(kept, nchunks, chunk, C, OH, OW, tile, "wino_dw3x3")
    cdef const floating* kp
    cdef int nt = min(team_size(nslots), scratch.shape[0])
    with nogil:
        for s in prange(nslots, schedule="static", num_threads=nt):
            pu = &partial[s, 0]
            pb = pu + usize
            memset(pu, 0, psize * sizeof(floating))
            for ci in range(s * nchunks // nslots, (s + 1) * nchunks // nslots):
                n0 = ci * chunk
                m = min(chunk, N - n0)
                kp = NULL if per == 0 else &kept[ci * per]
                if four:
                    if floating is float:
                        err |= cnn_swino4_dw3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F,
                                                &delta[n0, 0, 0, 0], F * L, L, PH, PW, OH, OW, pu,
                                                kp, &scratch[threadid(), 0], _sgemm_nt)
                    else:
                        err |= cnn_dwino4_dw3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F,
                                                &delta[n0, 0, 0, 0], F * L, L, PH, PW, OH, OW, pu,
                                                kp, &scratch[threadid(), 0], _dgemm_nt)
                elif floating is float:
                    err |= cnn_swino_dw3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &delta[n0, 0, 0, 0],
                                           F * L, L, PH, PW, OH, OW, pu, kp, &scratch[threadid(), 0], _sgemm_nt)
                else:
                    err |= cnn_dwino_dw3x3(m, C, H, W, &x[n0, 0, 0, 0], C * H * W, H * W, F, &delta[n0, 0, 0, 0],
                                           F * L, L, PH, PW, OH, OW, pu, kp, &scratch[threadid(), 0], _dgemm_nt)
                if has_bias:
                    for f in range(F):
                        acc = 0
                        for j in range(m):
                            acc = acc + _sum(&delta[n0 + j, f, 0, 0], L)
                        pb[f] += acc
        # The slots' sums added in slot order: db's here, dU's as the last step reads them.
        if has_bias:
            for f in range(F):
                acc = partial[0, usize + f]
                for s in range(1, nslots):
                    acc = acc + partial[s, usize + f]
                gb[f] += acc
    if err:
        raise MemoryError("wino_dw3x3: could not allocate the GEMM packing buffers")
    with nogil:
        _run_pairs(&partial[0, 0], &gw[0, 0, 0, 0], F, C, True, False, four, sizeof(floating), nslots,
                   partial.shape[1])
