"""Dual coordinate descent for the linear SVM with an unregularized bias (proximal point in the bias)."""
from cython cimport floating
from libc.math cimport INFINITY, fabs

import numpy as np

from cnn_core.kernels._dot cimport axpy, dot


cdef inline unsigned long long _rand(unsigned long long* state) noexcept nogil:
    # xorshift64* (Vigna): a full-period 64-bit generator, plenty for shuffling the visiting order.
    state[0] ^= state[0] >> 12
    state[0] ^= state[0] << 25
    state[0] ^= state[0] >> 27
    return state[0] * 2685821657736338717ULL


cdef inline void _shuffle(int* index, Py_ssize_t m, unsigned long long* state) noexcept nogil:
    # Fisher-Yates; the modulo's bias (m / 2^64) is immaterial for a visiting order.
    cdef Py_ssize_t k, j
    cdef int tmp
    for k in range(m - 1, 0, -1):
        j = <Py_ssize_t>(_rand(state) % <unsigned long long>(k + 1))
        tmp = index[k]
        index[k] = index[j]
        index[j] = tmp


cdef Py_ssize_t _dcd(const floating[:, ::1] X, const signed char[::1] y, const double[::1] qd,
                     double[::1] alpha, floating[::1] w, double* center, double* s, int[::1] index,
                     double C, double rho, double eps, Py_ssize_t max_epochs, unsigned long long* state,
                     bint* converged) noexcept nogil:
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], active = n, epoch = 0, k, i
    cdef double G, PG, pg_max, pg_min, pg_max_old = INFINITY, pg_min_old = -INFINITY, a_old, a_new, yi
    converged[0] = False
    while epoch < max_epochs:
        pg_max = -INFINITY
        pg_min = INFINITY
        _shuffle(&index[0], active, state)
        k = 0
        while k < active:
            i = index[k]
            yi = y[i]
            # gradient of the dual of the proximal problem in alpha_i: y_i (w.x_i + b) - 1, b = c + rho s
            G = yi * (dot(&w[0], &X[i, 0], d) + center[0] + rho * s[0]) - 1.0
            PG = 0.0
            if alpha[i] == 0.0:
                if G > pg_max_old:  # at its bound and far from moving: shrink (LIBLINEAR's rule)
                    active -= 1
                    index[k], index[active] = index[active], index[k]
                    continue
                if G < 0.0:
                    PG = G
            elif alpha[i] == C:
                if G < pg_min_old:
                    active -= 1
                    index[k], index[active] = index[active], index[k]
                    continue
                if G > 0.0:
                    PG = G
            else:
                PG = G
            if PG > pg_max:
                pg_max = PG
            if PG < pg_min:
                pg_min = PG
            if fabs(PG) > 1e-12:
                a_old = alpha[i]
                a_new = a_old - G / qd[i]
                if a_new < 0.0:
                    a_new = 0.0
                elif a_new > C:
                    a_new = C
                alpha[i] = a_new
                axpy(<floating>((a_new - a_old) * yi), &X[i, 0], &w[0], d)
                s[0] += (a_new - a_old) * yi
            k += 1
        epoch += 1
        # proximal step in b: the new center is the current bias, so the (b - c)^2 / (2 rho) term that
        # makes the dual box-constrained vanishes at the fixed point
        center[0] += rho * s[0]
        if pg_max - pg_min <= eps:
            if active == n:
                converged[0] = True
                break
            active = n  # converged on the active set: check every point again
            pg_max_old = INFINITY
            pg_min_old = -INFINITY
            continue
        pg_max_old = pg_max if pg_max > 0.0 else INFINITY
        pg_min_old = pg_min if pg_min < 0.0 else -INFINITY
    return epoch


def dcd(const floating[:, ::1] X, const signed char[::1] y, const double[::1] qd, double[::1] alpha,
        floating[::1] w, double[::1] bias, int[::1] index, double C, double rho, double eps,
        Py_ssize_t max_epochs, unsigned long long seed):
    """Run dual coordinate descent epochs in place on alpha (n,), w (d,) and bias = [center, s] (2,).

    index (n,) holds a permutation of 0..n-1 (reordered in place). Returns (epochs run, converged).
    """
    cdef Py_ssize_t epochs
    cdef bint converged
    cdef unsigned long long state = seed if seed != 0 else 0x9E3779B97F4A7C15ULL
    cdef double center = bias[0], s = bias[1]
    with nogil:
        epochs = _dcd(X, y, qd, alpha, w, &center, &s, index, C, rho, eps, max_epochs, &state, &converged)
    bias[0] = center
    bias[1] = s
    return epochs, bool(converged)


