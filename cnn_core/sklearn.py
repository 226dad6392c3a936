"""NeuralNetClassifier: any cnn_core network as a scikit-learn classifier (skorch's names).

The estimator follows scikit-learn's protocol (cnn_core.models._base) without importing scikit-learn, so it
clones, pickles, and works in Pipeline, GridSearchCV and cross_val_score when scikit-learn is installed, and
on its own when it is not. Training is cnn_core.training.fit and prediction cnn_core.training.predict.

>>> import numpy as np
>>> from cnn_core.sklearn import NeuralNetClassifier
>>> X = np.random.default_rng(0).normal(size=(200, 4))
>>> y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
>>> clf = NeuralNetClassifier(lr=0.01, max_epochs=20, random_state=0).fit(X, y)
>>> clf.classes_.tolist(), clf.predict_proba(X[:3]).shape
(['no', 'yes'], (3, 2))
>>> clf.score(X, y) > 0.9
True
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnn_core import _random, nn, optim
from cnn_core._validation import check_bool, check_int, check_real, check_seed
from cnn_core.models._base import BaseClassifier, check_y, unique_labels
from cnn_core.models.mlp import mlp
from cnn_core.training import fit as _fit, predict as _predict

__all__ = ["NeuralNetClassifier", "default_module"]


def default_module(n_features: int, n_classes: int) -> nn.Module:
    """The network NeuralNetClassifier builds when `module` is None: Linear(n_features, 100), ReLU,
    Linear(100, n_classes), giving the logits CrossEntropyLoss expects (float32)."""
    return mlp([n_features, 100, n_classes], activation="relu")


class _seeded_global_rng:
    """Context manager: cnn_core's global generator replaced by `rng` (when not None), restored on exit.

    Layers built without an explicit rng draw their initial weights from the global generator, and Dropout
    draws its masks from it at each forward pass, so a seeded fit swaps it for the whole run."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def __enter__(self) -> None:
        self.saved = _random._global_rng
        if self.rng is not None:
            _random._global_rng = self.rng

    def __exit__(self, *exc) -> None:
        _random._global_rng = self.saved


