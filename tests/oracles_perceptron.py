"""The deck's perceptron algorithm as a plain Python loop, the reference for the compiled epoch."""


def perceptron_epoch_ref(X, y, w, b, eta=1.0, order=None):
    """The deck's sequential algorithm as a Python loop; returns (w_new, b_new, n_updates), w untouched.

    Arithmetic follows the kernel's documented precision so the two can be compared exactly: w, b and the
    step eta*y live in X's dtype, and the dot product is a float64 sum in the kernel's fixed order (a
    float32 product is exact in float64, so only the summation order matters): eight partial sums, lane k
    taking j = k mod 8 over the first d - d % 8 features, combined pairwise, then the tail left to right.
    """
    dt = X.dtype.type
    w = w.copy()
    b = dt(b)
    eta = dt(eta)
    n_updates = 0
    for i in (range(X.shape[0]) if order is None else order):
        s = _dot8(w, X[i])
        if y[i] * (s + float(b)) <= 0:
            step = dt(eta * dt(y[i]))
            w += step * X[i]
            b = dt(b + step)
            n_updates += 1
    return w, float(b), n_updates


def _dot8(w, x):
    d = len(x)
    m = d - d % 8
    lanes = [0.0] * 8
    for j in range(m):
        lanes[j % 8] += float(w[j]) * float(x[j])
    s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for j in range(m, d):
        s += float(w[j]) * float(x[j])
    return s


def ovr_epoch_ref(X, T, W, B, eta, order, active, pocket):
    """The lockstep pass (and Gallant's pocket with ratchet) as Python loops, on copies; returns
    (W, B, active, updates, (PW, PB, state)). Same arithmetic as perceptron_epoch_ref, problem by problem."""
    dt = X.dtype.type
    W, B, active = W.copy(), B.copy(), active.copy()
    PW, PB, state = (a.copy() for a in pocket) if pocket is not None else (None, None, None)
    k = T.shape[1]
    updates = [0] * k
    for i in (range(X.shape[0]) if order is None else order):
        for c in range(k):
            if not active[c]:
                continue
            if T[i, c] * (_dot8(W[c], X[i]) + float(B[c])) <= 0:
                step = dt(dt(eta) * dt(T[i, c]))
                W[c] += step * X[i]
                B[c] = dt(B[c] + step)
                updates[c] += 1
                if pocket is not None:
                    state[c, 0] = state[c, 3] = state[c, 4] = 0
            elif pocket is not None:
                run, best_run, best_errors, counted, in_pocket = state[c]
                state[c, 0] = run = run + 1
                if in_pocket:
                    state[c, 1] = run
                elif run > best_run and not counted:
                    state[c, 3] = 1
                    errors = sum(1 for j in range(X.shape[0])
                                 if T[j, c] * (_dot8(W[c], X[j]) + float(B[c])) <= 0)
                    if errors < best_errors:
                        PW[c], PB[c] = W[c], B[c]
                        state[c, 1], state[c, 2], state[c, 4] = run, errors, 1
                        if errors == 0:
                            active[c] = 0
    return W, B, active, updates, (PW, PB, state)


def greedy_epoch_ref(X, y, w, b, eta, order, loss):
    """The greedy pass as a Python loop on a copy of w: margins m_j = y_j (w.x_j + b) from the start, moved by
    eta y_i y_j (x_j.x_i + 1) per kept candidate; returns (w, b, kept)."""
    import math
    dt = X.dtype.type
    w = w.copy()
    n = X.shape[0]
    import numpy as np
    m = list(np.where(y > 0, 1, -1) * (X.astype(np.float64) @ w.astype(np.float64) + b))
    norm2 = _dot8(w, w)

    def score(margins, nrm2):
        L = -sum(v for v in margins if v < 0.0)
        if loss == "functional":
            return L
        if L == 0.0:
            return 0.0
        return math.inf if nrm2 <= 0.0 else L / math.sqrt(nrm2)

    kept = 0
    for i in (range(n) if order is None else order):
        if m[i] > 0.0:
            continue
        g = [_dot8(X[j], X[i]) + 1.0 for j in range(n)]
        c = float(dt(eta) * dt(y[i]))
        m_hat = [m[j] + c * y[j] * g[j] for j in range(n)]
        wx = y[i] * m[i] - b
        norm2_hat = norm2 + 2.0 * c * wx + c * c * (g[i] - 1.0)
        errors = sum(1 for v in m if v <= 0.0)
        errors_hat = sum(1 for v in m_hat if v <= 0.0)
        s, s_hat = score(m, norm2), score(m_hat, norm2_hat)
        if s_hat < s or (s_hat == s and errors_hat < errors) or (b == 0.0 and norm2 == 0.0):
            w += dt(c) * X[i]
            b = float(dt(b + c))
            m, norm2 = m_hat, norm2_hat
            kept += 1
            if errors_hat == 0:
                break
    return w, b, kept

