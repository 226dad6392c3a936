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


def is_estimator_file(path: str) -> bool:
    """True for a file written by save_estimator; False for anything else (cnn_core.load judges those)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "__format__" in npz.files and npz["__format__"].ndim == 0 and \
                str(npz["__format__"]) == FORMAT_NAME
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        return False


def load_estimator(path: str):
    """Rebuild the estimator saved at `path`; a damaged file is a UsageError naming it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {k: npz[k] for k in npz.files}
        version = int(fields["__version__"])
        if version > FORMAT_VERSION:
            raise ValueError(f"format version {version} is newer than this cnn_core reads ({FORMAT_VERSION})")
        cls = _CLASSES[str(fields["__estimator__"])]
        est = cls(**json.loads(str(fields["__params__"])))
        coef, intercept, classes = fields["coef_"], fields["intercept_"], fields["classes_"]
        if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or classes.ndim != 1 or \
                coef.shape[0] != (1 if len(classes) == 2 else len(classes)):
            raise ValueError(f"inconsistent shapes coef_ {coef.shape}, intercept_ {intercept.shape}, "
                             f"classes_ {classes.shape}")
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"MODEL_FILE: {path} is not a readable estimator file ({type(e).__name__}: {e})") from None
    est.coef_, est.intercept_, est.classes_ = coef.astype(np.float64), intercept.astype(np.float64), classes
    return est