cdef double TAU = 1e-12  # LIBSVM's floor for a pair's curvature K_ii + K_jj - 2 K_ij


cdef inline bint _shrinkable(Py_ssize_t t, const signed char[::1] y, const double[::1] alpha,
                             const double[::1] G, double C, double gmax1, double gmax2) noexcept nogil:
    # LIBSVM's be_shrunk: a variable at a bound whose gradient pushes it further out than any violating
    # pair could pull it back
    if alpha[t] >= C:
        return -G[t] > gmax1 if y[t] > 0 else -G[t] > gmax2
    if alpha[t] <= 0.0:
        return G[t] > gmax2 if y[t] > 0 else G[t] > gmax1
    return False


cdef void _reconstruct(const floating[:, ::1] K, const signed char[::1] y, const double[::1] alpha,
                       double[::1] G, const int* act, Py_ssize_t m, double* ay) noexcept nogil:
    # the gradient of the shrunk variables, G_t = y_t sum_s K_ts alpha_s y_s - 1, from scratch (K symmetric)
    cdef Py_ssize_t n = K.shape[0], k, s, t
    cdef double acc
    for s in range(n):
        ay[s] = alpha[s] * y[s]
    for k in range(m, n):
        t = act[k]
        acc = 0.0
        for s in range(n):
            acc += <double>K[t, s] * ay[s]
        G[t] = y[t] * acc - 1.0


