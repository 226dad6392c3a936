"""The perceptron of the deck: f(x) = sign(w.x + b), learned by minimizing L(w, b) = -sum_{x_i in M} y_i (w.x_i + b).

Three learning rules, each from w0 = 0, b0 = 0:
- 'primal': pick (x_i, y_i); if y_i (w.x_i + b) <= 0 then w += eta y_i x_i, b += eta y_i; repeat until no
  point is misclassified (the compiled cnn_core.kernels.perceptron_epoch runs each pass).
- 'greedy' (the deck's variant for data that are not linearly separable): the update above is only a
  candidate (w^, b^); it is kept when L(w^, b^) < L(w, b). L cannot see points lying exactly on the
  hyperplane (their terms are 0) although the rule counts them as misclassified, so two refinements: at
  equal L a candidate is also kept when it lowers the number of misclassified points (y_i (w.x_i + b) <= 0),
  and the first update from w0 = 0, b0 = 0 (where every point lies on the hyperplane, L = 0 is already L's
  global minimum and no candidate could lower it) is taken unconditionally, as in the primal algorithm.
  Learning stops when no point is misclassified, or after a pass that kept no candidate (w, b no longer
  change, so neither would the candidates of any later pass).
- 'pocket' (Gallant): primal updates, but the weights returned are those with the fewest training errors
  (points with y_i (w.x_i + b) <= 0) seen after any update.

Convergence (Novikoff; Li Hang, Statistical Learning Methods, sec. 2.3.2, the proof the deck cites): write
x^ = (x, 1) and w^ = (w, b). If some unit ||w^_opt|| = 1 has y_i (w^_opt . x^_i) >= gamma > 0 for all i and
R = max_i ||x^_i||, the primal algorithm makes at most (R / gamma)^2 updates, whatever eta and the order.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_choice, check_int, check_real, check_seed
from cnn_core.kernels import perceptron_epoch
from cnn_core.models._base import LinearClassifier, encode_labels

__all__ = ["Perceptron"]

ALGORITHMS = ("primal", "greedy", "pocket")


def perceptron_loss(m: np.ndarray) -> float:
    """The deck's L(w, b) from the margins m_i = y_i (w.x_i + b): -sum of the negative ones."""
    return float(-m[m < 0].sum())


class _Primal:
    """One binary problem learned with the primal rule; each pass is the compiled kernel."""

    def __init__(self, X: np.ndarray, t: np.ndarray, eta: float):
        self.X, self.t, self.eta = X, t, eta
        self.w, self.b = np.zeros(X.shape[1]), 0.0
        self.done = False

    def margins(self, w: np.ndarray, b: float) -> np.ndarray:
        return self.t * (self.X @ w + b)

    def epoch(self, order: np.ndarray | None) -> int:
        self.b, n_updates = perceptron_epoch(self.X, self.t, self.w, self.b, self.eta, order)
        self.done = bool((self.margins(self.w, self.b) > 0).all())
        return n_updates

    def weights(self) -> tuple[np.ndarray, float]:
        return self.w, self.b


class _Greedy(_Primal):
    """Candidates kept when they lower (L, number misclassified) lexicographically; O(n d) per candidate."""

    def epoch(self, order: np.ndarray | None) -> int:
        X, t, eta = self.X, self.t, self.eta
        m = self.margins(self.w, self.b)  # recomputed each pass so rounding cannot accumulate
        L, errors = perceptron_loss(m), np.count_nonzero(m <= 0)
        n_updates = 0
        for i in (range(X.shape[0]) if order is None else order):
            if m[i] > 0:
                continue
            # margin change of every point j under w += eta t_i x_i, b += eta t_i
            m_hat = m + (eta * t[i]) * t * (X @ X[i] + 1.0)
            L_hat, errors_hat = perceptron_loss(m_hat), np.count_nonzero(m_hat <= 0)
            first = self.b == 0.0 and not self.w.any()
            if L_hat < L or (L_hat == L and errors_hat < errors) or first:
                self.w += (eta * t[i]) * X[i]
                self.b += eta * t[i]
                m, L, errors = m_hat, L_hat, errors_hat
                n_updates += 1
        self.done = n_updates == 0 or bool((self.margins(self.w, self.b) > 0).all())
        return n_updates


