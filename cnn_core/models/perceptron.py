"""The perceptron of the deck: f(x) = sign(w.x + b), learned by minimizing L(w, b) = -sum_{x_i in M} y_i (w.x_i + b).

Three learning rules, each from w0 = 0, b0 = 0, each a compiled pass (cnn_core.kernels._perceptron):
- 'primal': pick (x_i, y_i); if y_i (w.x_i + b) <= 0 then w += eta y_i x_i, b += eta y_i; repeat until no
  point is misclassified. The one-vs-rest problems are trained in lockstep, each sample visited once per
  pass for all of them (so X is read once per pass, not once per class).
- 'greedy' (the deck's variant for data that are not linearly separable): the update above is only a
  candidate (w^, b^); it is kept when it lowers the loss. greedy_loss='geometric' (default) uses the deck's
  summary-slide loss, the misclassified points' distances to the hyperplane, L(w, b) / ||w||; 'functional'
  uses L(w, b) itself, literally. L is positively homogeneous in (w, b), so the literal rule favours
  candidates that shrink w and stalls next to w = 0 (it scores 47.9% on digits 3-vs-5); dividing by ||w||
  makes the loss scale-free. Points lying exactly on the hyperplane contribute 0 to either loss although
  the rule counts them as misclassified, so at equal loss a candidate is also kept when it lowers the number
  of misclassified points (y_i (w.x_i + b) <= 0); and the first update from w0 = 0, b0 = 0 (where every
  point lies on the hyperplane, and the distances are undefined) is taken unconditionally, as in the primal
  algorithm. Each candidate needs every margin: the kernel keeps the margins m_j = y_j (w.x_j + b) and
  updates them by eta y_i y_j (x_j.x_i + 1) from the Gram matrix (precomputed when n <= GRAM_MAX_SAMPLES,
  else one column per candidate), so a candidate costs O(n) (O(n d) without the Gram matrix). Learning
  stops when no point is misclassified, or after a pass that kept no candidate (w, b no longer change, so
  neither would the candidates of any later pass).
- 'pocket' (Gallant 1990, with ratchet): primal updates; the pocket holds the weights with the longest run
  of consecutive correct classifications seen so far. When the current weights' run beats the pocket's,
  their training errors (points with y_i (w.x_i + b) <= 0) are counted, once per weights, and they replace
  the pocket's only if those errors are fewer too (the ratchet). The weights returned are the pocket's.

Convergence (Novikoff; Li Hang, Statistical Learning Methods, sec. 2.3.2, the proof the deck cites): write
x^ = (x, 1) and w^ = (w, b). If some unit ||w^_opt|| = 1 has y_i (w^_opt . x^_i) >= gamma > 0 for all i and
R = max_i ||x^_i||, the primal algorithm makes at most (R / gamma)^2 updates, whatever eta and the order.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_choice, check_int, check_real, check_seed
from cnn_core.kernels import _perceptron, gemm
from cnn_core.models._base import LinearClassifier, encode_labels

__all__ = ["Perceptron"]

ALGORITHMS = ("primal", "greedy", "pocket")
GREEDY_LOSSES = ("geometric", "functional")
GRAM_MAX_SAMPLES = 4096  # greedy: precompute X X^T (n^2 float64: 128 MiB at this n) up to this many samples

_NO_ORDER = np.zeros(0, dtype=np.int64)
_NO_GRAM = np.zeros((0, 0))


def perceptron_loss(m: np.ndarray) -> float:
    """The deck's L(w, b) from the margins m_i = y_i (w.x_i + b): -sum of the negative ones."""
    return float(-m[m < 0].sum())


def _fit_lockstep(X, T, eta, max_epochs, rng, shuffle, pocket):
    """'primal' or 'pocket' for the K problems of T (n, K) in lockstep; (W, B, curve, updates, epochs)."""
    n, d = X.shape
    K = T.shape[1]
    T8 = np.ascontiguousarray(T, dtype=np.int8)
    W, B = np.zeros((K, d)), np.zeros(K)
    active = np.ones(K, dtype=np.uint8)
    n_updates = np.zeros(K, dtype=np.int64)
    PW, PB = np.zeros((K, d)), np.zeros(K)
    state = np.zeros((K, 5), dtype=np.int64)  # run, pocket run, pocket errors, counted, current in pocket
    state[:, 2] = n  # at w = 0, b = 0 every margin is 0: all points count as errors
    curve, epochs = [], 0
    # the ratchet's error counts read all of X; when X is float32 data in float64 (pixels, small integers)
    # a float32 copy gives the same counts from half the bytes (measured: pocket on Fashion-MNIST ~
    # memory-bound in those counts)
    X32 = None
    if pocket and X.dtype == np.float64:
        X32 = X.astype(np.float32)
        if not np.array_equal(X32, X):
            X32 = None
    while epochs < max_epochs and active.any():
        order = rng.permutation(n) if shuffle else _NO_ORDER
        # An eta so large that w, b or the margins overflow is reported by its name once the pass is over
        # (below), instead of as NumPy warnings or a complaint about the internal w.
        with np.errstate(over="ignore", invalid="ignore"):
            _perceptron.ovr_epoch(X, T8, W, B, eta, order, shuffle, active, n_updates, pocket, PW, PB, state, X32)
            M = T * (X @ (PW if pocket else W).T + (PB if pocket else B))
            loss = perceptron_loss(M)
        if not (np.isfinite(loss) and np.isfinite(W).all() and np.isfinite(B).all()):
            raise _overflow(eta, X)
        if not pocket:
            active &= ~(M > 0).all(axis=0)  # a problem with no misclassified point is done
        epochs += 1
        curve.append(loss)
    return (PW, PB) if pocket else (W, B), curve, int(n_updates.sum()), epochs


