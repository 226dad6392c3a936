"""Linear soft-margin SVM trained in the primal by mini-batch stochastic subgradient descent.

Objective (per binary problem, labels y_i in {-1, +1}, bias b not regularized):

    J(w, b) = 1/2 ||w||^2 + C * sum_i max(0, 1 - y_i (w.x_i + b))

This is scikit-learn's SVC(kernel='linear', C=C) objective, so C means what it means there: the SUM of the
hinge losses is weighted by C (a larger training set weighs more against the regularizer). It is also
LinearSVC(loss='hinge', C=C) except that LinearSVC regularizes b through its synthetic intercept feature.

Solver: J / (C n) = lambda/2 ||w||^2 + mean hinge with lambda = 1 / (C n) has the same minimizer. Each step
takes a mini-batch B, the hinge subgradient g_w = -1/|B| sum_{i in B, y_i(w.x_i+b) < 1} y_i x_i (g_b likewise),
and the step size eta_t = lr / (1 + lr * lambda * t) (t = steps taken so far): lr at the start, then
1 / (lambda t) as in Pegasos (scikit-learn's 'optimal' schedule). The L2 term is applied as its proximal
step, w <- (w - eta_t g_w) / (1 + eta_t lambda), which stays stable for any lr. Several classes are
one-vs-rest, all problems updated together with one matrix product per batch.

Range: lambda = 1/(C n) and the weights, which grow like C n |x|, must stay inside float64, so C is taken in
[1e-100, 1e100] and every row of X must have a finite squared norm sum_j x_ij^2 (|x| below about
1e154 / sqrt(d)). Should the solver still overflow (e.g. a huge lr), fit raises ValueError rather than
return NaN or infinite coefficients.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_int, check_real, check_seed
from cnn_core.models._base import LinearClassifier, encode_labels

__all__ = ["LinearSVM"]

C_RANGE = (1e-100, 1e100)


def svm_objective(W: np.ndarray, B: np.ndarray, X: np.ndarray, T: np.ndarray, C: float) -> float:
    """Sum over the binary problems of 1/2 ||w||^2 + C sum_i hinge(y_i (w.x_i + b)); W (k, d), T (n, k)."""
    hinge = np.maximum(0.0, 1.0 - T * (X @ W.T + B))
    return float(0.5 * np.sum(W * W) + C * hinge.sum())


class LinearSVM(LinearClassifier):
    """Linear soft-margin SVM (hinge loss, L2 regularizer) with scikit-learn's estimator API.

    Parameters
    ----------
    C : weight of the summed hinge loss, in [1e-100, 1e100], as in scikit-learn's SVC/LinearSVC (see the
        module docstring).
    lr : initial step size (> 0) of the schedule eta_t = lr / (1 + lr lambda t), lambda = 1 / (C n).
    max_epochs : maximum number of passes over the training set (>= 1).
    batch_size : mini-batch size (>= 1; capped at n). batch_size >= n gives full-batch subgradient descent.
    tol, n_iter_no_change : stop when J has not dropped below (1 - tol) times its best value for
        n_iter_no_change consecutive passes (tol >= 0).
    shuffle : draw a new batch partition each pass from np.random.default_rng(random_state).
    random_state : seed (or None).

    Attributes (after fit)
    ----------------------
    classes_, coef_ (k, d), intercept_ (k,) : k = 1 for two classes (positive = classes_[1]), else one row
        per class (one-vs-rest). n_iter_ : passes run. loss_curve_ : J after each pass (summed over problems).
    """

    def __init__(self, C: float = 1.0, lr: float = 0.1, max_epochs: int = 100, batch_size: int = 32,
                 tol: float = 1e-4, n_iter_no_change: int = 5, shuffle: bool = True,
                 random_state: int | None = None):
        self.C = C
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.shuffle = shuffle
        self.random_state = random_state

    def fit(self, X, y) -> "LinearSVM":
        """Minimize J for each binary problem; returns self."""
        C = check_real(self.C, "C", 0.0, low_open=True)
        if not C_RANGE[0] <= C <= C_RANGE[1]:
            raise ValueError(f"C: expected a number in [{C_RANGE[0]:g}, {C_RANGE[1]:g}] (the solver works with "
                             f"1/(C n_samples) and weights that grow like C n_samples |x|), got {C!r}")
        lr = check_real(self.lr, "lr", 0.0, low_open=True)
        max_epochs = check_int(self.max_epochs, "max_epochs", 1)
        batch_size = check_int(self.batch_size, "batch_size", 1)
        tol = check_real(self.tol, "tol", 0.0)
        patience = check_int(self.n_iter_no_change, "n_iter_no_change", 1)
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
        n, d = X.shape
        lam = 1.0 / (C * n)
        W, B = np.zeros((T.shape[1], d)), np.zeros(T.shape[1])
        rng = np.random.default_rng(self.random_state)
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
