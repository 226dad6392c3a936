# distutils: sources = src_c/svm.c
# distutils: depends = src_c/svm.h src_c/avx2.h src_c/avx512.h src_c/cpu.h
"""Dual coordinate descent for the linear SVM with an unregularized bias (proximal point in the bias), and SMO
(its two passes over the active slots in src_c/svm.c, vectorized per instruction-set level)."""
from cython cimport floating
from libc.math cimport INFINITY, fabs
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

from cython.parallel cimport prange

from cnn_core._config cimport simd_level, team_size
from cnn_core.kernels._gemm cimport gemm
from cnn_core.kernels._dot cimport axpy, dot


cdef extern from "svm.h" nogil:
    Py_ssize_t cnn_ssvm_update(const float *Ki, const float *Kj, const int *ix, Py_ssize_t m, double di,
                               double dj, double *g, const double *up, double *gmax)
    Py_ssize_t cnn_dsvm_update(const double *Ki, const double *Kj, const int *ix, Py_ssize_t m, double di,
                               double dj, double *g, const double *up, double *gmax)
    Py_ssize_t cnn_ssvm_select(const float *Ki, const int *ix, Py_ssize_t m, double Kii, double Gmax,
                               double tau, const double *g, const double *low, const double *q, double *gmax2)
    Py_ssize_t cnn_dsvm_select(const double *Ki, const int *ix, Py_ssize_t m, double Kii, double Gmax,
                               double tau, const double *g, const double *low, const double *q, double *gmax2)
    ctypedef int (*cnn_simd_level_fn)() noexcept nogil
    void cnn_svm_init(cnn_simd_level_fn simd_level)


cnn_svm_init(simd_level)


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


cdef enum:
    MIRROR_TILE = 64  # gram_into: the upper triangle is copied in MIRROR_TILE x MIRROR_TILE transposed tiles
    SHRINK_EVERY = 1000  # SMO steps between two shrinking passes (LIBSVM's; min(n, this))
    COMPACT_MAX = 2048  # SMO copies K's active block when at most this many slots are active (16 MiB float32)


cdef inline bint _shrinkable(double ys, double a, double g, double C, double gmax1, double gmax2) noexcept nogil:
    # LIBSVM's be_shrunk: a variable at a bound whose gradient pushes it further out than any violating
    # pair could pull it back
    if a >= C:
        return -g > gmax1 if ys > 0 else -g > gmax2
    if a <= 0.0:
        return g > gmax2 if ys > 0 else g > gmax1
    return False


cdef inline void _sets(Py_ssize_t s, const double* a, const double* ys, double C, double* up,
                       double* low) noexcept nogil:
    # slot s's membership of I_up = {y = +1, a < C} u {y = -1, a > 0} and I_low = {y = +1, a > 0} u
    # {y = -1, a < C}, as 0 (member) or -inf (added to a value, it can never be a maximum): the passes
    # select without data-dependent branches. Every slot is in at least one of them (C > 0), so
    # up = low = -inf marks a shrunk slot.
    if ys[s] > 0:
        up[s] = 0.0 if a[s] < C else -INFINITY
        low[s] = 0.0 if a[s] > 0.0 else -INFINITY
    else:
        up[s] = 0.0 if a[s] > 0.0 else -INFINITY
        low[s] = 0.0 if a[s] < C else -INFINITY


cdef inline bint _masked(Py_ssize_t s, const double* up, const double* low) noexcept nogil:
    return up[s] == -INFINITY and low[s] == -INFINITY


cdef void _gather_slots(double* arr, const int* order, Py_ssize_t m, double* tmp) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(m):
        tmp[k] = arr[order[k]]
    memcpy(arr, tmp, m * sizeof(double))