cdef Py_ssize_t _smo(const floating[:, ::1] K, const double[::1] kd, const signed char[::1] y,
                     double[::1] alpha, double[::1] G, double C, double eps, Py_ssize_t max_steps,
                     int* act, double* ay, bint* converged) noexcept nogil:
    # LIBSVM's solver (Fan, Chen and Lin 2005) for the linear kernel K = X X^T, with its shrinking: the
    # maximal violating i, then the j of the largest second-order decrease, over the active variables
    # act[0:m]; G_t = y_t (K (alpha * y))_t - 1 is kept up to date on them and rebuilt for the others
    # before they are looked at again.
    cdef Py_ssize_t n = K.shape[0], m = n, step = 0, k, t, i, j, counter
    cdef double Gmax, Gmax2, obj_min, grad_diff, quad, obj, Kii, yi, yj, old_i, old_j, delta, diff, total
    cdef double di, dj, g1, g2
    cdef bint unshrunk = False
    cdef const floating* Ki
    cdef const floating* Kj
    for k in range(n):
        act[k] = <int>k
    counter = n if n < 1000 else 1000
    converged[0] = False
    while step < max_steps:
        counter -= 1
        if counter == 0:
            counter = n if n < 1000 else 1000
            g1 = -INFINITY
            g2 = -INFINITY
            for k in range(m):
                t = act[k]
                if y[t] > 0:
                    if alpha[t] < C and -G[t] > g1:
                        g1 = -G[t]
                    if alpha[t] > 0.0 and G[t] > g2:
                        g2 = G[t]
                else:
                    if alpha[t] < C and -G[t] > g2:
                        g2 = -G[t]
                    if alpha[t] > 0.0 and G[t] > g1:
                        g1 = G[t]
            if not unshrunk and g1 + g2 <= eps * 10.0:
                # close to the end: bring every variable back once, so that shrinking decisions taken
                # far from the solution are reconsidered (as LIBSVM does)
                unshrunk = True
                _reconstruct(K, y, alpha, G, act, m, ay)
                m = n
            k = 0
            while k < m:
                if _shrinkable(act[k], y, alpha, G, C, g1, g2):
                    m -= 1
                    act[k], act[m] = act[m], act[k]
                else:
                    k += 1
        Gmax = -INFINITY
        i = -1
        for k in range(m):
            t = act[k]
            if y[t] > 0:
                if alpha[t] < C and -G[t] >= Gmax:
                    Gmax = -G[t]
                    i = t
            elif alpha[t] > 0.0 and G[t] >= Gmax:
                Gmax = G[t]
                i = t
        Gmax2 = -INFINITY
        obj_min = INFINITY
        j = -1
        if i >= 0:
            Ki = &K[i, 0]
            Kii = kd[i]
            for k in range(m):
                t = act[k]
                if y[t] > 0:
                    if alpha[t] > 0.0:
                        grad_diff = Gmax + G[t]
                        if G[t] >= Gmax2:
                            Gmax2 = G[t]
                    else:
                        continue
                else:
                    if alpha[t] < C:
                        grad_diff = Gmax - G[t]
                        if -G[t] >= Gmax2:
                            Gmax2 = -G[t]
                    else:
                        continue
                if grad_diff > 0.0:
                    quad = Kii + kd[t] - 2.0 * Ki[t]
                    obj = -(grad_diff * grad_diff) / (quad if quad > 0.0 else TAU)
                    if obj <= obj_min:
                        j = t
                        obj_min = obj
        if i < 0 or j < 0 or Gmax + Gmax2 < eps:
            if m < n:  # optimal on the active set: rebuild the others' gradient and look at all of them
                _reconstruct(K, y, alpha, G, act, m, ay)
                m = n
                counter = n if n < 1000 else 1000  # no shrinking before all of them are looked at
                continue
            converged[0] = True
            break
        Kj = &K[j, 0]
        yi = y[i]
        yj = y[j]
        old_i = alpha[i]
        old_j = alpha[j]
        quad = Kii + kd[j] - 2.0 * Ki[j]
        if quad <= 0.0:
            quad = TAU
        # the pair's analytic step along the constraint y_i alpha_i + y_j alpha_j = const, clipped to the box
        if yi != yj:
            delta = (-G[i] - G[j]) / quad
            diff = old_i - old_j
            alpha[i] = old_i + delta
            alpha[j] = old_j + delta
            if diff > 0.0:
                if alpha[j] < 0.0:
                    alpha[j] = 0.0
                    alpha[i] = diff
            elif alpha[i] < 0.0:
                alpha[i] = 0.0
                alpha[j] = -diff
            if diff > 0.0:
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = C - diff
            elif alpha[j] > C:
                alpha[j] = C
                alpha[i] = C + diff
        else:
            delta = (G[i] - G[j]) / quad
            total = old_i + old_j
            alpha[i] = old_i - delta
            alpha[j] = old_j + delta
            if total > C:
                if alpha[i] > C:
                    alpha[i] = C
                    alpha[j] = total - C
            elif alpha[j] < 0.0:
                alpha[j] = 0.0
                alpha[i] = total
            if total > C:
                if alpha[j] > C:
                    alpha[j] = C
                    alpha[i] = total - C
            elif alpha[i] < 0.0:
                alpha[i] = 0.0
                alpha[j] = total
        # G_t += y_t (y_i K_ti d_i + y_j K_tj d_j) on the active variables
        di = (alpha[i] - old_i) * yi
        dj = (alpha[j] - old_j) * yj
        for k in range(m):
            t = act[k]
            G[t] += y[t] * (Ki[t] * di + Kj[t] * dj)
        step += 1
    if m < n:
        _reconstruct(K, y, alpha, G, act, m, ay)
    return step


def smo(const floating[:, ::1] K, const double[::1] kd, const signed char[::1] y, double[::1] alpha,
        double[::1] G, double C, double eps, Py_ssize_t max_steps):
    """Pair updates in place on alpha (n,) (feasible: 0 <= alpha <= C, sum y alpha = 0) and its gradient
    G (n,) = y * (K @ (alpha * y)) - 1, until the maximal violation is below eps or max_steps steps.
    K (n, n) = X X^T, kd (n,) its diagonal. Returns (steps, converged)."""
    cdef Py_ssize_t steps, n = K.shape[0]
    cdef bint converged
    cdef int[::1] act = np.empty(n, dtype=np.intc)
    cdef double[::1] ay = np.empty(n)
    if n == 0:
        return 0, True
    with nogil:
        steps = _smo(K, kd, y, alpha, G, C, eps, max_steps, &act[0], &ay[0], &converged)
    return steps, bool(converged)
