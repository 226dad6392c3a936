"""`cnn-core evaluate` and `cnn-core predict`: use a saved model file (a network or a linear estimator)."""
from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

import cnn_core
from cnn_core import nn
from cnn_core.cli.data import fit_model_input, leaf_layers, load_split, read_images
from cnn_core.cli.errors import EXIT_OK, UsageError
from cnn_core.metrics import accuracy_score, confusion_matrix
from cnn_core.nn.functional import softmax


def load_model(path: str):
    """(model, is_estimator) from a file of cnn_core.save (a network, or `train perceptron|svm --save`).

    What cnn_core.load refuses is the user's to fix: a ValueError on the file's contents (it names the file
    and the defect, a .npy array or another non-archive included), an OSError reading it (no such file, a
    directory, a FIFO or device, permissions): a UsageError.
    """
    try:
        model = cnn_core.load(path)
    except ValueError as e:
        raise UsageError(f"MODEL_FILE: {e}") from None
    except OSError as e:
        raise UsageError(f"MODEL_FILE: cannot read {path}: {e.strerror or e}") from None
    return model, not isinstance(model, nn.Module)


def _outputs_are_probabilities(model) -> bool:
    """A network ending in Sigmoid (Nielsen's MLP) outputs activations in (0, 1); others output logits."""
    return isinstance(leaf_layers(model)[-1], nn.Sigmoid)


def _class_scores(model, X: np.ndarray, what: str) -> np.ndarray:
    """Per-class probabilities (N, C): softmax of the logits, or the sigmoid outputs as they are.

    Outputs that are NaN or infinite (non-finite weights, or weights so large that the logits overflow)
    are refused: a softmax of them would print NaN, or a class at a made-up probability.
    """
    out = cnn_core.predict(model, X.astype(model.dtype)).astype(np.float64)
    if out.ndim != 2 or out.shape[1] < 2:
        raise UsageError(f"MODEL_FILE: evaluate and predict need a classifier with one output per class, "
                         f"this model outputs per-sample shape {out.shape[1:]}")
    if not np.isfinite(out).all():
        raise UsageError(f"MODEL_FILE: the model's outputs on the images of {what} are NaN or infinite "
                         f"(its weights are non-finite, or so large that the outputs overflow {model.dtype})")
    return out if _outputs_are_probabilities(model) else softmax(out, dim=1)


def format_confusion(m: np.ndarray, labels: np.ndarray) -> str:
    width = max(4, len(str(m.max())) + 1, max(len(str(v)) for v in labels) + 1)
    head = "true\\pred" + "".join(f"{int(v):>{width}}" for v in labels)
    rows = [f"{int(v):>9}" + "".join(f"{c:>{width}}" for c in row) for v, row in zip(labels, m)]
    return "\n".join([head] + rows)


def run_evaluate(args) -> int:
    model, is_est = load_model(args.model_file)
    X, y = load_split(args.data, "test")
    if args.limit is not None:
        X, y = X[:args.limit], y[:args.limit]
    result: dict[str, Any] = {"model_file": args.model_file, "samples": len(X)}
    if is_est:
        Xf = X.reshape(len(X), -1)
        if Xf.shape[1] != model.coef_.shape[1]:
            raise UsageError(f"--data: images of shape {tuple(X.shape[1:])} do not fit this model, which expects "
                             f"{model.coef_.shape[1]} pixels")
        labels = model.classes_
        keep = np.isin(y, labels)  # a two-class model is scored on its two classes
        Xf, y = Xf[keep], y[keep]
        if len(y) == 0:
            raise UsageError(f"--data: the test split has no samples of the model's classes {labels.tolist()}")
        pred = model.predict(Xf)
        result.update(samples=len(y), loss=None, loss_function=None, accuracy=accuracy_score(y, pred))
    else:
        Xm = fit_model_input(model, X, "--data")
        probs = _class_scores(model, Xm, "--data")
        labels = np.arange(probs.shape[1])
        if int(y.max()) >= len(labels):
            raise UsageError(f"--data: the test labels go up to {int(y.max())}, the model has {len(labels)} outputs")
        if _outputs_are_probabilities(model):
            loss, name = nn.QuadraticLoss(), "quadratic"
        else:
            loss, name = nn.CrossEntropyLoss(), "cross-entropy"
        res = cnn_core.evaluate(model, loss, Xm.astype(model.dtype), y)
        pred = probs.argmax(axis=1)
        result.update(loss=res.loss, loss_function=name, accuracy=res.accuracy)
    m = confusion_matrix(y, pred, labels)
    result["labels"] = [int(v) for v in labels]
    result["confusion_matrix"] = m.tolist()
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    where = "the embedded digits" if args.data is None else args.data
    print(f"{args.model_file} on the test split of {where} ({result['samples']:,} samples)")
    if result["loss"] is not None:
        print(f"loss ({result['loss_function']}): {result['loss']:.4f}")
    print(f"accuracy: {100 * result['accuracy']:.2f}%")
    print("confusion matrix (rows: true class, columns: predicted class)")
    print(format_confusion(m, labels))
    return EXIT_OK


def run_predict(args) -> int:
    model, is_est = load_model(args.model_file)
    X = read_images(args.input)
    if is_est:
        Xf = X.reshape(len(X), -1)
        if Xf.shape[1] != model.coef_.shape[1]:
            raise UsageError(f"INPUT: images of shape {tuple(X.shape[1:])} do not fit this model, which expects "
                             f"{model.coef_.shape[1]} pixels")
        z = model.decision_function(Xf)
        if not np.isfinite(z).all():
            raise UsageError("MODEL_FILE: the estimator's scores w.x + b on the images of INPUT overflow "
                             "(its coefficients are too large)")
        classes = model.predict(Xf)
        score = z if z.ndim == 1 else z.max(axis=1)  # w.x + b of the winning class (binary: of classes_[1])
        rows = [{"index": i, "class": int(c), "probability": None, "score": float(s)}
                for i, (c, s) in enumerate(zip(classes, score))]
    else:
        Xm = fit_model_input(model, X, "INPUT")
        probs = _class_scores(model, Xm, "INPUT")
        classes = probs.argmax(axis=1)
        rows = [{"index": i, "class": int(c), "probability": float(probs[i, c])} for i, c in enumerate(classes)]
    if args.json:
        print(json.dumps({"model_file": args.model_file, "input": args.input, "predictions": rows}))
        return EXIT_OK
    width = len(str(len(rows) - 1))
    for r in rows:
        figure = f"probability {r['probability']:.4f}" if r["probability"] is not None else f"score {r['score']:+.4f}"
        print(f"{r['index']:>{width}}: class {r['class']}  {figure}")
    sys.stdout.flush()
    return EXIT_OK