cdef void _restore(int* perm, double* a, double* g, double* ys, double* q, Py_ssize_t n, double* tmp) noexcept nogil:
    # every variable back to its own slot (slot t holds variable t): the passes then read K's rows with plain
    # contiguous loads instead of gathers through perm
    cdef Py_ssize_t s, k
    cdef double* arrs[4]
    arrs[0], arrs[1], arrs[2], arrs[3] = a, g, ys, q
    for k in range(4):
        for s in range(n):
            tmp[perm[s]] = arrs[k][s]
        memcpy(arrs[k], tmp, n * sizeof(double))
    for s in range(n):
        perm[s] = <int>s


cdef void _unshrink(const floating[:, ::1] K, int* perm, double* a, double* g, double* ys, double* q, double C,
                    double* up, double* low, Py_ssize_t m, int* stale, double* acc) noexcept nogil:
    # every slot active again: slots back in variable order, the gradient of the variables that were in the
    # slots m..n-1 rebuilt from scratch, G_t = y_t sum_u K_tu alpha_u y_u - 1 (stored as g_t = -y_t G_t), the
    # masks of shrunk slots lifted. The sum runs over the rows u with alpha_u > 0 (K symmetric): whole rows
    # of K added to acc, plain loads where reading K_tu for the stale t alone would gather.
    cdef Py_ssize_t n = K.shape[0], s, u, t
    cdef double c
    cdef const floating* row
    if m < n:
        for s in range(n):
            stale[perm[s]] = s >= m
    _restore(perm, a, g, ys, q, n, acc)
    if m < n:
        memset(acc, 0, n * sizeof(double))
        for u in range(n):
            if a[u] != 0.0:
                c = a[u] * ys[u]
                row = &K[u, 0]
                for t in range(n):
                    acc[t] += c * row[t]
        for t in range(n):
            if stale[t]:
                g[t] = -ys[t] * (ys[t] * acc[t] - 1.0)
    for s in range(n):
        _sets(s, a, ys, C, up, low)


cdef Py_ssize_t _partition(Py_ssize_t m, int* perm, double* a, double* g, double* ys, double* q, double* up,
                           double* low, int* order, int* itmp, double* tmp) noexcept nogil:
    # stable: the unmasked slots of 0..m-1 first, in their order, then the masked ones; returns how many
    # are unmasked
    cdef Py_ssize_t s, k = 0, r
    for s in range(m):
        if not _masked(s, up, low):
            order[k] = <int>s
            k += 1
    r = k
    for s in range(m):
        if _masked(s, up, low):
            order[r] = <int>s
            r += 1
    _gather_slots(a, order, m, tmp)
    _gather_slots(g, order, m, tmp)
    _gather_slots(ys, order, m, tmp)
    _gather_slots(q, order, m, tmp)
    _gather_slots(up, order, m, tmp)
    _gather_slots(low, order, m, tmp)
    for s in range(m):
        itmp[s] = perm[order[s]]
    memcpy(perm, itmp, m * sizeof(int))
    return k


cdef floating* _compact(const floating[:, ::1] K, const int* perm, Py_ssize_t m, floating* Kc,
                        Py_ssize_t* cap) noexcept nogil:
    # Kc (m, m) = K's block of slots 0..m-1, in slot order: slot s reads row s and column s of the copy with
    # plain loads (measured: gathers from the big K were ~90% of a step's time once shrinking had left a few
    # hundred of 8,000 slots). Returns Kc (grown when needed), or NULL when out of memory (the caller then
    # keeps reading K through perm).
    cdef Py_ssize_t s, r
    cdef const floating* Ks
    cdef floating* row
    if m * m > cap[0]:
        free(Kc)
        Kc = <floating*>malloc(m * m * sizeof(floating))
        cap[0] = m * m if Kc != NULL else 0
        if Kc == NULL:
            return NULL
    for s in range(m):
        Ks = &K[perm[s], 0]
        row = Kc + s * m
        for r in range(m):
            row[r] = Ks[perm[r]]
    return Kc


