# distutils: sources = src_c/activations.c
# distutils: depends = src_c/activations.h src_c/cpu.h
"""The time loops of the recurrent layers (Elman RNN, LSTM, GRU), forward and backpropagation through time.

The layer computes the input projection of every step with one GEMM before calling these loops, and the
weight gradients with one GEMM each after them; what is left here is what must run step by step: the
recurrent product h_{t-1} W_hh^T (the blocked C GEMM of _gemm, called from nogil code) and the gate math of
each step (the vectorized sigmoid/tanh loops of src_c/activations.c on each row's gate blocks, then plain
loops the compiler vectorizes). Validation and allocation live in recurrent.py.

Layouts, time-major and C-contiguous, H the hidden size, N the batch, T the steps:
  hs (T+1, N, H): hs[0] = h_0 (set by the caller), hs[t+1] = h_t written here; cs likewise for the LSTM cell.
  gates (T, N, G*H): on entry the input projection x_t W_ih^T + biases; on exit the activated gates, in
  PyTorch's order (LSTM i, f, g, o; GRU r, z, n), kept for the backward pass.
"""
from cython cimport floating

from cnn_core._config cimport simd_level
from cnn_core.kernels._activations cimport (CNN_TANH, CNN_RELU, CNN_SIGMOID, cnn_act_t, cnn_act_init,
                                            cnn_act_forward_f32, cnn_act_forward_f64,
                                            cnn_act_backward_f32, cnn_act_backward_f64)
from cnn_core.kernels._gemm cimport gemm, gemm_nt_acc


# This module links its own copy of the activation loops: it reads the same process-wide SIMD level.
cnn_act_init(simd_level)

# The Elman RNN's nonlinearities (the values the layer passes as `op`).
OPS = {"tanh": CNN_TANH, "relu": CNN_RELU}


cdef inline void _act(cnn_act_t op, const floating *z, floating *a, Py_ssize_t n) noexcept nogil:
    """a = sigma(z) over n contiguous elements (a may be z)."""
    if floating is float:
        cnn_act_forward_f32(op, z, a, n, 1.0)
    else:
        cnn_act_forward_f64(op, z, a, n, 1.0)


cdef inline void _act_backward(cnn_act_t op, const floating *dy, const floating *a, floating *out,
                               Py_ssize_t n) noexcept nogil:
    """out = dy * sigma'(z) from a = sigma(z) (out may be dy)."""
    if floating is float:
        cnn_act_backward_f32(op, dy, a, out, n, 1.0)
    else:
        cnn_act_backward_f64(op, dy, a, out, n, 1.0)


cdef inline int _recurrent_product(const floating *h, const floating[:, ::1] w_hh, floating *out,
                                   Py_ssize_t n) noexcept nogil:
    """out += h @ w_hh.T: h (n, H), w_hh (G*H, H), out (n, G*H); both operands have H contiguous, the NT
    product gemm_nt_acc takes without packing where the SIMD level has its dot-product kernel."""
    cdef Py_ssize_t gh = w_hh.shape[0], hid = w_hh.shape[1]
    return gemm_nt_acc(n, gh, hid, h, hid, &w_hh[0, 0], hid, out, gh)


cdef inline int _back_product(const floating *d, const floating[:, ::1] w_hh, floating beta, floating *out,
                              Py_ssize_t n) noexcept nogil:
    """out = d @ w_hh + beta * out: d (n, G*H), w_hh (G*H, H), out (n, H): dC/dh_{t-1} from the gate deltas."""
    cdef Py_ssize_t gh = w_hh.shape[0], hid = w_hh.shape[1]
    return gemm(False, False, n, hid, gh, <floating>1, d, gh, &w_hh[0, 0], hid, beta, out, hid)


cdef inline void _raise_if(int err, str name):
    if err:
        raise MemoryError(f"{name}: could not allocate the GEMM's packing buffers")


