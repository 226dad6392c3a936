"""What every estimator in cnn_core.models shares: scikit-learn's estimator API for linear classifiers.

Hyperparameters are stored as given and checked at fit time (as scikit-learn does), so get_params and
set_params round-trip whatever the caller set. Labels of any kind are mapped to -1/+1 targets per binary
problem: one column for two classes (positive = classes_[1]), one column per class (one-vs-rest) otherwise.
"""
from __future__ import annotations

import inspect

import numpy as np

from cnn_core._validation import is_sparse, not_an_array

__all__ = ["NotFittedError", "ConvergenceWarning", "LinearClassifier"]


class NotFittedError(ValueError, AttributeError):
    """Raised when predicting with an estimator that has not been fitted (like scikit-learn's)."""


class ConvergenceWarning(UserWarning):
    """Warned when a solver stops at its iteration limit before its stopping test is met (like scikit-learn's)."""


def check_X(X, name: str = "X") -> np.ndarray:
    """Return X as a C-contiguous float64 (n, d) array of finite numbers, n >= 1 and d >= 1."""
    if is_sparse(X):
        raise not_an_array(X, name)
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric values (bool, int or float), got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one sample and one feature, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return X


def check_y(y, n: int) -> np.ndarray:
    """Return y as a 1-D array of n labels (any hashable, sortable kind; float labels must be finite)."""
    if is_sparse(y):
        raise not_an_array(y, "y")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of labels, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y: expected {n} labels (one per row of X), got {y.shape[0]}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y: expected finite labels, got NaN or infinity")
    return y


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes_, T): T (n, 1) for two classes, (n, n_classes) one-vs-rest otherwise, entries -1/+1."""
    classes = np.unique(y)
    if classes.shape[0] < 2:
        raise ValueError(f"y: expected at least 2 classes, got {classes.shape[0]} ({classes.tolist()})")
    positive = classes[1:] if classes.shape[0] == 2 else classes
    T = np.where(y[:, None] == positive[None, :], 1.0, -1.0)
    return classes, T


class LinearClassifier:
    """get_params/set_params, decision_function, predict and score for a fitted coef_ (k, d), intercept_ (k,)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Constructor hyperparameters by name (`deep` is accepted for API compatibility: no sub-estimators)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "LinearClassifier":
        """Set hyperparameters by name; an unknown name raises ValueError. Checked at the next fit."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"set_params: invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted_X(self, X) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit first")
        X = check_X(X)
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"X: expected {self.coef_.shape[1]} features (as in fit), got {X.shape[1]}")
        return X

    def decision_function(self, X) -> np.ndarray:
        """w.x + b: shape (n,) for two classes (positive means classes_[1]), (n, n_classes) otherwise."""
        X = self._check_fitted_X(X)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, by name
            z = X @ self.coef_.T + self.intercept_
        if not np.isfinite(z).all():
            raise ValueError(f"X: the decision values w.x + b overflowed float64 (max |x| = {np.abs(X).max():.3g}, "
                             f"max |w| = {np.abs(self.coef_).max():.3g}); rescale X as the training data was")
        return z[:, 0] if self.coef_.shape[0] == 1 else z

    def predict(self, X) -> np.ndarray:
        """Original labels: sign(w.x + b) for two classes (0 goes to classes_[0]), argmax one-vs-rest."""
        z = self.decision_function(X)
        index = (z > 0).astype(np.intp) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[index]

    def score(self, X, y) -> float:
        """Mean accuracy of predict(X) against y."""
        X = self._check_fitted_X(X)
        y = check_y(y, X.shape[0])
        return float(np.mean(self.predict(X) == y))
