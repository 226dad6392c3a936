"""The linear SVM's dual solvers as plain Python loops, the references for cnn_core.kernels.svm."""
import math

import numpy as np

from oracles_perceptron import _dot8

MASK = (1 << 64) - 1


def _rand(state):
    # xorshift64* as the kernel computes it, on Python ints masked to 64 bits
    x = state[0]
    x ^= x >> 12
    x ^= (x << 25) & MASK
    x ^= x >> 27
    state[0] = x
    return (x * 2685821657736338717) & MASK


def _shuffle(index, m, state):
    for k in range(m - 1, 0, -1):
        j = _rand(state) % (k + 1)
        index[k], index[j] = index[j], index[k]


def dual_cd_ref(X, y, alpha, w, bias, C, rho, eps, max_epochs, seed):
    """Coordinate descent on the dual of J + (b - c)^2 / (2 rho) with LIBLINEAR's shrinking, the center moved
    to the bias after each epoch, and the kernel's visiting order; on copies, returns
    (alpha, w, bias, epochs, converged)."""
    dt = X.dtype.type
    alpha, w, (c, s) = alpha.astype(np.float64).copy(), w.copy(), (float(bias[0]), float(bias[1]))
    y = np.where(y > 0, 1, -1)
    n = X.shape[0]
    qd = np.einsum("ij,ij->i", X, X, dtype=np.float64) + rho
    index = list(range(n))
    state = [seed if seed != 0 else 0x9E3779B97F4A7C15]
    active, epoch, converged = n, 0, False
    pg_max_old, pg_min_old = math.inf, -math.inf
    while epoch < max_epochs:
        pg_max, pg_min = -math.inf, math.inf
        _shuffle(index, active, state)
        k = 0
        while k < active:
            i = index[k]
            G = float(y[i]) * (_dot8(w, X[i]) + c + rho * s) - 1.0
            PG = 0.0
            if alpha[i] == 0.0:
                if G > pg_max_old:
                    active -= 1
                    index[k], index[active] = index[active], index[k]
                    continue
                PG = min(G, 0.0)
            elif alpha[i] == C:
                if G < pg_min_old:
                    active -= 1
                    index[k], index[active] = index[active], index[k]
                    continue
                PG = max(G, 0.0)
            else:
                PG = G
            pg_max, pg_min = max(pg_max, PG), min(pg_min, PG)
            if abs(PG) > 1e-12:
                a_old = alpha[i]
                a_new = min(max(a_old - G / qd[i], 0.0), C)
                alpha[i] = a_new
                w += dt((a_new - a_old) * y[i]) * X[i]
                s += (a_new - a_old) * y[i]
            k += 1
        epoch += 1
        c += rho * s
        if pg_max - pg_min <= eps:
            if active == n:
                converged = True
                break
            active, pg_max_old, pg_min_old = n, math.inf, -math.inf
            continue
        pg_max_old = pg_max if pg_max > 0.0 else math.inf
        pg_min_old = pg_min if pg_min < 0.0 else -math.inf
    return alpha, w, np.array([c, s]), epoch, converged