# ---- Elman RNN: h_t = sigma(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T) ----------------------------------------

def rnn_forward(int op, floating[:, :, ::1] gates, const floating[:, ::1] w_hh, floating[:, :, ::1] hs):
    """gates (T, N, H): the input projection (biases included), left holding the pre-activations z_t;
    hs (T+1, N, H): hs[0] = h_0 read, hs[t+1] = sigma(z_t) written. `op` a value of OPS."""
    cdef Py_ssize_t t, steps = gates.shape[0], n = gates.shape[1], hid = gates.shape[2]
    cdef int err = 0
    with nogil:
        for t in range(steps):
            err |= _recurrent_product(&hs[t, 0, 0], w_hh, &gates[t, 0, 0], n)
            _act(<cnn_act_t>op, &gates[t, 0, 0], &hs[t + 1, 0, 0], n * hid)
    _raise_if(err, "rnn_forward")


def rnn_backward(int op, const floating[:, :, ::1] d_hs, const floating[:, :, ::1] hs,
                 const floating[:, ::1] w_hh, floating[:, :, ::1] d_gates, floating[:, ::1] dh):
    """Backpropagation through time of rnn_forward.

    d_hs (T, N, H): dC/dh_t from outside the recurrence (the layer's output gradient); hs: forward's;
    dh (N, H): dC/dh_T from the final state on entry, dC/dh_0 on exit; d_gates (T, N, H) receives
    delta_t = dC/dz_t = (d_hs[t] + delta_{t+1} W_hh) * sigma'(z_t).
    """
    cdef Py_ssize_t t, i, steps = d_hs.shape[0], n = d_hs.shape[1], hid = d_hs.shape[2], nh = n * hid
    cdef floating *d
    cdef int err = 0
    with nogil:
        for t in range(steps - 1, -1, -1):
            d = &d_gates[t, 0, 0]
            for i in range(nh):
                d[i] = (&d_hs[t, 0, 0])[i] + (&dh[0, 0])[i]
            _act_backward(<cnn_act_t>op, d, &hs[t + 1, 0, 0], d, nh)
            err |= _back_product(d, w_hh, 0, &dh[0, 0], n)
    _raise_if(err, "rnn_backward")


# ---- LSTM --------------------------------------------------------------------------------------------------
# i = s(.), f = s(.), g = tanh(.), o = s(.) of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (blocks of H, in order)
# c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

def lstm_forward(floating[:, :, ::1] gates, const floating[:, ::1] w_hh, floating[:, :, ::1] hs,
                 floating[:, :, ::1] cs, floating[:, :, ::1] tanh_c):
    """gates (T, N, 4H): input projection in, activated (i, f, g, o) out; hs, cs (T+1, N, H): [0] read,
    [t+1] written; tanh_c (T, N, H) receives tanh(c_t) (backward reads it)."""
    cdef Py_ssize_t t, b, j, steps = gates.shape[0], n = gates.shape[1], hid = hs.shape[2]
    cdef floating *row
    cdef floating *c_prev
    cdef floating *c_new
    cdef floating *tc
    cdef floating *h_new
    cdef int err = 0
    with nogil:
        for t in range(steps):
            err |= _recurrent_product(&hs[t, 0, 0], w_hh, &gates[t, 0, 0], n)
            for b in range(n):
                row = &gates[t, b, 0]
                _act(CNN_SIGMOID, row, row, 2 * hid)               # i, f
                _act(CNN_TANH, row + 2 * hid, row + 2 * hid, hid)  # g
                _act(CNN_SIGMOID, row + 3 * hid, row + 3 * hid, hid)  # o
                c_prev, c_new, tc, h_new = &cs[t, b, 0], &cs[t + 1, b, 0], &tanh_c[t, b, 0], &hs[t + 1, b, 0]
                for j in range(hid):
                    c_new[j] = row[hid + j] * c_prev[j] + row[j] * row[2 * hid + j]
                _act(CNN_TANH, c_new, tc, hid)
                for j in range(hid):
                    h_new[j] = row[3 * hid + j] * tc[j]
    _raise_if(err, "lstm_forward")