class NeuralNetClassifier(BaseClassifier):
    """A cnn_core network trained as a scikit-learn classifier.

    Parameters
    ----------
    module : callable ``module(n_features, n_classes) -> cnn_core.nn.Module``, called by fit with the
        number of columns of X and of classes in y, so that the network fits whatever data it is given
        (a class such as ``functools.partial(mlp_factory, hidden=50)`` works); None: `default_module`.
        Its output is (N, n_classes) scores, or (N, 1) for two classes with a single-output criterion such
        as BCEWithLogitsLoss.
    criterion : callable returning the loss (a cnn_core.nn loss class), called with no argument.
    optimizer : callable ``optimizer(params, lr=lr)`` returning the optimizer (a cnn_core.optim class).
    lr : learning rate (> 0).
    max_epochs : epochs (passes over the data) run by fit, and by each call of partial_fit (>= 1).
    batch_size : mini-batch size (>= 1).
    shuffle : draw a new order of the samples each epoch.
    random_state : None, or an int seed (or numpy Generator) for the initial weights, the shuffling and any
        randomness inside the network (Dropout): cnn_core's global generator is replaced by a seeded one
        while fit runs, and restored afterwards. Two fits with the same seed give the same network.
    predict_nonlinearity : 'auto' (softmax after CrossEntropyLoss, exp after NLLLoss, sigmoid after
        BCEWithLogitsLoss, nothing otherwise), None (the outputs as they are) or a callable on the output
        array: what turns the module's output into predict_proba.
    verbose : 0 quiet, 1 a progress bar, 2 one line per epoch (as in cnn_core.training.fit).

    Attributes (after fit)
    ----------------------
    `classes_` : the sorted labels; class i is output column i. `n_features_in_` : columns of X.
    `feature_names_in_` : the column names of X when it was a data frame with string names.
    `module_`, `criterion_`, `optimizer_` : the network, loss and optimizer trained. `history_` : the
    cnn_core.callbacks.History of the last fit or partial_fit call. `n_iter_` : epochs run since fit.
    """

    def __init__(self, module: Callable[[int, int], nn.Module] | None = None,
                 criterion: Callable[[], object] = nn.CrossEntropyLoss, optimizer: Callable = optim.Adam,
                 lr: float = 1e-3, max_epochs: int = 10, batch_size: int = 64, shuffle: bool = True,
                 random_state: int | None = None, predict_nonlinearity="auto", verbose: int = 0):
        self.module = module
        self.criterion = criterion
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.predict_nonlinearity = predict_nonlinearity
        self.verbose = verbose

    # ---- fitting --------------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        for name in ("criterion", "optimizer"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name}: expected a callable (e.g. a class), got {getattr(self, name)!r:.80}")
        if self.module is not None and not callable(self.module):
            raise TypeError(f"module: expected None or a callable module(n_features, n_classes), "
                            f"got {self.module!r:.80}")
        nonlinearity = self.predict_nonlinearity
        if not (nonlinearity is None or callable(nonlinearity) or (isinstance(nonlinearity, str)
                                                                      and nonlinearity == "auto")):
            raise TypeError(f"predict_nonlinearity: expected 'auto', None or a callable, got {nonlinearity!r:.80}")
        check_real(self.lr, "lr", 0.0, low_open=True)
        check_int(self.max_epochs, "max_epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        check_bool(self.shuffle, "shuffle")
        check_seed(self.random_state, "random_state")
        check_int(self.verbose, "verbose", 0, 2)

    def _seed(self) -> int | None:
        """An int seed from random_state (a Generator gives one draw), or None."""
        seed = check_seed(self.random_state, "random_state")
        if isinstance(seed, np.random.Generator):
            return int(seed.integers(2**63))
        return seed

    def _initialize(self, n_features: int) -> None:
        """Build module_, criterion_ and optimizer_ for n_features inputs and len(classes_) outputs."""
        factory = default_module if self.module is None else self.module
        module = factory(n_features, len(self.classes_))
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected a callable returning a cnn_core.nn.Module, got "
                            f"{type(module).__name__} from module({n_features}, {len(self.classes_)})")
        self.module_ = module
        self.criterion_ = self.criterion()
        self.optimizer_ = self.optimizer(self.module_.parameters(), lr=self.lr)
        self.n_iter_ = 0

    def _train(self, X: np.ndarray, y: np.ndarray, seed: int | None) -> None:
        """max_epochs more epochs of training; the epochs are numbered on from n_iter_, so that successive
        partial_fit calls with one seed draw different orders."""
        labels = np.searchsorted(self.classes_, y).astype(np.int64)
        self.history_ = _fit(self.module_, self.criterion_, self.optimizer_, X, labels,
                             epochs=self.n_iter_ + self.max_epochs, initial_epoch=self.n_iter_,
                             batch_size=self.batch_size, shuffle=self.shuffle, seed=seed, verbose=self.verbose)
        self.n_iter_ += self.history_.epoch

    def fit(self, X, y) -> "NeuralNetClassifier":
        """Build a new network for X's features and y's classes and train it for max_epochs; returns self."""
        self._check_params()
        X, y = self._fit_data(X, y)
        classes = unique_labels(y)
        seed = self._seed()
        with _seeded_global_rng(None if seed is None else np.random.default_rng(seed)):
            self.classes_ = classes
            self._initialize(X.shape[1])
            self._train(X, y, seed)
        return self

    def partial_fit(self, X, y, classes=None) -> "NeuralNetClassifier":
        """Train max_epochs more epochs without rebuilding the network (skorch's partial_fit); the first call
        builds it, for the labels in `classes` (all the labels later calls may bring) or else those of y."""
        self._check_params()
        if not hasattr(self, "module_"):
            X, y = self._fit_data(X, y)
            self.classes_ = unique_labels(np.asarray(y if classes is None else classes))
            first = True
        else:
            X = self._predict_X(X)
            y = check_y(y, X.shape[0], type(self).__name__)
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
                raise ValueError(f"classes: expected the classes of the first partial_fit call "
                                 f"{self.classes_.tolist()[:10]}, got {np.unique(np.asarray(classes)).tolist()[:10]}")
            first = False
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y: expected labels among classes {self.classes_.tolist()[:10]}, got "
                             f"{unknown.tolist()[:10]}")
        seed = self._seed()
        # each call has its own seeded generator: a run of calls is reproducible, and calls differ
        rng = None if seed is None else np.random.default_rng([seed, self.n_iter_ if not first else 0])
        with _seeded_global_rng(rng):
            if first:
                self._initialize(X.shape[1])
            self._train(X, y, seed)
        return self

    # ---- prediction ------------------------------------------------------------------------------------------

    def _is_fitted(self) -> bool:
        return hasattr(self, "module_")

    def _nonlinearity(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.predict_nonlinearity is None:
            return lambda out: out
        if callable(self.predict_nonlinearity):
            return self.predict_nonlinearity
        if isinstance(self.criterion_, nn.CrossEntropyLoss):
            return nn.functional.softmax
        if isinstance(self.criterion_, nn.NLLLoss):
            return np.exp
        if isinstance(self.criterion_, nn.BCEWithLogitsLoss):
            return lambda out: 1.0 / (1.0 + np.exp(-out))
        return lambda out: out

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes) in float64: predict_nonlinearity of the module's output; a
        single output p (two classes, e.g. with BCEWithLogitsLoss) gives the columns 1 - p and p."""
        X = self._predict_X(X)
        out = _predict(self.module_, X)  # cast to the module's dtype there
        with np.errstate(over="ignore"):  # exp of a very negative logit: 0, as it should be
            proba = np.asarray(self._nonlinearity()(out), dtype=np.float64)
        if proba.ndim == 2 and proba.shape[1] == 1 and len(self.classes_) == 2:
            proba = np.hstack([1.0 - proba, proba])
        if proba.shape != (X.shape[0], len(self.classes_)):
            raise ValueError(f"module: expected outputs of shape (n, {len(self.classes_)}) (one per class), got "
                             f"{out.shape}")
        return proba

    def predict(self, X) -> np.ndarray:
        """The class with the highest predict_proba for each row of X."""
        index = self.predict_proba(X).argmax(axis=1)
        return self.classes_[index]

    def score(self, X, y) -> float:
        """Mean accuracy of predict(X) against y."""
        predicted = self.predict(X)
        return float(np.mean(predicted == check_y(y, predicted.shape[0], type(self).__name__)))
