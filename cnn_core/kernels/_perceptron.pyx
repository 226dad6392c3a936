"""The perceptron's learning passes, compiled: the primal rule (one problem, or one-vs-rest problems in
lockstep), Gallant's pocket with ratchet, and the greedy rule with incremental margins."""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, sqrt
from libc.string cimport memcpy

import numpy as np

from cnn_core._config cimport team_size
from cnn_core.kernels._dot cimport axpy, dot


_NO_ROWS = np.zeros((0, 0), dtype=np.float32)


cdef enum:
    PAD = 64  # bytes per problem in ovr_epoch's per-problem arrays: one cache line each


cdef Py_ssize_t _epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double* b,
                       floating eta, const long long[::1] order, bint use_order) noexcept nogil:
    cdef Py_ssize_t n_steps = order.shape[0] if use_order else X.shape[0]
    cdef Py_ssize_t d = X.shape[1], t, i, n_updates = 0
    cdef floating step, bias = <floating>b[0]
    cdef const floating* x
    for t in range(n_steps):
        i = order[t] if use_order else t
        x = &X[i, 0]
        if y[i] * (dot(&w[0], x, d) + bias) <= 0:
            step = eta * y[i]
            axpy(step, x, &w[0], d)
            bias += step
            n_updates += 1
    b[0] = bias
    return n_updates


def epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double b, double eta,
          const long long[::1] order, bint use_order):
    """X (n, d) with n, d >= 1, y (n,) in {-1, +1}, w (d,) updated in place, order (m,) indices into
    0..n-1 (used when use_order). Returns (b_new, n_updates)."""
    cdef Py_ssize_t n_updates
    with nogil:
        n_updates = _epoch(X, y, w, &b, <floating>eta, order, use_order)
    return b, n_updates