def lstm_backward(const floating[:, :, ::1] d_hs, const floating[:, :, ::1] gates, const floating[:, :, ::1] cs,
                  const floating[:, :, ::1] tanh_c, const floating[:, ::1] w_hh, floating[:, :, ::1] d_gates,
                  floating[:, ::1] dh, floating[:, ::1] dc):
    """Backpropagation through time of lstm_forward.

    d_hs (T, N, H): dC/dh_t from outside the recurrence; gates, cs, tanh_c: forward's; dh, dc (N, H):
    dC/dh_T, dC/dc_T on entry, dC/dh_0, dC/dc_0 on exit; d_gates (T, N, 4H) receives dC/d(pre-activation)
    of i, f, g, o. With dh_t the total dC/dh_t and dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh(c_t)^2):
      di = dc_t g i (1 - i), df = dc_t c_{t-1} f (1 - f), dg = dc_t i (1 - g^2), do = dh_t tanh(c_t) o (1 - o).
    """
    cdef Py_ssize_t t, b, j, steps = d_hs.shape[0], n = d_hs.shape[1], hid = d_hs.shape[2]
    cdef const floating *g
    cdef const floating *dho
    cdef const floating *tc
    cdef const floating *c_prev
    cdef floating *dg
    cdef floating *dhb
    cdef floating *dcb
    cdef floating dht, dct, gi, gf, gg, go, tcj
    cdef int err = 0
    with nogil:
        for t in range(steps - 1, -1, -1):
            for b in range(n):
                g, dg = &gates[t, b, 0], &d_gates[t, b, 0]
                dho, tc, c_prev = &d_hs[t, b, 0], &tanh_c[t, b, 0], &cs[t, b, 0]
                dhb, dcb = &dh[b, 0], &dc[b, 0]
                for j in range(hid):
                    gi, gf, gg, go, tcj = g[j], g[hid + j], g[2 * hid + j], g[3 * hid + j], tc[j]
                    dht = dho[j] + dhb[j]
                    dct = dcb[j] + dht * go * (1 - tcj * tcj)
                    dg[j] = dct * gg * gi * (1 - gi)
                    dg[hid + j] = dct * c_prev[j] * gf * (1 - gf)
                    dg[2 * hid + j] = dct * gi * (1 - gg * gg)
                    dg[3 * hid + j] = dht * tcj * go * (1 - go)
                    dcb[j] = dct * gf
            err |= _back_product(&d_gates[t, 0, 0], w_hh, 0, &dh[0, 0], n)
    _raise_if(err, "lstm_backward")


# ---- GRU ---------------------------------------------------------------------------------------------------
# r = s(xr + hr), z = s(xz + hz), n = tanh(xn + r * hn), h_t = (1 - z) * n + z * h_{t-1}, where
# x* = x_t W_i*^T + b_i* (the input projection) and h* = h_{t-1} W_h*^T + b_h*.