def _fit_greedy(X, T, eta, max_epochs, rng, shuffle, geometric):
    """'greedy' for each problem of T (n, K); the passes of the K problems share one permutation each."""
    n, d = X.shape
    K = T.shape[1]
    use_gram = n <= GRAM_MAX_SAMPLES
    # cnn_core's GEMM: NumPy's (OpenBLAS) took 15-30 ms for 365 x 64 on a busy 2-core machine (thread wake-ups)
    gram = gemm(X, X, trans_b=True) + 1.0 if use_gram else _NO_GRAM
    col = np.empty(0 if use_gram else n)
    W, B = np.zeros((K, d)), np.zeros(K)
    T8 = [np.ascontiguousarray(T[:, k], dtype=np.int8) for k in range(K)]
    done = np.zeros(K, dtype=bool)
    curve, updates, epochs = [], 0, 0
    while epochs < max_epochs and not done.all():
        order = rng.permutation(n) if shuffle else _NO_ORDER
        loss = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(K):
                m = T[:, k] * (X @ W[k] + B[k])  # recomputed each pass so rounding cannot accumulate
                if not done[k]:
                    B[k], kept = _perceptron.greedy_epoch(X, T8[k], W[k], B[k], eta, order, shuffle, gram,
                                                          use_gram, m, col, geometric)
                    updates += kept
                    m = T[:, k] * (X @ W[k] + B[k])
                    done[k] = kept == 0 or bool((m > 0).all())
                loss += perceptron_loss(m)
        if not (np.isfinite(loss) and np.isfinite(W).all() and np.isfinite(B).all()):
            raise _overflow(eta, X)
        epochs += 1
        curve.append(loss)
    return (W, B), curve, updates, epochs


def _overflow(eta: float, X: np.ndarray) -> ValueError:
    return ValueError(f"eta: the weights overflowed with eta={eta!r} and features up to "
                      f"{float(np.abs(X).max()):.3g} in magnitude; use a smaller eta (with w0 = 0 "
                      f"the primal rule predicts the same for every eta) or scale X")


class Perceptron(LinearClassifier):
    """The deck's perceptron with scikit-learn's estimator API.

    Parameters
    ----------
    eta : learning rate (> 0). With w0 = 0, b0 = 0 the primal rule's predictions do not depend on it.
    max_epochs : maximum number of passes over the training set (>= 1).
    algorithm : 'primal', 'greedy' or 'pocket' (see the module docstring).
    greedy_loss : 'geometric' (the misclassified points' distances to the hyperplane, L / ||w||: the
        default) or 'functional' (L itself, the literal rule): the loss the greedy rule's candidates must lower.
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
                 shuffle: bool = True, random_state: int | None = None, greedy_loss: str = "geometric"):
        self.eta = eta
        self.max_epochs = max_epochs
        self.algorithm = algorithm
        self.shuffle = shuffle
        self.random_state = random_state
        self.greedy_loss = greedy_loss

    def _check_params(self) -> tuple[float, int]:
        eta = check_real(self.eta, "eta", 0.0, low_open=True)
        max_epochs = check_int(self.max_epochs, "max_epochs", 1)
        check_choice(self.algorithm, "algorithm", ALGORITHMS)
        check_bool(self.shuffle, "shuffle")
        check_seed(self.random_state, "random_state")
        check_choice(self.greedy_loss, "greedy_loss", GREEDY_LOSSES)
        return eta, max_epochs

    def fit(self, X, y) -> "Perceptron":
        """Learn w, b for each binary problem; returns self."""
        eta, max_epochs = self._check_params()
        X, y = self._fit_data(X, y)
        self.classes_, T = encode_labels(y)
        rng = np.random.default_rng(self.random_state)
        shuffle = bool(self.shuffle)
        if self.algorithm == "greedy":
            (W, B), curve, updates, epochs = _fit_greedy(X, T, eta, max_epochs, rng, shuffle,
                                                         self.greedy_loss == "geometric")
        else:
            (W, B), curve, updates, epochs = _fit_lockstep(X, T, eta, max_epochs, rng, shuffle,
                                                           self.algorithm == "pocket")
        self.loss_curve_, self.n_updates_, self.n_iter_ = curve, updates, epochs
        self.coef_, self.intercept_ = W, B
        self.converged_ = bool((T * (X @ W.T + B) > 0).all())
        return self