class _Pocket(_Primal):
    """Primal updates; the pocket holds the weights with the fewest errors seen after any update."""

    def __init__(self, X: np.ndarray, t: np.ndarray, eta: float):
        super().__init__(X, t, eta)
        self.pocket_w, self.pocket_b = self.w.copy(), 0.0
        self.best = X.shape[0]  # at w = 0, b = 0 every margin is 0: all points count as errors

    def epoch(self, order: np.ndarray | None) -> int:
        X, t, eta = self.X, self.t, self.eta
        m = self.margins(self.w, self.b)
        n_updates = 0
        for i in (range(X.shape[0]) if order is None else order):
            if m[i] > 0:
                continue
            self.w += (eta * t[i]) * X[i]
            self.b += eta * t[i]
            m += (eta * t[i]) * t * (X @ X[i] + 1.0)
            n_updates += 1
            if np.count_nonzero(m <= 0) < self.best:
                m = self.margins(self.w, self.b)  # exact count before the weights go in the pocket
                errors = np.count_nonzero(m <= 0)
                if errors < self.best:
                    self.best, self.pocket_w, self.pocket_b = errors, self.w.copy(), self.b
        self.done = self.best == 0
        return n_updates

    def weights(self) -> tuple[np.ndarray, float]:
        return self.pocket_w, self.pocket_b


_LEARNERS = {"primal": _Primal, "greedy": _Greedy, "pocket": _Pocket}


class Perceptron(LinearClassifier):
    """The deck's perceptron with scikit-learn's estimator API.

    Parameters
    ----------
    eta : learning rate (> 0). With w0 = 0, b0 = 0 the primal rule's predictions do not depend on it.
    max_epochs : maximum number of passes over the training set (>= 1).
    algorithm : 'primal', 'greedy' or 'pocket' (see the module docstring).
    shuffle : visit the points in a new random order each pass (one permutation per pass, shared by the
        one-vs-rest problems), drawn from np.random.default_rng(random_state); else in index order.
    random_state : seed (or None) for the shuffling.

    Attributes (after fit)
    ----------------------
    classes_ : the sorted labels. Two classes give one binary problem (positive = classes_[1]); more give
        one problem per class (one-vs-rest), all trained pass by pass in lockstep.
    coef_ (k, d), intercept_ (k,) : w and b (the pocket weights for 'pocket'); k = 1 for two classes.
    n_iter_ : passes run. n_updates_ : weight updates made (summed over the one-vs-rest problems).
    converged_ : True when every binary problem ends with no training point misclassified.
    loss_curve_ : L(w, b) of the weights reported (summed over problems) after each pass.
    """

    def __init__(self, eta: float = 1.0, max_epochs: int = 1000, algorithm: str = "primal",
                 shuffle: bool = True, random_state: int | None = None):
        self.eta = eta
        self.max_epochs = max_epochs
        self.algorithm = algorithm
        self.shuffle = shuffle
        self.random_state = random_state

    def _check_params(self) -> tuple[float, int]:
        eta = check_real(self.eta, "eta", 0.0, low_open=True)
        max_epochs = check_int(self.max_epochs, "max_epochs", 1)
        check_choice(self.algorithm, "algorithm", ALGORITHMS)
        check_bool(self.shuffle, "shuffle")
        check_seed(self.random_state, "random_state")
        return eta, max_epochs

    def fit(self, X, y) -> "Perceptron":
        """Learn w, b for each binary problem; returns self."""
        eta, max_epochs = self._check_params()
        X, y = self._fit_data(X, y)
        self.classes_, T = encode_labels(y)
        learners = [_LEARNERS[self.algorithm](X, np.ascontiguousarray(T[:, k]), eta) for k in range(T.shape[1])]
        rng = np.random.default_rng(self.random_state)
        self.loss_curve_, self.n_updates_, self.n_iter_ = [], 0, 0
        while self.n_iter_ < max_epochs and not all(p.done for p in learners):
            order = rng.permutation(X.shape[0]) if self.shuffle else None
            # An eta so large that w, b or the margins overflow is reported by its name once the pass is
            # over (below), instead of as NumPy warnings or a complaint about the internal w.
            with np.errstate(over="ignore", invalid="ignore"):
                for p in learners:
                    if not p.done:
                        self.n_updates_ += p.epoch(order)
                loss = sum(perceptron_loss(p.margins(*p.weights())) for p in learners)
            if not (np.isfinite(loss) and all(np.isfinite(p.w).all() and np.isfinite(p.b) for p in learners)):
                raise ValueError(f"eta: the weights overflowed with eta={eta!r} and features up to "
                                 f"{float(np.abs(X).max()):.3g} in magnitude; use a smaller eta (with w0 = 0 "
                                 f"the primal rule predicts the same for every eta) or scale X")
            self.n_iter_ += 1
            self.loss_curve_.append(loss)
        self.coef_ = np.array([p.weights()[0] for p in learners])
        self.intercept_ = np.array([p.weights()[1] for p in learners])
        self.converged_ = all(bool((p.margins(*p.weights()) > 0).all()) for p in learners)
        return self