def gru_forward(floating[:, :, ::1] gates, const floating[:, ::1] w_hh, const floating[::1] b_hh,
                floating[:, :, ::1] hs, floating[:, :, ::1] hn, floating[:, ::1] work):
    """gates (T, N, 3H): input projection x_t W_ih^T + b_ih in, activated (r, z, n) out; b_hh (3H,) (zeros
    for a layer without bias); hs (T+1, N, H): [0] read, [t+1] written; hn (T, N, H) receives
    h_{t-1} W_hn^T + b_hn (backward reads it); work (N, 3H) scratch for b_hh + h_{t-1} W_hh^T."""
    cdef Py_ssize_t t, b, j, steps = gates.shape[0], n = gates.shape[1], hid = hs.shape[2]
    cdef floating *row
    cdef floating *hrow
    cdef floating *hnr
    cdef floating *h_prev
    cdef floating *h_new
    cdef floating zj
    cdef int err = 0
    with nogil:
        for t in range(steps):
            for b in range(n):  # work = b_hh + h_{t-1} W_hh^T
                for j in range(3 * hid):
                    work[b, j] = b_hh[j]
            err |= _recurrent_product(&hs[t, 0, 0], w_hh, &work[0, 0], n)
            for b in range(n):
                row, hrow, hnr = &gates[t, b, 0], &work[b, 0], &hn[t, b, 0]
                h_prev, h_new = &hs[t, b, 0], &hs[t + 1, b, 0]
                for j in range(2 * hid):
                    row[j] += hrow[j]
                _act(CNN_SIGMOID, row, row, 2 * hid)  # r, z
                for j in range(hid):
                    hnr[j] = hrow[2 * hid + j]
                    row[2 * hid + j] += row[j] * hnr[j]
                _act(CNN_TANH, row + 2 * hid, row + 2 * hid, hid)  # n
                for j in range(hid):
                    zj = row[hid + j]
                    h_new[j] = (1 - zj) * row[2 * hid + j] + zj * h_prev[j]
    _raise_if(err, "gru_forward")


def gru_backward(const floating[:, :, ::1] d_hs, const floating[:, :, ::1] gates, const floating[:, :, ::1] hs,
                 const floating[:, :, ::1] hn, const floating[:, ::1] w_hh, floating[:, :, ::1] d_x,
                 floating[:, :, ::1] d_h, floating[:, ::1] dh):
    """Backpropagation through time of gru_forward.

    d_hs (T, N, H): dC/dh_t from outside the recurrence; gates, hs, hn: forward's; dh (N, H): dC/dh_T on
    entry, dC/dh_0 on exit. d_x (T, N, 3H) receives dC/d(x_t W_ih^T + b_ih) and d_h (T, N, 3H)
    dC/d(h_{t-1} W_hh^T + b_hh); they differ only in the n block, where d_h = d_x * r:
      dn = dh_t (1 - z) (1 - n^2), dz = dh_t (h_{t-1} - n) z (1 - z), dr = dn hn r (1 - r),
      dC/dh_{t-1} = dh_t z + d_h W_hh.
    """
    cdef Py_ssize_t t, b, j, steps = d_hs.shape[0], n = d_hs.shape[1], hid = d_hs.shape[2]
    cdef const floating *g
    cdef const floating *dho
    cdef const floating *hnr
    cdef const floating *h_prev
    cdef floating *dxr
    cdef floating *dhr
    cdef floating *dhb
    cdef floating dht, gr, gz, gn, dn, dz, dr
    cdef int err = 0
    with nogil:
        for t in range(steps - 1, -1, -1):
            for b in range(n):
                g, dho, hnr, h_prev = &gates[t, b, 0], &d_hs[t, b, 0], &hn[t, b, 0], &hs[t, b, 0]
                dxr, dhr, dhb = &d_x[t, b, 0], &d_h[t, b, 0], &dh[b, 0]
                for j in range(hid):
                    gr, gz, gn = g[j], g[hid + j], g[2 * hid + j]
                    dht = dho[j] + dhb[j]
                    dn = dht * (1 - gz) * (1 - gn * gn)
                    dz = dht * (h_prev[j] - gn) * gz * (1 - gz)
                    dr = dn * hnr[j] * gr * (1 - gr)
                    dxr[j], dxr[hid + j], dxr[2 * hid + j] = dr, dz, dn
                    dhr[j], dhr[hid + j], dhr[2 * hid + j] = dr, dz, dn * gr
                    dhb[j] = dht * gz
            err |= _back_product(&d_h[t, 0, 0], w_hh, 1, &dh[0, 0], n)
    _raise_if(err, "gru_backward")