cdef inline double _dot32(const floating* w, const float* x, Py_ssize_t d) noexcept nogil:
    # _dot.dot with x in float32: the same eight partial sums in the same order, each product <double>w *
    # <double>x, so for x equal to a float64 row element by element the result is the same to the last bit.
    cdef double s[8]
    cdef double total
    cdef Py_ssize_t j, k, block, m = d - d % 8
    for k in range(8):
        s[k] = 0.0
    for block in range(m // 8):
        j = block * 8
        for k in range(8):
            s[k] += <double>w[j + k] * <double>x[j + k]
    total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    for j in range(m, d):
        total += <double>w[j] * <double>x[j]
    return total


cdef Py_ssize_t _count_errors(const floating[:, ::1] X, const float[:, ::1] X32, const signed char[:, ::1] T,
                              Py_ssize_t k, const floating* w, floating b, Py_ssize_t limit) noexcept nogil:
    # Points of problem k with T_ik (w.x_i + b) <= 0, counted up to `limit` (the count stops there: a
    # candidate that cannot beat the pocket needs no exact count). X32 (when it has rows) is X in float32,
    # equal element by element: half the bytes to read for the same sums.
    cdef Py_ssize_t i, n = X.shape[0], d = X.shape[1], errors = 0
    cdef bint narrow = X32.shape[0] > 0
    for i in range(n):
        if T[i, k] * ((_dot32(w, &X32[i, 0], d) if narrow else dot(w, &X[i, 0], d)) + b) <= 0:
            errors += 1
            if errors >= limit:
                break
    return errors


cdef void _ovr_epoch(const floating[:, ::1] X, const signed char[:, ::1] T, floating[:, ::1] W,
                     floating[:, ::1] B, floating eta, const long long[::1] order, bint use_order,
                     unsigned char[:, ::1] active, long long[:, ::1] n_updates, bint pocket,
                     floating[:, ::1] PW, floating[::1] PB, long long[:, ::1] state,
                     const float[:, ::1] X32, Py_ssize_t k0, Py_ssize_t kstep) noexcept nogil:
    # The problems k0, k0 + kstep, ... in lockstep (one thread's share: nothing here touches another
    # problem's weights or state, so how the problems are shared out never changes a result). B, active,
    # n_updates and state hold problem k's values in row k, padded to 64 bytes so that two threads never
    # write to one cache line.
    # state[k] (pocket only) = (run, pocket_run, pocket_errors, counted, current_in_pocket): the current
    # run of correct classifications, the longest run the pocket weights achieved, their training errors,
    # whether the current weights' errors are known, and whether the pocket holds the current weights.
    cdef Py_ssize_t n_steps = order.shape[0] if use_order else X.shape[0]
    cdef Py_ssize_t d = X.shape[1], K = T.shape[1], t, i, k, kk, errors
    cdef floating step
    cdef const floating* x
    for t in range(n_steps):
        i = order[t] if use_order else t
        x = &X[i, 0]
        for kk in range((K - k0 + kstep - 1) // kstep):
            k = k0 + kk * kstep
            if not active[k, 0]:
                continue
            if T[i, k] * (dot(&W[k, 0], x, d) + B[k, 0]) <= 0:
                step = eta * T[i, k]
                axpy(step, x, &W[k, 0], d)
                B[k, 0] += step
                n_updates[k, 0] += 1
                if pocket:
                    state[k, 0] = 0
                    state[k, 3] = 0
                    state[k, 4] = 0
            elif pocket:
                state[k, 0] += 1
                if state[k, 4]:
                    state[k, 1] = state[k, 0]  # the pocket's weights keep running
                elif state[k, 0] > state[k, 1] and not state[k, 3]:
                    # Gallant's ratchet: the errors are counted only when the current run beats the
                    # pocket's, and the pocket changes only when they are fewer too
                    state[k, 3] = 1
                    errors = _count_errors(X, X32, T, k, &W[k, 0], B[k, 0], state[k, 2])
                    if errors < state[k, 2]:
                        memcpy(&PW[k, 0], &W[k, 0], d * sizeof(floating))
                        PB[k] = B[k, 0]
                        state[k, 1] = state[k, 0]
                        state[k, 2] = errors
                        state[k, 4] = 1
                        if errors == 0:
                            active[k, 0] = 0  # nothing left to learn: this problem is done


def ovr_epoch(const floating[:, ::1] X, const signed char[:, ::1] T, floating[:, ::1] W, floating[::1] B,
              double eta, const long long[::1] order, bint use_order, unsigned char[::1] active,
              long long[::1] n_updates, bint pocket, floating[:, ::1] PW, floating[::1] PB,
              long long[:, ::1] state, const float[:, ::1] X32=None):
    """One primal pass of the K problems in lockstep (each sample visited once, for every active problem).

    X (n, d), T (n, K) in {-1, +1}, W (K, d) and B (K,) updated in place, active (K,) 0/1, n_updates (K,)
    incremented. With `pocket`, PW (K, d), PB (K,) and state (K, 5) hold the pocket (see _ovr_epoch);
    X32 (n, d) float32, if given, must equal X element by element: the pocket's error counts read it instead.
    With several threads each takes every nt-th problem and makes the pass over X for those (X is then
    read nt times, by nt cores at once); the problems are independent, so the result is the same."""
    cdef Py_ssize_t K = T.shape[1], nt = team_size(K), g
    if X32 is None:
        X32 = _NO_ROWS
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] B_ = np.zeros((K, PAD // sizeof(floating)), dtype=dtype)
    cdef unsigned char[:, ::1] active_ = np.zeros((K, PAD), dtype=np.uint8)
    cdef long long[:, ::1] n_updates_ = np.zeros((K, PAD // 8), dtype=np.int64)
    cdef long long[:, ::1] state_ = np.zeros((K, PAD // 8), dtype=np.int64)
    np.asarray(B_)[:, 0] = B
    np.asarray(active_)[:, 0] = active
    np.asarray(n_updates_)[:, 0] = n_updates
    np.asarray(state_)[:, :5] = state
    with nogil:
        for g in prange(nt, schedule="static", num_threads=nt):
            _ovr_epoch(X, T, W, B_, <floating>eta, order, use_order, active_, n_updates_, pocket, PW, PB, state_,
                       X32, g, nt)
    np.asarray(B)[:] = np.asarray(B_)[:, 0]
    np.asarray(active)[:] = np.asarray(active_)[:, 0]
    np.asarray(n_updates)[:] = np.asarray(n_updates_)[:, 0]
    np.asarray(state)[:] = np.asarray(state_)[:, :5]


cdef inline double _geometric(double L, double norm2) noexcept nogil:
    # The deck's summary-slide loss: the misclassified points' distances to the hyperplane, L / ||w||.
    # At w = 0 the distances are undefined; infinite unless nothing is misclassified.
    if L == 0.0:
        return 0.0
    if norm2 <= 0.0:
        return INFINITY
    return L / sqrt(norm2)


cdef Py_ssize_t _greedy_epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double* b,
                              floating eta, const long long[::1] order, bint use_order,
                              const double[:, ::1] gram, bint use_gram, double[::1] m, double[::1] col,
                              bint geometric) noexcept nogil:
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], n_steps = order.shape[0] if use_order else n
    cdef Py_ssize_t t, i, j, errors = 0, errors_hat, kept = 0
    cdef double L = 0.0, L_hat, c, mh, norm2, norm2_hat, score, score_hat, wx
    cdef const double* g
    norm2 = dot(&w[0], &w[0], d)
    for j in range(n):
        if m[j] < 0.0:
            L -= m[j]
        if m[j] <= 0.0:
            errors += 1
    for t in range(n_steps):
        i = order[t] if use_order else t
        if m[i] > 0.0:
            continue
        # g_j = x_j.x_i + 1: the change of w.x_j + b per unit step along (x_i, 1)
        if use_gram:
            g = &gram[i, 0]
        else:
            for j in range(n):
                col[j] = dot(&X[j, 0], &X[i, 0], d) + 1.0
            g = &col[0]
        c = <double>(eta * y[i])
        L_hat = 0.0
        errors_hat = 0
        for j in range(n):
            mh = m[j] + c * y[j] * g[j]
            if mh < 0.0:
                L_hat -= mh
            if mh <= 0.0:
                errors_hat += 1
        wx = y[i] * m[i] - b[0]  # w.x_i, since m_i = y_i (w.x_i + b)
        norm2_hat = norm2 + 2.0 * c * wx + c * c * (g[i] - 1.0)
        if geometric:
            score, score_hat = _geometric(L, norm2), _geometric(L_hat, norm2_hat)
        else:
            score, score_hat = L, L_hat
        # the first step from w = 0, b = 0 is taken as in the primal rule (every margin is 0 there)
        if score_hat < score or (score_hat == score and errors_hat < errors) or (b[0] == 0.0 and norm2 == 0.0):
            axpy(<floating>c, &X[i, 0], &w[0], d)
            b[0] = <double>(<floating>(b[0] + c))
            for j in range(n):
                m[j] += c * y[j] * g[j]
            L, errors, norm2 = L_hat, errors_hat, norm2_hat
            kept += 1
            if errors == 0:
                break
    return kept


def greedy_epoch(const floating[:, ::1] X, const signed char[::1] y, floating[::1] w, double b, double eta,
                 const long long[::1] order, bint use_order, const double[:, ::1] gram, bint use_gram,
                 double[::1] m, double[::1] col, bint geometric):
    """One greedy pass: candidates from misclassified points kept when they lower the loss (L, or L / ||w||
    with `geometric`; ties broken by fewer errors). m (n,) holds y_i (w.x_i + b) on entry and is kept up to
    date; gram (n, n) = X X^T + 1 when use_gram, else col (n,) is scratch. Returns (b_new, n_kept)."""
    cdef Py_ssize_t kept
    with nogil:
        kept = _greedy_epoch(X, y, w, &b, <floating>eta, order, use_order, gram, use_gram, m, col, geometric)
    return b, kept