cdef Py_ssize_t _smo(const floating[:, ::1] K, double C, double eps, Py_ssize_t max_steps, bint exact,
                     int* perm, long long* state, double* a, double* g, double* ys, double* q, int* nz,
                     double* ay, int* order, bint* converged) noexcept nogil:
    # LIBSVM's solver (Fan, Chen and Lin 2005) for the linear kernel K = X X^T, with its shrinking: the
    # maximal violating i, then the j of the largest second-order decrease, over the active slots.
    # The variables live in slots: slot s holds variable perm[s] with a = alpha, g = -y G where G is its
    # gradient y (K (alpha y)) - 1 (the value both selections compare, so the hot passes need no y: the
    # gradient update becomes g -= K_si d_i + K_sj d_j, equal bit for bit to updating G and negating), ys = y,
    # q = K's diagonal, so that every pass reads contiguous arrays.
    # The passes run over the block of slots 0..m-1; shrinking masks a slot of the block (up = low = -inf:
    # never selected) and its gradient keeps being updated, so that slots keep their order and the passes
    # read K's rows with plain vector loads (src_c/svm.c): with every slot in the block, slot t holds
    # variable t (perm is the identity); once at most COMPACT_MAX slots are unmasked, and at most half the
    # block, they are moved (in order) to the front, the block shrinks to them and their block of K is
    # copied to Kc, read the same way. The slots m..n-1 left behind have a stale g, rebuilt before they are
    # looked at again (and on return when `exact`). state = [m, steps to the next shrinking pass, unshrunk
    # once], kept between calls. Only when there is no memory for Kc do the passes read K through perm
    # (gathers).
    cdef Py_ssize_t n = K.shape[0], m = state[0], step = 0, s, i = -1, j, pi, pj, every, nact, masked = 0
    cdef Py_ssize_t cap = 0, ld = K.shape[1]
    cdef floating* Kc = NULL
    cdef const floating* rows = &K[0, 0]
    cdef const int* ix = perm
    cdef double* up = <double*>malloc(2 * n * sizeof(double))
    cdef double* low = up + n
    cdef int* itmp = nz
    cdef long long counter = state[1]
    cdef bint unshrunk = state[2] != 0, need_i = True
    cdef double Gmax = -INFINITY, Gmax2, quad, Kii, yi, yj, old_i, old_j, delta
    cdef double diff, total, di, dj, g1, g2, v
    cdef const floating* Ki
    cdef const floating* Kj
    every = n if n < SHRINK_EVERY else SHRINK_EVERY
    converged[0] = False
    if up == NULL:
        return -1
    # a call that starts shrunk to at most COMPACT_MAX slots copies their block of K at once; otherwise it
    # starts with every slot in the block, in variable order (the previous call's shrunk slots get their
    # gradient back: ~nnz x n multiply-adds), and shrinks at once when the previous call had shrunk
    if m < n and m <= COMPACT_MAX:
        Kc = _compact(K, perm, m, Kc, &cap)
    if Kc != NULL:
        rows, ix, ld = Kc, NULL, m
        for s in range(n):
            _sets(s, a, ys, C, up, low)
    else:
        if m < n:
            counter = 1
        _unshrink(K, perm, a, g, ys, q, C, up, low, m, nz, ay)
        m = n
        ix = NULL
    while step < max_steps:
        counter -= 1
        if counter <= 0:
            counter = every
            # LIBSVM's Gmax1 = max over I_up of -y G, Gmax2 = max over I_low of y G, unmasked slots only
            g1 = -INFINITY
            g2 = -INFINITY
            for s in range(m):
                v = g[s] + up[s]
                if v > g1:
                    g1 = v
                v = low[s] - g[s]
                if v > g2:
                    g2 = v
            if not unshrunk and g1 + g2 <= eps * 10.0:
                # close to the end: bring every variable back once, so that shrinking decisions taken
                # far from the solution are reconsidered (as LIBSVM does)
                unshrunk = True
                _unshrink(K, perm, a, g, ys, q, C, up, low, m, nz, ay)
                m = n
                masked = 0
                rows, ix, ld = &K[0, 0], NULL, n
            nact = 0
            for s in range(m):
                if _masked(s, up, low):
                    continue
                if _shrinkable(ys[s], a[s], -ys[s] * g[s], C, g1, g2):
                    up[s] = -INFINITY
                    low[s] = -INFINITY
                else:
                    nact += 1
            masked = m - nact
            if nact <= COMPACT_MAX and 2 * nact <= m:
                _partition(m, perm, a, g, ys, q, up, low, order, itmp, ay)
                m = nact
                masked = 0
                Kc = _compact(K, perm, m, Kc, &cap)
                if Kc != NULL:
                    rows, ix, ld = Kc, NULL, m
                else:  # no memory for the copy: read K itself
                    rows, ix, ld = &K[0, 0], perm, n
            need_i = True
        if need_i:
            # i = the last slot of the maximal -y G over I_up
            Gmax = -INFINITY
            i = -1
            for s in range(m):
                v = g[s] + up[s]
                if v >= Gmax:
                    Gmax = v
                    i = s
            if Gmax == -INFINITY:
                i = -1  # I_up is empty (every v is -inf)
            need_i = False
        # j = the last slot of I_low = {y = +1, a > 0} u {y = -1, a < C} with the largest decrease
        # (grad_diff^2 / quad); Gmax2 = max over I_low of y G (src_c/svm.c)
        Gmax2 = -INFINITY
        j = -1
        if i >= 0:
            pi = ix[i] if ix != NULL else i
            Ki = rows + pi * ld
            Kii = q[i]
            if floating is float:
                j = cnn_ssvm_select(Ki, ix, m, Kii, Gmax, TAU, g, low, q, &Gmax2)
            else:
                j = cnn_dsvm_select(Ki, ix, m, Kii, Gmax, TAU, g, low, q, &Gmax2)
        if i < 0 or j < 0 or Gmax + Gmax2 < eps:
            if m < n or masked > 0:  # optimal on the active set: rebuild the others' gradient, look at all
                _unshrink(K, perm, a, g, ys, q, C, up, low, m, nz, ay)
                m = n
                masked = 0
                rows, ix, ld = &K[0, 0], NULL, n
                counter = every  # no shrinking before all of them are looked at
                need_i = True
                continue
            converged[0] = True
            break
        pj = ix[j] if ix != NULL else j
        Kj = rows + pj * ld
        yi = ys[i]
        yj = ys[j]
        old_i = a[i]
        old_j = a[j]
        quad = Kii + q[j] - 2.0 * Ki[pj]
        if quad <= 0.0:
            quad = TAU
        # the pair's analytic step along the constraint y_i alpha_i + y_j alpha_j = const, clipped to the box
        if yi != yj:
            delta = (yi * g[i] + yj * g[j]) / quad  # (-G_i - G_j) / quad
            diff = old_i - old_j
            a[i] = old_i + delta
            a[j] = old_j + delta
            if diff > 0.0:
                if a[j] < 0.0:
                    a[j] = 0.0
                    a[i] = diff
            elif a[i] < 0.0:
                a[i] = 0.0
                a[j] = -diff
            if diff > 0.0:
                if a[i] > C:
                    a[i] = C
                    a[j] = C - diff
            elif a[j] > C:
                a[j] = C
                a[i] = C + diff
        else:
            delta = (yj * g[j] - yi * g[i]) / quad  # (G_i - G_j) / quad
            total = old_i + old_j
            a[i] = old_i - delta
            a[j] = old_j + delta
            if total > C:
                if a[i] > C:
                    a[i] = C
                    a[j] = total - C
            elif a[j] < 0.0:
                a[j] = 0.0
                a[i] = total
            if total > C:
                if a[j] > C:
                    a[j] = C
                    a[i] = total - C
            elif a[i] < 0.0:
                a[i] = 0.0
                a[j] = total
        # g_s += y_s (y_i K_si d_i + y_j K_sj d_j) on the active slots, and in the same pass the next
        # step's i (the pair's new alphas are in place, so I_up is the next step's)
        di = (a[i] - old_i) * yi
        dj = (a[j] - old_j) * yj
        _sets(i, a, ys, C, up, low)
        _sets(j, a, ys, C, up, low)
        if floating is float:
            i = cnn_ssvm_update(Ki, Kj, ix, m, di, dj, g, up, &Gmax)
        else:
            i = cnn_dsvm_update(Ki, Kj, ix, m, di, dj, g, up, &Gmax)
        step += 1
    free(Kc)
    if exact and m < n:
        _unshrink(K, perm, a, g, ys, q, C, up, low, m, nz, ay)
        m = n
        counter = every
    free(up)
    state[0] = m
    state[1] = counter
    state[2] = unshrunk
    return step


