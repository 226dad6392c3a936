"""What every estimator in cnn_core shares: scikit-learn's estimator protocol, without scikit-learn.

Hyperparameters are stored as given and checked at fit time (as scikit-learn does), so get_params and
set_params round-trip whatever the caller set, and clone() rebuilds an estimator from them. Labels of any kind
are mapped to -1/+1 targets per binary problem: one column for two classes (positive = classes_[1]), one column
per class (one-vs-rest) otherwise.

scikit-learn is never imported here (importing it takes longer than importing cnn_core). The protocol is
implemented by hand: `_estimator_type`, `__sklearn_tags__` (which imports scikit-learn's Tags lazily: only
scikit-learn calls it), `__sklearn_is_fitted__`, `n_features_in_`, `feature_names_in_`, and its input rules
(`check_X`, `check_y`). The exceptions and warnings scikit-learn's code catches by class (NotFittedError,
DataConversionWarning) are raised as subclasses of both cnn_core's class and scikit-learn's when scikit-learn
is loaded (any code that catches scikit-learn's class has loaded it), so `except` clauses of either kind work.
"""
from __future__ import annotations

import inspect
import numbers
import sys
import warnings

import numpy as np

from cnn_core._validation import all_finite, is_sparse, not_an_array

__all__ = ["NotFittedError", "DataConversionWarning", "ConvergenceWarning", "InputTypeError", "BaseClassifier",
           "LinearClassifier"]


class NotFittedError(ValueError, AttributeError):
    """Raised when predicting with an estimator that has not been fitted (like scikit-learn's)."""


class DataConversionWarning(UserWarning):
    """Input converted to the form the estimator needs (a column-vector y ravelled), as scikit-learn warns."""


class ConvergenceWarning(UserWarning):
    """Warned when a solver stops at its iteration limit before its stopping test is met (like scikit-learn's)."""


class InputTypeError(TypeError, ValueError):
    """Input of the wrong type that scikit-learn's input rules report as a ValueError (complex X, y None).

    Both classes, so that the library's policy (TypeError for a wrong type) and scikit-learn's both hold."""


_FLAVOURS: dict = {}


def _sklearn_flavour(ours: type, module: str, name: str) -> type:
    """`ours`, or a subclass of `ours` and scikit-learn's class `module.name` when scikit-learn is loaded."""
    theirs = getattr(sys.modules.get(module), name, None)
    if not isinstance(theirs, type) or issubclass(ours, theirs):
        return ours
    flavour = _FLAVOURS.get((ours, theirs))
    if flavour is None:
        flavour = type(ours.__name__, (ours, theirs), {
            "__module__": ours.__module__, "__doc__": ours.__doc__,
            # pickled as the plain cnn_core class: the dual class is rebuilt only where scikit-learn is loaded
            "__reduce__": lambda self: (ours, self.args)})
        _FLAVOURS[(ours, theirs)] = flavour
    return flavour


def not_fitted_error(who: str) -> NotFittedError:
    cls = _sklearn_flavour(NotFittedError, "sklearn.exceptions", "NotFittedError")
    return cls(f"This {who} instance is not fitted yet; call fit first")


# ---- input rules -------------------------------------------------------------------------------------------

def _feature_names(X) -> np.ndarray | None:
    """Column names of a data frame (anything with `columns` other than an ndarray) when all are strings."""
    if isinstance(X, np.ndarray) or not hasattr(X, "columns"):
        return None
    names = np.asarray(list(X.columns), dtype=object)
    if len(names) == 0:
        return None
    kinds = sorted({type(v).__qualname__ for v in names})
    if len(kinds) > 1 and "str" in kinds:
        raise TypeError(f"X: expected column names that are all strings or none that is, got names of types "
                        f"{kinds}; convert them, e.g. X.columns = X.columns.astype(str)")
    return names if kinds == ["str"] else None