def smo_steps_ref(K, y, alpha, G, C, steps):
    """`steps` SMO steps (maximal violating i, second-order j, the analytic clipped pair step, the gradient
    update) without shrinking, as LIBSVM's Solver writes them; on copies, returns (alpha, G, steps_done)."""
    alpha, G = alpha.copy(), G.copy()
    y = np.where(y > 0, 1, -1)
    n = len(y)
    for step in range(steps):
        up = [t for t in range(n) if (y[t] > 0 and alpha[t] < C) or (y[t] < 0 and alpha[t] > 0)]
        if not up:
            return alpha, G, step
        i = max(reversed(up), key=lambda t: -y[t] * G[t])  # the last of the maximal ones, as ">=" picks
        Gmax = -y[i] * G[i]
        best, j = math.inf, -1
        for t in range(n):
            if not ((y[t] > 0 and alpha[t] > 0) or (y[t] < 0 and alpha[t] < C)):
                continue
            grad_diff = Gmax + y[t] * G[t]
            if grad_diff > 0:
                quad = K[i, i] + K[t, t] - 2.0 * K[i, t]
                obj = -(grad_diff * grad_diff) / (quad if quad > 0 else 1e-12)
                if obj <= best:
                    best, j = obj, t
        if j < 0:
            return alpha, G, step
        quad = K[i, i] + K[j, j] - 2.0 * K[i, j]
        quad = quad if quad > 0 else 1e-12
        # LIBSVM's pair step: the unconstrained optimum along y_i alpha_i + y_j alpha_j = const, then the
        # box, in LIBSVM's own order of operations (ties between free variables' gradients are exact, so the
        # rounding must match for the same pair to be chosen next)
        old_i, old_j = alpha[i], alpha[j]
        if y[i] != y[j]:
            delta, diff = (-G[i] - G[j]) / quad, old_i - old_j
            ai, aj = old_i + delta, old_j + delta
            if diff > 0:
                if aj < 0:
                    ai, aj = diff, 0.0
            elif ai < 0:
                ai, aj = 0.0, -diff
            if diff > 0:
                if ai > C:
                    ai, aj = C, C - diff
            elif aj > C:
                ai, aj = C + diff, C
        else:
            delta, total = (G[i] - G[j]) / quad, old_i + old_j
            ai, aj = old_i - delta, old_j + delta
            if total > C:
                if ai > C:
                    ai, aj = C, total - C
            elif aj < 0:
                ai, aj = total, 0.0
            if total > C:
                if aj > C:
                    ai, aj = total - C, C
            elif ai < 0:
                ai, aj = 0.0, total
        alpha[i], alpha[j] = ai, aj
        di, dj = (alpha[i] - old_i) * y[i], (alpha[j] - old_j) * y[j]
        G += y * (K[:, i] * di + K[:, j] * dj)
    return alpha, G, steps


def max_violation(y, alpha, G, C):
    """max_{I_up} -y_t G_t - min_{I_low} -y_t G_t: the dual's KKT violation (<= 0 at the optimum)."""
    y = np.where(y > 0, 1, -1)
    v = -y * G
    up = ((y > 0) & (alpha < C)) | ((y < 0) & (alpha > 0))
    low = ((y > 0) & (alpha > 0)) | ((y < 0) & (alpha < C))
    return float(v[up].max() - v[low].min())


TAU = 1e-12  # LIBSVM's floor for a pair's curvature


def smo_update_ref(Ki, Kj, ix, di, dj, g, up):
    """SMO's gradient-update pass: g - (Ki[ix] di + Kj[ix] dj) (float64, in that order), and the last slot
    maximizing g + up (-1 when every value is -inf); returns (g, i, max)."""
    g = g - (Ki[ix].astype(np.float64) * di + Kj[ix].astype(np.float64) * dj)
    v = g + up
    top = v.max() if v.size else -math.inf
    if top == -math.inf:
        return g, -1, -math.inf
    return g, int(np.flatnonzero(v == top)[-1]), float(top)


def smo_select_ref(Ki, ix, Kii, Gmax, g, low, q):
    """SMO's second-order selection: lv = low - g, Gmax2 = max lv, and the last slot minimizing
    -(gd^2) / quad over gd = Gmax + lv > 0, quad = Kii + q - 2 Ki[ix] (TAU when <= 0); returns (j, Gmax2)."""
    lv = low - g
    gmax2 = float(lv.max()) if lv.size else -math.inf
    gd = Gmax + lv
    quad = (Kii + q) - 2.0 * Ki[ix].astype(np.float64)
    quad = np.where(quad <= 0.0, TAU, quad)
    cand = np.flatnonzero(gd > 0.0)
    if cand.size == 0:
        return -1, gmax2
    obj = -(gd[cand] * gd[cand]) / quad[cand]
    return int(cand[np.flatnonzero(obj == obj.min())[-1]]), gmax2
