"""Linear soft-margin SVM: an exact dual solver (default) or mini-batch stochastic subgradient descent.

Objective (per binary problem, labels y_i in {-1, +1}, bias b not regularized):

    J(w, b) = 1/2 ||w||^2 + C * sum_i max(0, 1 - y_i (w.x_i + b))

This is scikit-learn's SVC(kernel='linear', C=C) objective, so C means what it means there: the SUM of the
hinge losses is weighted by C (a larger training set weighs more against the regularizer). It is also
LinearSVC(loss='hinge', C=C) except that LinearSVC regularizes b through its synthetic intercept feature.

solver='dual' (default): the dual of J,

    max_alpha  sum_i alpha_i - 1/2 ||sum_i alpha_i y_i x_i||^2,  0 <= alpha_i <= C,  sum_i y_i alpha_i = 0,

solved exactly by SMO (LIBSVM's solver: Fan, Chen and Lin 2005, second-order working-set selection and
shrinking; compiled, cnn_core.kernels.svm), whose pair updates keep sum_i y_i alpha_i = 0 exactly (the price
of b being free: LIBLINEAR's one-coordinate steps cannot keep it and regularize b instead, which changes the
optimum). Two ways, by the number of samples n:
- n <= GRAM_MAX_SAMPLES (the default way): the Gram matrix K = X X^T is computed once, in float32 (256 MiB at n =
  8192; in X's precision up to GRAM64_MAX_SAMPLES), and shared by every one-vs-rest problem; each runs SMO from
  alpha = 0 on all n points with shrinking (once few points are left active, their block of K is copied so that a
  step reads contiguous rows), and the check below is made whenever SMO meets its violation tolerance (then
  divided by 10) or after SMO_CHUNK * n steps. float32 K is the QP of a matrix within ~1e-6 of K, so for SMO
  tolerances below GRAM32_EPS_FLOOR (tol far below the default) the problem goes on with the exact-Gram rounds
  below. A pair step passes twice over the active points (the gradient update fused with the next i, then
  the choice of j: src_c/svm.c, AVX2/AVX-512), reading two rows of K with plain vector loads. Measured on the
  embedded digits (8,000 x 784, C = 1, one thread, CPU time): 20k-60k pair steps per class, SMO 0.86 s for
  the ten classes (3.7 s with scalar passes that gathered K's entries through the shrinking permutation), the
  Gram product 0.6 s plus ~0.15 s for the first touch of K's 256 MiB.
- larger n: WARM_EPOCHS epochs of dual coordinate descent (Hsieh et al. 2008, LIBLINEAR's, with its
  shrinking) find the points that matter: J gets a proximal term (b - c)^2 / (2 rho), whose dual is
  box-constrained (w = sum alpha_i y_i x_i kept explicit) with b = c + rho sum_i y_i alpha_i, the center
  moving to the current bias after every epoch (the method of multipliers for the equality constraint;
  rho = RHO_SCALE * mean ||x_i||^2). Alone it is slow when C ||x||^2 is large (on the embedded digits it did
  not reach the gap below in 1,000 epochs). Then SMO rounds on the points with alpha_i > 0 or a margin below
  1 + MARGIN_SLACK (at most SMO_MAX_ACTIVE of them: their Gram matrix, in X's precision, per round), the
  check, and further rounds (SMO's tolerance divided by 10) until it passes; were there too many active
  points, coordinate descent goes on alone.
Stopping rule, from the full margins: the duality gap J(w, b*) - D(alpha') <= tol * J(w, b*), where b* is
the exact best bias for w (the minimum of a piecewise linear function, found by sorting) and alpha' is alpha
(scaled onto sum y_i alpha_i = 0 where coordinate descent left it off), so that D(alpha') is a lower bound of
min J: the objective returned is certified within the fraction tol of the optimum. Not reaching it within
max_iter epochs and rounds emits a ConvergenceWarning. The binary problems are independent and solved
get_num_threads() at a time (the thread count never changes a result).

solver='sgd': J / (C n) = lambda/2 ||w||^2 + mean hinge with lambda = 1 / (C n) has the same minimizer. Each
step takes a mini-batch B, the hinge subgradient g_w = -1/|B| sum_{i in B, y_i(w.x_i+b) < 1} y_i x_i (g_b
likewise), and the step size eta_t = lr / (1 + lr * lambda * t) (t = steps taken so far): lr at the start,
then 1 / (lambda t) as in Pegasos (scikit-learn's 'optimal' schedule). The L2 term is applied as its proximal
step, w <- (w - eta_t g_w) / (1 + eta_t lambda), which stays stable for any lr. Several classes are
one-vs-rest, all problems updated together with one matrix product per batch. It has no certificate of
optimality: it stops after max_epochs passes or when J stalls (tol, n_iter_no_change).

Range: the weights grow like C n |x| and must stay inside float64, so C is taken in [1e-100, 1e100] and every
row of X must have a finite squared norm sum_j x_ij^2 (|x| below about 1e154 / sqrt(d)). Should a solver still
overflow (e.g. sgd with a huge lr), fit raises ValueError rather than return NaN or infinite coefficients.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnn_core._config import get_num_threads
from cnn_core._validation import check_bool, check_choice, check_int, check_real, check_seed
from cnn_core.kernels import _svm, gemm
from cnn_core.models._base import ConvergenceWarning, LinearClassifier, _sklearn_flavour, encode_labels

__all__ = ["LinearSVM"]

C_RANGE = (1e-100, 1e100)
SOLVERS = ("dual", "sgd")
CHECK_EVERY = 10  # dual solver without SMO: epochs between two duality-gap checks (a check costs ~2 epochs)
RHO_SCALE = 0.01  # rho = RHO_SCALE * mean ||x_i||^2: measured best of 0.001..10 on digits 3-vs-5
WARM_EPOCHS = 10  # dual solver: coordinate-descent epochs that find the active points before SMO
MARGIN_SLACK = 0.5  # SMO's active points: alpha_i > 0 or y_i (w.x_i + b) < 1 + MARGIN_SLACK
SMO_MAX_ACTIVE = 4096  # at most this many active points for SMO (their Gram matrix: 128 MiB)
GRAM_MAX_SAMPLES = 8192  # up to this many samples: one float32 Gram matrix of X for every problem (256 MiB)
GRAM64_MAX_SAMPLES = 2048  # up to this many samples the shared Gram matrix is in X's precision (32 MiB)
GRAM_BLOCK = 1024  # rows of the Gram matrix computed per product (its lower triangle only, then mirrored)
GRAM32_EPS_FLOOR = 1e-6  # below this SMO tolerance the float32 Gram gives way to exact ones (_GramProblem.polish)
SMO_CHUNK = 4  # full-Gram SMO: at most SMO_CHUNK * n pair steps between two duality-gap checks


def svm_objective(W: np.ndarray, B: np.ndarray, X: np.ndarray, T: np.ndarray, C: float) -> float:
    """Sum over the binary problems of 1/2 ||w||^2 + C sum_i hinge(y_i (w.x_i + b)); W (k, d), T (n, k)."""
    hinge = np.maximum(0.0, 1.0 - T * (X @ W.T + B))
    return float(0.5 * np.sum(W * W) + C * hinge.sum())


def best_bias(z: np.ndarray, y: np.ndarray) -> float:
    """The b minimizing sum_i max(0, 1 - y_i (z_i + b)) for margins-to-be z (n,) and labels y in {-1, +1}.

    The sum is convex and piecewise linear with kinks at b_i = y_i - z_i; right of b its slope is
    #{y_i = -1, b_i <= b} - #{y_i = +1, b_i > b}, so the first kink where that is >= 0 is a minimizer.
    """
    kinks = y - z
    order = np.argsort(kinks, kind="stable")
    neg = np.cumsum(y[order] < 0)
    pos_after = np.count_nonzero(y > 0) - np.cumsum(y[order] > 0)
    return float(kinks[order][np.argmax(neg - pos_after >= 0)])


def gram(X: np.ndarray) -> np.ndarray:
    """K = X X^T (n, n): in X's precision up to GRAM64_MAX_SAMPLES samples, else float32 from float32
    products (K is symmetric: only the blocks on and below the diagonal are multiplied, the others are
    copies; kernels._svm.gram_into)."""
    n = X.shape[0]
    dtype = X.dtype if n <= GRAM64_MAX_SAMPLES else np.float32
    Xc = np.ascontiguousarray(X, dtype=dtype)
    if n <= GRAM_BLOCK:  # one block: the whole product
        return gemm(Xc, Xc, trans_b=True)
    K = np.empty((n, n), dtype=dtype)
    _svm.gram_into(Xc, K, GRAM_BLOCK)
    return K


class _GramProblem:
    """One binary problem solved by SMO alone on all n points, with the Gram matrix K shared by every
    problem; the duality gap is checked whenever SMO meets its violation tolerance (then divided by 10) or
    has made SMO_CHUNK * n steps."""

    def __init__(self, X: np.ndarray, K: np.ndarray, kd: np.ndarray, t: np.ndarray, C: float):
        self.X, self.K, self.kd, self.t, self.y, self.C = X, K, kd, t, t.astype(np.int8), C
        n = X.shape[0]
        self.alpha, self.G, self.w = np.zeros(n), -np.ones(n), np.zeros(X.shape[1])
        self.perm, self.state = _svm.smo_start(n)
        self.smo_eps = 1e-3
        self.epochs, self.rounds, self.done = 0, 0, False
        self.b, self.J, self.gap = 0.0, float(C * n), np.inf

    def solve(self, tol: float, max_iter: int) -> None:
        n = self.X.shape[0]
        while not self.done and self.rounds < max_iter:
            if self.smo_eps < GRAM32_EPS_FLOOR and self.K.dtype == np.float32:
                self.polish(tol, max_iter)
                return
            steps, converged = _svm.smo(self.K, self.kd, self.y, self.alpha, self.G, self.C, self.smo_eps,
                                        SMO_CHUNK * n, self.perm, self.state, False)
            self.rounds += 1
            if converged:
                self.smo_eps *= 0.1
            _svm.combine(self.X, self.alpha * self.t, self.w)
            _check_gap(self, tol)

    def polish(self, tol: float, max_iter: int) -> None:
        """Go on with _DualProblem's SMO rounds from this alpha: their Gram matrix (of the points that can
        matter) is exact in X's precision, where this one's float32 rounding (relative ~1e-6 from float32
        products) can keep the gap above a tol much below 1e-4."""
        p = _DualProblem(self.X, self.t, np.einsum("ij,ij->i", self.X, self.X) + 1.0, self.C, 1.0, 1)
        p.alpha, p.w, p.smo_eps, p.rounds = self.alpha, self.w, self.smo_eps, self.rounds
        _check_gap(p, tol)
        while not p.done and p.rounds < max_iter:
            p.smo_round(max_iter * self.X.shape[0])
            p.check(tol)
        self.alpha, self.w, self.rounds = p.alpha, p.w, p.rounds
        self.b, self.J, self.gap, self.done = p.b, p.J, p.gap, p.done


def _check_gap(p, tol: float) -> None:
    """Primal J at the exact best bias, the dual bound at alpha (feasible: sum y alpha = 0), the stopping test."""
    z = np.empty(p.X.shape[0])
    _svm.margins(p.X, p.w, z)
    p.b = best_bias(z, p.t)
    p.J = float(0.5 * p.w @ p.w + p.C * np.maximum(0.0, 1.0 - p.t * (z + p.b)).sum())
    p.gap = p.J - float(p.alpha.sum() - 0.5 * p.w @ p.w)
    p.done = p.gap <= tol * p.J


class _DualProblem:
    """One binary problem of the dual solver (module docstring): alpha (n,) and w = sum_i alpha_i y_i x_i."""

    def __init__(self, X: np.ndarray, t: np.ndarray, qd: np.ndarray, C: float, rho: float, seed: int):
        self.X, self.t, self.y, self.qd = X, t, t.astype(np.int8), qd
        self.C, self.rho, self.seed = C, rho, seed
        n, d = X.shape
        self.alpha, self.w, self.bias = np.zeros(n), np.zeros(d), np.zeros(2)
        self.index = np.arange(n, dtype=np.int32)
        self.eps = 1.0  # coordinate descent's projected-gradient tolerance, tightened each time it is met
        self.smo_eps = 1e-3  # SMO's violation tolerance (LIBSVM's default), tightened likewise
        self.epochs, self.rounds, self.done = 0, 0, False
        self.b, self.J, self.gap = 0.0, float(C * n), np.inf
        self.gram = (np.zeros(0, dtype=np.intp), None)  # (active points, their Gram matrix) of the last round

    def descend(self, epochs: int) -> None:
        """Coordinate descent epochs on the proximal-bias dual (alpha may leave sum y alpha = 0 meanwhile)."""
        ran, converged = _svm.dcd(self.X, self.y, self.qd, self.alpha, self.w, self.bias, self.index, self.C,
                                  self.rho, self.eps, epochs, self.seed + self.epochs)
        self.epochs += ran
        if converged:
            self.eps *= 0.1

    def smo_round(self, max_steps: int) -> bool:
        """SMO on the points that can matter: alpha_i > 0 or margin below 1 + MARGIN_SLACK at the best bias.
        False (nothing done) when there are more than SMO_MAX_ACTIVE of them."""
        self.make_feasible()
        z = self.X @ self.w
        margins = self.t * (z + best_bias(z, self.t))
        active = np.flatnonzero((self.alpha > 0) | (margins < 1.0 + MARGIN_SLACK))
        if active.size > SMO_MAX_ACTIVE:
            return False
        if self.rounds == 0:
            # coordinate descent only chose the active points: its alphas, scaled onto the constraint, are a
            # poor start for SMO (measured: 2-5x the steps of a start from 0 on digits one-vs-rest)
            self.alpha[:] = 0.0
            self.w[:] = 0.0
            z = np.zeros_like(z)
        XA = self.X[active]
        aA = self.alpha[active]
        # the Gram matrix of the active points: sliced from the previous round's when they are among its points
        last, K_last = self.gram
        pos = np.searchsorted(last, active)
        if last.size and (pos < last.size).all() and (last[np.minimum(pos, last.size - 1)] == active).all():
            K = K_last[np.ix_(pos, pos)]
        else:
            K = gemm(XA, XA, trans_b=True)
        self.gram = (active, K)
        # exact gradient y_t w.x_t - 1: every alpha_i > 0 is in the active set, so w is theirs
        GA = self.t[active] * z[active] - 1.0
        steps, converged = _svm.smo(K, self.qd[active] - self.rho, self.y[active], aA, GA, self.C,
                                    self.smo_eps, max_steps)
        self.alpha[active] = aA
        self.w = XA.T @ (aA * self.t[active])
        self.rounds += 1
        if converged:
            self.smo_eps *= 0.1
        return True

    def make_feasible(self) -> None:
        """Scale the alphas of the heavier side down so that sum_i y_i alpha_i = 0 (they stay in the box)."""
        t, alpha = self.t, self.alpha
        pos, neg = alpha[t > 0].sum(), alpha[t < 0].sum()
        if pos == neg:
            return
        heavy, r = (t > 0, neg / pos) if pos > neg else (t < 0, pos / neg)
        self.w -= (1.0 - r) * (self.X.T @ (alpha * heavy))
        alpha[heavy] *= r
        self.bias[1] = 0.0

    def check(self, tol: float) -> None:
        """Primal J at the exact best bias, the dual bound at alpha made feasible, and the stopping test."""
        X, t, alpha, C = self.X, self.t, self.alpha, self.C
        z = X @ self.w
        self.b = best_bias(z, t)
        self.J = float(0.5 * self.w @ self.w + C * np.maximum(0.0, 1.0 - t * (z + self.b)).sum())
        pos, neg = alpha[t > 0].sum(), alpha[t < 0].sum()
        heavy, r = (t > 0, neg / pos) if pos > neg else (t < 0, pos / neg if neg > 0 else 1.0)
        w_feasible = self.w - (1.0 - r) * (X.T @ (alpha * heavy)) if r != 1.0 else self.w
        D = float(alpha.sum() - (1.0 - r) * alpha[heavy].sum() - 0.5 * w_feasible @ w_feasible)
        self.gap = self.J - D
        self.done = self.gap <= tol * self.J

    def solve(self, tol: float, max_iter: int) -> None:
        """WARM_EPOCHS of coordinate descent, then SMO rounds on the active points until the gap test is met;
        coordinate descent alone when the active points are too many for their Gram matrix."""
        self.descend(min(WARM_EPOCHS, max_iter))
        self.check(tol)
        smo = True
        while not self.done and self.epochs + self.rounds < max_iter:
            if smo:
                smo = self.smo_round(max_iter * self.X.shape[0])
            if not smo:
                self.descend(min(CHECK_EVERY, max_iter - self.epochs - self.rounds))
            self.check(tol)


def _solve(p, tol: float, max_iter: int) -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected by the caller
        p.solve(tol, max_iter)


def _solve_all(problems: list, tol: float, max_iter: int) -> None:
    """Solve the binary problems, get_num_threads() of them at a time: each is independent of the others
    (its own alpha, w and visiting order, read-only X and K), so the thread count never changes a result.
    The compiled SMO releases the GIL."""
    workers = min(get_num_threads(), len(problems))
    if workers <= 1:
        for p in problems:
            _solve(p, tol, max_iter)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(_solve, p, tol, max_iter) for p in problems]:
            future.result()


class LinearSVM(LinearClassifier):
    """Linear soft-margin SVM (hinge loss, L2 regularizer) with scikit-learn's estimator API.

    Parameters
    ----------
    C : weight of the summed hinge loss, in [1e-100, 1e100], as in scikit-learn's SVC/LinearSVC (see the
        module docstring).
    lr : solver='sgd': initial step size (> 0) of the schedule eta_t = lr / (1 + lr lambda t), lambda = 1/(C n).
    max_epochs : solver='sgd': maximum number of passes over the training set (>= 1).
    batch_size : solver='sgd': mini-batch size (>= 1; capped at n). batch_size >= n gives full-batch
        subgradient descent.
    tol : solver='dual': stop when the duality gap is at most tol * J (tol >= 0; 0 runs max_iter), which
        bounds J's excess over the optimum by the fraction tol. solver='sgd': stop when J has not dropped
        below (1 - tol) times its best value for n_iter_no_change consecutive passes (tol >= 0).
    n_iter_no_change : solver='sgd': see tol (>= 1).
    shuffle : solver='sgd': draw a new batch partition each pass (the dual solver's coordinate descent
        visits the points in a new random order each epoch).
    random_state : seed (or None) of np.random.default_rng, which drives the order of sgd's batches and of
        the dual solver's coordinate descent (used for n > GRAM_MAX_SAMPLES only; SMO is deterministic).
    solver : 'dual' (exact: SMO, after coordinate descent for large n; the default) or 'sgd' (see the
        module docstring).
    max_iter : solver='dual': maximum number of coordinate-descent epochs plus SMO rounds per binary problem
        (>= 1; an SMO round makes at most SMO_CHUNK * n pair steps with the shared Gram matrix, max_iter * n
        otherwise); a ConvergenceWarning says when the gap test was not met within them.

    Attributes (after fit)
    ----------------------
    classes_, coef_ (k, d), intercept_ (k,) : k = 1 for two classes (positive = classes_[1]), else one row
        per class (one-vs-rest). n_iter_ : passes run (dual: the most coordinate-descent epochs plus SMO rounds
        any binary problem took).
        loss_curve_ : J summed over the problems after each pass (sgd), or [the final J summed over the
        problems] (dual). dual only: duality_gap_ (k,) the final duality gap of each problem, an upper bound
        of its J - min J.
    """

    def __init__(self, C: float = 1.0, lr: float = 0.1, max_epochs: int = 100, batch_size: int = 32,
                 tol: float = 1e-4, n_iter_no_change: int = 5, shuffle: bool = True,
                 random_state: int | None = None, solver: str = "dual", max_iter: int = 1000):
        self.C = C
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.shuffle = shuffle
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter

    def fit(self, X, y) -> "LinearSVM":
        """Minimize J for each binary problem; returns self."""
        C = check_real(self.C, "C", 0.0, low_open=True)
        if not C_RANGE[0] <= C <= C_RANGE[1]:
            raise ValueError(f"C: expected a number in [{C_RANGE[0]:g}, {C_RANGE[1]:g}] (the solver works with "
                             f"1/(C n_samples) and weights that grow like C n_samples |x|), got {C!r}")
        # every hyperparameter is checked, whichever solver uses it
        solver = check_choice(self.solver, "solver", SOLVERS)
        lr = check_real(self.lr, "lr", 0.0, low_open=True)
        max_epochs = check_int(self.max_epochs, "max_epochs", 1)
        batch_size = check_int(self.batch_size, "batch_size", 1)
        tol = check_real(self.tol, "tol", 0.0)
        patience = check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        max_iter = check_int(self.max_iter, "max_iter", 1)
        check_bool(self.shuffle, "shuffle")
        check_seed(self.random_state, "random_state")
        X, y = self._fit_data(X, y)
        with np.errstate(over="ignore"):  # an overflow is what this looks for
            row_sq = np.einsum("ij,ij->i", X, X)
        if not np.isfinite(row_sq).all():
            raise ValueError(f"X: expected rows with a finite squared norm sum_j x_ij^2 (|x| below about "
                             f"{1.3e154 / np.sqrt(X.shape[1]):.2g} for {X.shape[1]} features), got max |x| = "
                             f"{np.abs(X).max():.3g}; rescale the features (e.g. standardize them)")
        self.classes_, T = encode_labels(y)
        rng = np.random.default_rng(self.random_state)
        if solver == "dual":
            return self._fit_dual(X, T, row_sq, C, tol, max_iter, rng)
        return self._fit_sgd(X, T, C, lr, max_epochs, batch_size, tol, patience, rng)

    def _fit_dual(self, X, T, row_sq, C, tol, max_iter, rng) -> "LinearSVM":
        X = np.ascontiguousarray(X)  # rows read by the compiled margins (kernels._svm.margins / combine)
        if X.shape[0] <= GRAM_MAX_SAMPLES:
            K = gram(X)
            kd = np.diagonal(K).astype(np.float64)
            problems = [_GramProblem(X, K, kd, np.ascontiguousarray(T[:, k]), C) for k in range(T.shape[1])]
        else:
            # rho: the proximal weight of b (module docstring); any rho > 0 gives the same optimum
            rho = RHO_SCALE * float(row_sq.mean()) if row_sq.any() else 1.0
            qd = row_sq + rho
            problems = [_DualProblem(X, np.ascontiguousarray(T[:, k]), qd, C, rho, int(rng.integers(1, 2 ** 62)))
                        for k in range(T.shape[1])]
        _solve_all(problems, tol, max_iter)
        J = sum(p.J for p in problems)
        if not np.isfinite(J):
            raise ValueError(f"LinearSVM.fit: the solver overflowed (objective {J}); lower C (got {C!r}) "
                             f"or rescale X (max |x| = {np.abs(X).max():.3g})")
        self.loss_curve_ = [J]
        self.n_iter_ = max(p.epochs + p.rounds for p in problems)
        self.duality_gap_ = np.array([p.gap for p in problems])
        if not all(p.done for p in problems):
            warnings.warn(f"LinearSVM: the dual solver did not reach a duality gap of tol={tol:g} times the "
                          f"objective within max_iter={max_iter} epochs (relative gaps "
                          f"{[float(f'{p.gap / p.J:.3g}') for p in problems]}); raise max_iter or tol",
                          _sklearn_flavour(ConvergenceWarning, "sklearn.exceptions", "ConvergenceWarning"),
                          stacklevel=3)
        self.coef_ = np.array([p.w for p in problems])
        self.intercept_ = np.array([p.b for p in problems])
        return self

    def _fit_sgd(self, X, T, C, lr, max_epochs, batch_size, tol, patience, rng) -> "LinearSVM":
        n, d = X.shape
        lam = 1.0 / (C * n)
        W, B = np.zeros((T.shape[1], d)), np.zeros(T.shape[1])
        self.loss_curve_, self.n_iter_ = [], 0
        best, stale, t = np.inf, 0, 0
        while self.n_iter_ < max_epochs and stale < patience:
            if self.shuffle:
                perm = rng.permutation(n)
                Xs, Ts = X[perm], T[perm]
            else:
                Xs, Ts = X, T
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected below, once per pass
                for start in range(0, n, batch_size):
                    Xb, Tb = Xs[start:start + batch_size], Ts[start:start + batch_size]
                    # A_ik = y_ik where the hinge of point i is active in problem k: -A/|B| is dhinge/dz
                    A = Tb * (Tb * (Xb @ W.T + B) < 1.0)
                    eta = lr / (1.0 + lr * lam * t)
                    step = eta / Xb.shape[0]
                    W += step * (A.T @ Xb)
                    W /= 1.0 + eta * lam
                    B += step * A.sum(axis=0)
                    t += 1
                J = svm_objective(W, B, X, T, C)
            self.n_iter_ += 1
            if not (np.isfinite(J) and np.isfinite(W).all() and np.isfinite(B).all()):
                raise ValueError(f"LinearSVM.fit: the solver overflowed in pass {self.n_iter_} (objective {J}); "
                                 f"lower lr (got {lr!r}) or C (got {C!r}), or rescale X (max |x| = "
                                 f"{np.abs(X).max():.3g})")
            self.loss_curve_.append(J)
            stale = stale + 1 if J > best * (1.0 - tol) else 0
            best = min(best, J)
        self.coef_, self.intercept_ = W, B
        return self