def check_X(X, name: str = "X") -> np.ndarray:
    """Return X as a C-contiguous float64 (n, d) array of finite numbers, n >= 1 and d >= 1.

    scikit-learn's rules: sparse input is refused (TypeError saying so), complex input too (InputTypeError,
    "Complex data not supported"), an object array is taken when numpy can convert its entries to float64
    (TypeError naming the entry otherwise), a 1-D array is refused with the reshape it needs.
    """
    if is_sparse(X):
        raise not_an_array(X, name)
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise InputTypeError(f"{name}: expected real numbers, got dtype {X.dtype} (Complex data not supported)")
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as e:  # numpy's message names the entry: "... argument must be a ..."
            raise TypeError(f"{name}: expected numbers, got an object array numpy cannot convert to float64 "
                            f"({e})") from None
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numeric values (bool, int or float), got dtype {X.dtype}")
    if X.ndim != 2:
        hint = ("; Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single "
                "sample" if X.ndim < 2 else "")
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}{hint}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one sample, got 0 sample(s) (shape={X.shape}) while a "
                         f"minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one feature, got 0 feature(s) (shape={X.shape}) while a "
                         f"minimum of 1 is required.")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not X.flags.writeable:  # e.g. a read-only memory map: the compiled solvers take writable views
        X = X.copy()
    if not all_finite(X):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return X


def check_y(y, n: int, who: str = "the estimator", stacklevel: int = 3) -> np.ndarray:
    """Return y as a 1-D array of n class labels (any hashable, sortable kind).

    scikit-learn's rules: None is refused ("requires y to be passed"), a column vector (n, 1) is ravelled with
    a DataConversionWarning, float labels must be finite and integral (other values are a regression target:
    ValueError "Unknown label type: continuous").
    """
    if y is None:
        raise InputTypeError(f"y: expected the class labels, got None ({who} requires y to be passed, but the "
                             f"target y is None)")
    if is_sparse(y):
        raise not_an_array(y, "y")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        cls = _sklearn_flavour(DataConversionWarning, "sklearn.exceptions", "DataConversionWarning")
        warnings.warn("A column-vector y was passed when a 1d array was expected: y of shape "
                      f"{y.shape} is used as shape ({y.shape[0]},); pass y.ravel() to silence this warning",
                      cls, stacklevel=stacklevel)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of labels, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y: expected {n} labels (one per row of X), got {y.shape[0]}")
    if y.dtype.kind == "c":
        raise TypeError(f"y: expected class labels, got complex dtype {y.dtype}")
    values = y
    if y.dtype.kind == "O" and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in y):
        values = y.astype(np.float64)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise ValueError("y: expected finite labels, got NaN or infinity")
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise ValueError(f"y: expected class labels (integers, strings, or floats with integral values), got "
                             f"continuous values such as {fractional[0]!r} (Unknown label type: continuous; a "
                             f"classifier needs discrete classes, not a regression target)")
    return y