def smo_start(Py_ssize_t n):
    """The (perm, state) of an SMO run that has not started: every slot active, in index order, and the
    first shrinking pass min(n, 1000) steps away."""
    return np.arange(n, dtype=np.intc), np.array([n, min(n, SHRINK_EVERY), 0], dtype=np.int64)


def smo(const floating[:, ::1] K, const double[::1] kd, const signed char[::1] y, double[::1] alpha,
        double[::1] G, double C, double eps, Py_ssize_t max_steps, int[::1] perm=None,
        long long[::1] state=None, bint exact=True):
    """Pair updates in place on alpha (n,) (feasible: 0 <= alpha <= C, sum y alpha = 0) and its gradient
    G (n,) = y * (K @ (alpha * y)) - 1, until the maximal violation is below eps or max_steps steps.
    K (n, n) = X X^T, kd (n,) its diagonal. Returns (steps, converged).

    perm (n,) int32 and state (3,) int64 (see _smo) carry the shrinking between calls: start them with
    smo_start(n). Without them every call starts unshrunk. exact=False leaves G stale on the
    shrunk variables (perm[state[0]:]) on return; the next call with the same perm and state knows it."""
    cdef Py_ssize_t steps, n = K.shape[0], s, t
    cdef bint converged
    if perm is None:
        perm, state = smo_start(n)
    if n == 0:
        return 0, True
    cdef double[::1] a = np.empty(n), g = np.empty(n), ys = np.empty(n), q = np.empty(n), ay = np.empty(n)
    cdef int[::1] nz = np.empty(n, dtype=np.intc), order = np.zeros(n, dtype=np.intc)
    with nogil:
        for s in range(n):
            t = perm[s]
            a[s] = alpha[t]
            g[s] = -y[t] * G[t]
            ys[s] = y[t]
            q[s] = kd[t]
        steps = _smo(K, C, eps, max_steps, exact, &perm[0], &state[0], &a[0], &g[0], &ys[0], &q[0], &nz[0],
                     &ay[0], &order[0], &converged)
        for s in range(n if steps >= 0 else 0):
            t = perm[s]
            alpha[t] = a[s]
            G[t] = -ys[s] * g[s]
    if steps < 0:
        raise MemoryError("smo: out of memory for its working arrays")
    return steps, bool(converged)


