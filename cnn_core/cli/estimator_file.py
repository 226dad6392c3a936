"""Model files for the linear estimators (Perceptron, LinearSVM), which cnn_core.save does not cover.

`cnn_core.save` stores cnn_core.nn modules; a fitted estimator is just its hyperparameters and its
coefficients, so `cnn-core train perceptron|svm --save PATH` writes a small .npz of plain arrays, read back
without pickle:
  __format__ "cnn_core.estimator", __version__ 1, __estimator__ class name, __params__ JSON of get_params(),
  coef_ (k, d), intercept_ (k,), classes_ (c,)
and `evaluate` / `predict` accept it like a network file. The restored estimator predicts exactly as the
trained one (predict/decision_function only read coef_, intercept_ and classes_).
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from cnn_core.cli.errors import UsageError
from cnn_core.cli.npyfile import read_npz
from cnn_core.models import LinearSVM, Perceptron

FORMAT_NAME = "cnn_core.estimator"
FORMAT_VERSION = 1
_CLASSES = {"Perceptron": Perceptron, "LinearSVM": LinearSVM}


def save_estimator(est, path: str) -> None:
    """Write a fitted estimator to `path` (exactly that name), through a temporary file and a rename."""
    arrays = {"__format__": np.array(FORMAT_NAME), "__version__": np.array(FORMAT_VERSION),
              "__estimator__": np.array(type(est).__name__), "__params__": np.array(json.dumps(est.get_params())),
              "coef_": est.coef_, "intercept_": est.intercept_, "classes_": est.classes_}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"--save: cannot write {path}: {e.strerror or e}") from None


MAX_BYTES = 256 << 20  # coef_ of 10 classes x 784 pixels is 63 KB; this leaves room for any image size
MAX_PARAMS_CHARS = 1 << 16


def is_estimator_file(path: str) -> bool:
    """True for a file written by save_estimator; False for anything else (cnn_core.load judges those).

    Only the small __format__ member is read, through the header-checked reader (a hostile archive cannot
    make this allocate more than the member really holds).
    """
    try:
        if not zipfile.is_zipfile(path):
            return False
        fmt = read_npz(path, path, MAX_BYTES, names={"__format__"}).get("__format__")
    except (ValueError, OSError):
        return False
    return fmt is not None and fmt.ndim == 0 and fmt.dtype.kind == "U" and str(fmt) == FORMAT_NAME


def _scalar(fields: dict, name: str, kind: str):
    a = fields[name]
    if a.ndim != 0 or a.dtype.kind not in kind:
        raise ValueError(f"{name}: expected a scalar of kind {kind!r}, got {a.dtype} of shape {a.shape}")
    return a[()]


def _numbers(fields: dict, name: str, ndim: int, kinds: str) -> np.ndarray:
    a = fields[name]
    if a.ndim != ndim or a.dtype.kind not in kinds or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty {ndim}-D array of "
                         f"{'integers' if kinds == 'iu' else 'real numbers'}, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return a


def _params(cls, text: str) -> dict:
    if len(text) > MAX_PARAMS_CHARS:
        raise ValueError(f"__params__: expected at most {MAX_PARAMS_CHARS} characters of JSON, got {len(text)}")
    try:
        params = json.loads(text)
    except RecursionError:  # nesting deeper than the interpreter's stack: hostile, not a saved estimator
        raise ValueError("__params__: JSON nested too deeply") from None
    names = set(cls._param_names())
    if not isinstance(params, dict) or not set(params) <= names:
        raise ValueError(f"__params__: expected an object with keys among {sorted(names)}, got {text[:80]!r}")
    return params


def load_estimator(path: str):
    """Rebuild the estimator saved at `path`; a damaged or hostile file is a UsageError naming it."""
    try:
        fields = read_npz(path, path, MAX_BYTES)
        missing = {"__version__", "__estimator__", "__params__", "coef_", "intercept_", "classes_"} - set(fields)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        version = int(_scalar(fields, "__version__", "iu"))
        if version > FORMAT_VERSION:
            raise ValueError(f"format version {version} is newer than this cnn_core reads ({FORMAT_VERSION})")
        name = str(_scalar(fields, "__estimator__", "U"))
        if name not in _CLASSES:
            raise ValueError(f"__estimator__: expected one of {sorted(_CLASSES)}, got {name[:80]!r}")
        cls = _CLASSES[name]
        est = cls(**_params(cls, str(_scalar(fields, "__params__", "U"))))
        coef = _numbers(fields, "coef_", 2, "iuf")
        intercept = _numbers(fields, "intercept_", 1, "iuf")
        classes = _numbers(fields, "classes_", 1, "iu")
        if len(classes) < 2 or not (np.diff(classes) > 0).all():
            raise ValueError(f"classes_: expected at least two distinct labels in increasing order, "
                             f"got {classes[:10].tolist()}")
        if intercept.shape != (coef.shape[0],) or coef.shape[0] != (1 if len(classes) == 2 else len(classes)):
            raise ValueError(f"inconsistent shapes coef_ {coef.shape}, intercept_ {intercept.shape}, "
                             f"classes_ {classes.shape}")
    except (ValueError, OSError) as e:
        raise UsageError(f"MODEL_FILE: {path} is not a readable estimator file ({e})") from None
    est.coef_ = coef.astype(np.float64)
    est.intercept_ = intercept.astype(np.float64)
    est.classes_ = classes.astype(np.int64)
    return est