def unique_labels(y: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of y (at least two), or a ValueError/TypeError naming y."""
    try:
        classes = np.unique(y)
    except TypeError as e:  # labels that do not sort together, e.g. numbers mixed with strings
        raise TypeError(f"y: expected labels of one kind that sort together (all numbers or all strings), "
                        f"got {sorted({type(v).__name__ for v in y})} ({e})") from None
    if classes.shape[0] < 2:
        raise ValueError(f"y: expected at least 2 classes, got 1 class ({classes.tolist()})")
    return classes


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes_, T): T (n, 1) for two classes, (n, n_classes) one-vs-rest otherwise, entries -1/+1."""
    classes = unique_labels(y)
    positive = classes[1:] if classes.shape[0] == 2 else classes
    T = np.where(y[:, None] == positive[None, :], 1.0, -1.0)
    return classes, T


# ---- the protocol -------------------------------------------------------------------------------------------

class BaseClassifier:
    """scikit-learn's estimator protocol for a classifier: parameters, tags, fitted state and input checks.

    Subclasses store their constructor arguments unchanged (nothing else in __init__), validate them in fit,
    call `_fit_data` there and `_predict_X` before predicting.
    """

    _estimator_type = "classifier"  # is_classifier() before scikit-learn 1.6

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    _param_names = _get_param_names  # cnn_core.serialization's name for it

    def get_params(self, deep: bool = True) -> dict:
        """Constructor hyperparameters by name (`deep` is accepted for API compatibility: no sub-estimators)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "BaseClassifier":
        """Set hyperparameters by name; an unknown name raises ValueError. Checked at the next fit."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"set_params: invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __sklearn_tags__(self):
        """scikit-learn's Tags (scikit-learn >= 1.6; only scikit-learn calls this, so it is importable)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(two_d_array=True, sparse=False,
                                                                           allow_nan=False))

    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def _is_fitted(self) -> bool:
        return hasattr(self, "classes_")

    def _fit_data(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """X as float64 (n, d) and y as n labels, checked; records feature_names_in_ (when X is a data frame
        with string column names) and n_features_in_ where it is not derived from the fitted weights."""
        names = _feature_names(X)
        X = check_X(X)
        y = check_y(y, X.shape[0], type(self).__name__, stacklevel=4)  # the warning names the caller of fit
        if names is not None:
            self.feature_names_in_ = names
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_
        if not isinstance(getattr(type(self), "n_features_in_", None), property):
            self.n_features_in_ = X.shape[1]
        return X, y

    def _predict_X(self, X) -> np.ndarray:
        """X checked against what fit saw: n_features_in_ columns, and the same column names if it had names
        (NotFittedError before fit)."""
        if not self._is_fitted():
            raise not_fitted_error(type(self).__name__)
        self._check_feature_names(X)
        X = check_X(X)
        n_features = self.n_features_in_
        if X.shape[1] != n_features:
            raise ValueError(f"X: expected {n_features} features (as in fit), got {X.shape[1]} (X has "
                             f"{X.shape[1]} features, but {type(self).__name__} is expecting {n_features} "
                             f"features as input)")
        return X

    def _check_feature_names(self, X) -> None:
        """scikit-learn's rule for column names: the same names in the same order as in fit, when fit had
        some (a warning when only one side has names)."""
        fitted = getattr(self, "feature_names_in_", None)
        names = _feature_names(X)
        who = type(self).__name__
        if fitted is None and names is None:
            return
        if fitted is None:
            warnings.warn(f"X has feature names, but {who} was fitted without feature names", UserWarning,
                          stacklevel=4)
            return
        if names is None:
            warnings.warn(f"X does not have valid feature names, but {who} was fitted with feature names",
                          UserWarning, stacklevel=4)
            return
        if len(fitted) == len(names) and (fitted == names).all():
            return
        unexpected = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))

        def listed(items):
            return "".join(f"- {v}\n" for v in items[:5]) + ("- ...\n" if len(items) > 5 else "")

        message = "X: The feature names should match those that were passed during fit.\n"
        if unexpected:
            message += "Feature names unseen at fit time:\n" + listed(unexpected)
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
        if not unexpected and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)


class LinearClassifier(BaseClassifier):
    """decision_function, predict and score for a fitted coef_ (k, d), intercept_ (k,) and classes_."""

    @property
    def n_features_in_(self) -> int:
        """Number of features seen in fit (derived from coef_, so estimators read back from a file have it)."""
        try:
            return self.coef_.shape[1]
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no n_features_in_ before fit") from None

    def _is_fitted(self) -> bool:
        return hasattr(self, "coef_")

    def decision_function(self, X) -> np.ndarray:
        """w.x + b: shape (n,) for two classes (positive means classes_[1]), (n, n_classes) otherwise."""
        X = self._predict_X(X)
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
        predicted = self.predict(X)
        return float(np.mean(predicted == check_y(y, predicted.shape[0], type(self).__name__)))