def smo_update_pass(const floating[::1] Ki, const floating[::1] Kj, const int[::1] ix, double di, double dj,
                    double[::1] g, const double[::1] up):
    """One gradient-update pass of an SMO step (src_c/svm.c), exposed for the tests: g[s] -= Ki[ix[s]] di +
    Kj[ix[s]] dj in place for s < m = len(g); returns (the last s maximizing g[s] + up[s] or -1, that max).
    ix None: slot s reads entry s (plain loads). Unchecked: ix (m,) must index Ki and Kj (same dtype; at least
    m entries without ix), up (m,)."""
    cdef double gmax
    cdef Py_ssize_t i, m = g.shape[0]
    if m == 0:
        return -1, -INFINITY
    cdef const int* ixp = &ix[0] if ix is not None else NULL
    if floating is float:
        i = cnn_ssvm_update(&Ki[0], &Kj[0], ixp, m, di, dj, &g[0], &up[0], &gmax)
    else:
        i = cnn_dsvm_update(&Ki[0], &Kj[0], ixp, m, di, dj, &g[0], &up[0], &gmax)
    return i, gmax


def smo_select_pass(const floating[::1] Ki, const int[::1] ix, double Kii, double Gmax, const double[::1] g,
                    const double[::1] low, const double[::1] q):
    """The second-order selection pass of an SMO step (src_c/svm.c), exposed for the tests: returns (j, Gmax2)
    as svm.h describes them, m = len(g); ix None: slot s reads Ki[s]. Unchecked: ix, low, q (m,), ix indexing
    Ki."""
    cdef double gmax2
    cdef Py_ssize_t j, m = g.shape[0]
    if m == 0:
        return -1, -INFINITY
    cdef const int* ixp = &ix[0] if ix is not None else NULL
    if floating is float:
        j = cnn_ssvm_select(&Ki[0], ixp, m, Kii, Gmax, TAU, &g[0], &low[0], &q[0], &gmax2)
    else:
        j = cnn_dsvm_select(&Ki[0], ixp, m, Kii, Gmax, TAU, &g[0], &low[0], &q[0], &gmax2)
    return j, gmax2


def margins(const double[:, ::1] X, const double[::1] w, double[::1] z):
    """z (n,) = X (n, d) @ w (d,), one thread and the GIL released: the duality-gap checks run in the solver's
    own threads, where NumPy's BLAS would start (and spin) threads of its own. Unchecked shapes."""
    cdef Py_ssize_t i, n = X.shape[0], d = X.shape[1]
    with nogil:
        for i in range(n):
            z[i] = dot(&w[0], &X[i, 0], d) if d > 0 else 0.0


def combine(const double[:, ::1] X, const double[::1] v, double[::1] w):
    """w (d,) = X^T v = sum_i v_i x_i over the rows with v_i != 0 (alpha's support), as margins: one thread,
    the GIL released. Unchecked shapes."""
    cdef Py_ssize_t i, j, n = X.shape[0], d = X.shape[1]
    with nogil:
        for j in range(d):
            w[j] = 0.0
        for i in range(n):
            if v[i] != 0.0:
                axpy(v[i], &X[i, 0], &w[0], d)


def gram_into(const floating[:, ::1] X, floating[:, ::1] K, Py_ssize_t block):
    """K (n, n) = X (n, d) X^T, symmetric: each block of `block` rows (a multiple of MIRROR_TILE) times the
    rows up to its end, written straight into K by the GEMM (its threads touch K's fresh pages: on this VM
    the first write of 256 MiB took 0.25-0.85 s, more than a serial copy should), then every entry right of
    its row's block copied from its mirror image in MIRROR_TILE^2 transposed tiles, the tile rows shared among
    get_num_threads() threads. Unchecked shapes."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], r0, r1, tile, t, i0, j0, i, j, ntiles
    cdef int err = 0
    if n == 0:
        return
    with nogil:
        r0 = 0
        while r0 < n and err == 0:
            r1 = r0 + block if r0 + block < n else n
            err = gemm(False, True, r1 - r0, r1, d, <floating>1.0, &X[r0, 0], d, &X[0, 0], d, <floating>0.0,
                       &K[r0, 0], n)
            r0 = r1
        ntiles = (n + MIRROR_TILE - 1) // MIRROR_TILE
        if err == 0:
            for tile in prange(ntiles, schedule="dynamic", num_threads=team_size(ntiles)):
                i0 = tile * MIRROR_TILE
                j0 = (i0 // block + 1) * block  # the first column its GEMM block did not compute
                while j0 < n:
                    for i in range(i0, min(i0 + MIRROR_TILE, n)):
                        for j in range(j0, min(j0 + MIRROR_TILE, n)):
                            K[i, j] = K[j, i]
                    j0 = j0 + MIRROR_TILE
    if err != 0:
        raise MemoryError("gram_into: out of memory for the GEMM's packing buffers")
