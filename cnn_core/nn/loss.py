"""Cost functions C(pred, target) with PyTorch's names, arguments and reductions.

``loss = crit(pred, target)`` returns a Python float and remembers what it needs; ``crit.backward()`` returns
dC/dpred (for the output layer this is the deck's grad_a C, which BP1 multiplies by sigma'(z^L)).

Every loss takes ``reduction`` (keyword-only, like every argument after ``weight``: PyTorch's positional slots
there are its deprecated size_average/reduce): ``'mean'`` (default) and ``'sum'`` return a Python
float; ``'none'`` returns the unreduced array (one value per sample for the class losses, per element for the
elementwise ones), and then ``backward(grad=None)`` takes the upstream gradient dC/dloss of that shape (ones
by default: the gradient of the sum). For 'mean' and 'sum', ``grad`` is an optional scalar multiplier.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_real, check_choice, check_finite, check_float_dtype, check_int, not_an_array
from cnn_core.kernels._loss import cross_entropy as _cross_entropy
from cnn_core.nn.functional import _shifted_exp

REDUCTIONS = ("mean", "sum", "none")
_COMPILED = (np.dtype(np.float32), np.dtype(np.float64))   # the dtypes of kernels/_loss.pyx


def _check_pred(pred, cls: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(pred, np.ndarray):
        raise not_an_array(pred, f"{cls}: pred")
    check_float_dtype(pred.dtype, f"{cls}: pred")
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(f"{cls}: pred: expected a {ndim}-D array (batch, classes), got shape {pred.shape}")
    if pred.ndim == 0 or pred.shape[0] == 0:
        raise ValueError(f"{cls}: pred: expected a non-empty batch, got shape {pred.shape}")
    check_finite(pred, f"{cls}: pred")
    return pred


def _check_labels(target, n: int, n_classes: int, cls: str, ignore_index: int | None = None) -> np.ndarray:
    if target.shape != (n,):
        raise ValueError(f"{cls}: target: expected integer labels of shape {(n,)}, got shape {target.shape}")
    t = target if ignore_index is None else target[target != ignore_index]
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        also = "" if ignore_index is None else f" or ignore_index={ignore_index}"
        raise ValueError(f"{cls}: target: expected labels in [0, {n_classes}){also}, "
                         f"got values in [{t.min()}, {t.max()}]")
    return target.astype(np.intp, copy=False)


def _check_weight(weight, name: str, cls: str) -> np.ndarray | None:
    """A 1-D (or broadcastable) array of finite non-negative weights, kept as float64 and cast per call."""
    if weight is None:
        return None
    try:
        w = np.array(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of real numbers or None, got {weight!r:.80}") from None
    if not np.isfinite(w).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return w


def _check_real_target(target, pred: np.ndarray, cls: str) -> np.ndarray:
    if target.dtype != pred.dtype:
        raise TypeError(f"{cls}: target: expected dtype {pred.dtype} (the dtype of pred), got {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"{cls}: target: expected shape {pred.shape} (the shape of pred), got {target.shape}")
    check_finite(target, f"{cls}: target")
    return target


class _Loss:
    """Base of the losses: subclasses implement ``_compute(pred, target) -> (unreduced, local, denom)``, the
    per-sample (or per-element) losses, their derivatives with respect to pred (pred's shape: entry i of a
    class loss's unreduced array depends only on row i of pred), and what 'mean' divides the sum by.

    ``_argmax_hits``: how many rows of the last forward's pred have their first maximum at the row's
    target, where the loss counted them on its way (CrossEntropyLoss's compiled pass, from its row maxima),
    else None; fit takes it as the batch's accuracy count instead of scanning pred again."""

    def __init__(self, *, reduction: str = "mean"):
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self._state = self._argmax_hits = None

    def __call__(self, pred: np.ndarray, target: np.ndarray):
        return self.forward(pred, target)

    def forward(self, pred: np.ndarray, target: np.ndarray):
        """The loss: a Python float for 'mean' and 'sum', the unreduced array for 'none'."""
        self._argmax_hits = None
        unreduced, local, denom = self._compute(pred, target)
        self._state = (unreduced.shape, local, denom)
        if self.reduction == "none":
            return unreduced
        # in pred's dtype, as np.mean (and PyTorch) reduce: the mean is bit for bit what the losses computed
        # before reductions existed
        total = np.add.reduce(unreduced, axis=None)
        if self.reduction == "sum":
            return float(total)
        d = unreduced.dtype.type(denom)
        if d:   # a nonzero divisor warns of no 0/0 or x/0 (and skips errstate's ~0.8 us)
            return float(total / d)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 when every target is ignored: NaN, as PyTorch
            return float(total / d)

    def _compute(self, pred: np.ndarray, target: np.ndarray):
        raise NotImplementedError

    def backward(self, grad=None) -> np.ndarray:
        """dC/dpred for the last call (pred's shape and dtype; a fresh array per call). `grad`: for 'none',
        dC/dloss of the returned array's shape (default ones); otherwise an optional scalar (default 1)."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before the loss was computed")
        shape, local, denom = self._state
        if self.reduction == "none":
            if grad is None:
                return local.copy()
            if not isinstance(grad, np.ndarray):
                raise not_an_array(grad, f"{type(self).__name__}.backward: grad")
            if grad.shape != shape:
                raise ValueError(f"{type(self).__name__}.backward: grad: expected the loss's shape {shape}, "
                                 f"got {grad.shape}")
            check_float_dtype(grad.dtype, f"{type(self).__name__}.backward: grad")
            g = grad.astype(local.dtype, copy=False)
            return local * g.reshape(shape + (1,) * (local.ndim - len(shape)))
        out = local if grad is None else local * local.dtype.type(as_real(
            grad.item() if isinstance(grad, np.ndarray) and grad.size == 1 else grad,
            f"{type(self).__name__}.backward: grad"))
        if self.reduction == "mean":
            d = local.dtype.type(denom)
            if d:
                return out / d
            with np.errstate(invalid="ignore", divide="ignore"):
                return out / d
        return out.copy() if out is local else out

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _as_target(target, cls: str) -> np.ndarray:
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{cls}: target: expected a numpy.ndarray, got {type(target).__name__}")
    return target


def _int_target(target, cls: str) -> np.ndarray:
    target = _as_target(target, cls)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"{cls}: target: expected integer class labels, got dtype {target.dtype}")
    return target


def _class_weight(weight: np.ndarray | None, k: int, dtype, cls: str) -> np.ndarray:
    if weight is None:
        return np.ones(k, dtype)
    if weight.shape != (k,):
        raise ValueError(f"{cls}: weight: expected one weight per class, shape ({k},), got {weight.shape}")
    return weight.astype(dtype)


class _ClassLoss(_Loss):
    """Shared arguments of NLLLoss and CrossEntropyLoss (PyTorch's order: weight, ..., ignore_index, reduction)."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.weight = _check_weight(weight, "weight", type(self).__name__)
        if self.weight is not None and (self.weight.ndim != 1 or (self.weight < 0).any()):
            raise ValueError(f"weight: expected a 1-D array of non-negative class weights, got shape "
                             f"{self.weight.shape}")
        self.ignore_index = check_int(ignore_index, "ignore_index")

    def _labels(self, z: np.ndarray, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels with ignored ones replaced by 0, keep mask, per-class weights in z's dtype)."""
        cls = type(self).__name__
        n, k = z.shape
        y = _check_labels(_int_target(target, cls), n, k, cls, self.ignore_index)
        keep = y != self.ignore_index
        return np.where(keep, y, 0), keep, _class_weight(self.weight, k, z.dtype, cls)

    def extra_repr(self) -> str:
        parts = [] if self.weight is None else [f"weight={self.weight.tolist()}"]
        parts += [] if self.ignore_index == -100 else [f"ignore_index={self.ignore_index}"]
        parts += [super().extra_repr()] if super().extra_repr() else []
        return ", ".join(parts)


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities x (n, classes) (LogSoftmax's output) and labels y (n,):
    ``l_i = -w[y_i] x[i, y_i]``, 0 where ``y_i == ignore_index``; 'mean' divides the sum by
    ``sum_i w[y_i]`` over the samples not ignored (by their count without weights), as PyTorch.
    Backward: ``dl_i/dx[i, y_i] = -w[y_i]``, zero elsewhere.

    Args:
        weight: None or one non-negative weight per class (classes,).
        ignore_index: a label whose samples contribute nothing (default -100).
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        - pred: ``(n, classes)`` log-probabilities, float32 or float64
        - target: ``(n,)`` integer labels in ``[0, classes)`` or ignore_index
        - Output: a Python float; ``(n,)`` for reduction='none'

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.NLLLoss(weight=np.array([1.0, 3.0]))
        >>> round(crit(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1])), 5)  # (log 2 + 3 log(4/3)) / 4
        0.38905
        >>> crit.backward()
        array([[-0.25,  0.  ],
               [ 0.  , -0.75]])
    """

    def _compute(self, pred, target):
        x = _check_pred(pred, "NLLLoss", 2)
        y, keep, w = self._labels(x, target)
        rows = np.arange(len(x))
        wy = np.where(keep, w[y], 0).astype(x.dtype)
        local = np.zeros_like(x)
        local[rows, y] = -wy
        return -wy * x[rows, y], local, wy.sum(dtype=np.float64) if self.weight is not None else keep.sum()


class CrossEntropyLoss(_ClassLoss):
    """Cross-entropy of logits z (n, classes) and integer labels y (n,), PyTorch's formula with ``eps =
    label_smoothing``, C classes, ``p = softmax(z_i)`` and ``log p`` by the stable log-sum-exp::

        l_i = (1 - eps) w[y_i] (-log p[y_i]) + (eps / C) sum_c w[c] (-log p[c])      (0 if y_i == ignore_index)

    'mean' divides the sum by ``sum_i w[y_i]`` over the samples not ignored (their count without weights).
    Backward: ``dl_i/dz_i = (1 - eps) w[y_i] (p - onehot(y_i)) + (eps / C) ((sum_c w[c]) p - w)``.

    Args:
        weight: None or one non-negative weight per class (classes,).
        ignore_index: a label whose samples contribute nothing (default -100).
        reduction: 'mean' (default), 'sum' or 'none'.
        label_smoothing: eps in [0, 1] (default 0.0).

    Shape:
        - pred: ``(n, classes)`` logits, float32 or float64
        - target: ``(n,)`` integer labels in ``[0, classes)`` or ignore_index
        - Output: a Python float; ``(n,)`` for reduction='none'; ``backward()`` gives dC/dpred ``(n, classes)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.CrossEntropyLoss()
        >>> round(crit(np.zeros((2, 4), np.float32), np.array([0, 3])), 4)     # log 4
        1.3863
        >>> crit.backward()
        array([[-0.375,  0.125,  0.125,  0.125],
               [ 0.125,  0.125,  0.125, -0.375]], dtype=float32)
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction)
        eps = as_real(label_smoothing, "label_smoothing")
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = eps

    def _compute(self, pred, target):
        if (self.weight is None and not self.label_smoothing and isinstance(pred, np.ndarray) and pred.ndim == 2
                and pred.dtype in _COMPILED and pred.flags.c_contiguous and len(pred) and pred.shape[1]
                and isinstance(target, np.ndarray) and target.dtype == np.int64 and target.shape == pred.shape[:1]):
            # fit's case: one compiled pass (kernels/_loss.pyx); on bad values it stops, and the checks below
            # say what is wrong
            unreduced, local = np.empty(len(pred), pred.dtype), np.empty_like(pred)
            kept, hits = _cross_entropy(pred, np.ascontiguousarray(target), self.ignore_index, unreduced, local)
            if kept >= 0:
                self._argmax_hits = hits
                return unreduced, local, kept
        z = _check_pred(pred, "CrossEntropyLoss", 2)
        y, keep, w = self._labels(z, target)
        n, k = z.shape
        shifted, e, sum_e = _shifted_exp(z, 1)  # the pieces of log_softmax(z) and softmax(z), computed once
        logp = shifted - np.log(sum_e)
        p = e / sum_e
        rows = np.arange(n)
        eps = self.label_smoothing
        wy = np.where(keep, w[y], 0).astype(z.dtype)
        unreduced = (1 - eps) * wy * -logp[rows, y]
        local = p * ((1 - eps) * wy)[:, None]
        local[rows, y] -= (1 - eps) * wy
        if eps:
            m = keep.astype(z.dtype)[:, None]
            unreduced = unreduced + (eps / k) * (-(logp * w).sum(axis=1)) * m[:, 0]
            local += (eps / k) * (w.sum() * p - w) * m
        denom = wy.sum(dtype=np.float64) if self.weight is not None else keep.sum()
        return unreduced.astype(z.dtype, copy=False), local.astype(z.dtype, copy=False), denom

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return ", ".join(([base] if base else []) + ([f"label_smoothing={self.label_smoothing}"]
                                                    if self.label_smoothing else []))


class MSELoss(_Loss):
    """C = mean over all elements of (a - y)^2; dC/da = 2 (a - y) / numel ('none': (a - y)^2 elementwise).

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        - pred: ``(*)``, float32 or float64
        - target: ``(*)``, pred's shape and dtype
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.MSELoss()
        >>> crit(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
        2.0
        >>> crit.backward()
        array([ 0., -2.])
    """

    def _compute(self, pred, target):
        a = _check_pred(pred, "MSELoss")
        y = _check_real_target(_as_target(target, "MSELoss"), a, "MSELoss")
        diff = a - y
        return diff * diff, 2 * diff, diff.size


class BCELoss(_Loss):
    """C = -mean[y ln a + (1-y) ln(1-a)] over all elements, for probabilities a in [0, 1] ('none': elementwise).

    Like PyTorch the logs are clamped at -100 (so a = 0 or 1 gives a finite loss) and the gradient
    (a - y) / (a (1-a)) has its denominator clamped at 1e-12.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        - pred: ``(*)`` probabilities in [0, 1], float32 or float64
        - target: ``(*)`` values in [0, 1], pred's shape and dtype
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.BCELoss()
        >>> round(crit(np.array([0.5, 0.5]), np.array([1.0, 0.0])), 4)       # log 2
        0.6931
        >>> crit.backward()
        array([-1.,  1.])
    """

    def _compute(self, pred, target):
        a = _check_pred(pred, "BCELoss")
        y = _check_real_target(_as_target(target, "BCELoss"), a, "BCELoss")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"BCELoss: pred: expected probabilities in [0, 1], got values in [{a.min()}, {a.max()}]")
        if y.min() < 0 or y.max() > 1:
            raise ValueError(f"BCELoss: target: expected values in [0, 1], got values in [{y.min()}, {y.max()}]")
        with np.errstate(divide="ignore"):
            log_a = np.maximum(np.log(a), -100)
            log_1ma = np.maximum(np.log1p(-a), -100)
        return -(y * log_a + (1 - y) * log_1ma), (a - y) / np.maximum(a * (1 - a), 1e-12), a.size


class QuadraticLoss(_Loss):
    """The deck's C = 1/(2n) sum_x ||y(x) - a||^2, n the batch size; dC/da = (a - y) / n. Unreduced
    ('none'): the per-sample 1/2 ||y(x) - a||^2, shape (n,).

    target: a real array of pred's shape (e.g. one-hot), or integer labels (n,) which are one-hot encoded.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        - pred: ``(n, *)``, float32 or float64; ``(n, classes)`` with integer labels
        - target: pred's shape and dtype, or ``(n,)`` integer labels
        - Output: a Python float; ``backward()`` gives dC/dpred, pred's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.QuadraticLoss()
        >>> crit(np.array([[0.5, 0.5]]), np.array([0]))     # (0.5^2 + 0.5^2) / 2
        0.25
        >>> crit.backward()
        array([[-0.5,  0.5]])
    """

    def _compute(self, pred, target):
        a = _check_pred(pred, "QuadraticLoss")
        target = _as_target(target, "QuadraticLoss")
        n = a.shape[0]
        if np.issubdtype(target.dtype, np.integer):
            if a.ndim != 2:
                raise ValueError(f"QuadraticLoss: pred: integer labels need a 2-D pred (batch, classes), "
                                 f"got shape {a.shape}")
            labels = _check_labels(target, n, a.shape[1], "QuadraticLoss")
            diff = a.copy()
            diff[np.arange(n), labels] -= 1
        else:
            diff = a - _check_real_target(target, a, "QuadraticLoss")
        # per sample: 1/2 ||y(x) - a||^2, whose mean over the batch is the deck's C
        return 0.5 * (diff * diff).reshape(n, -1).sum(axis=1), diff, n


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits x (sigmoid and BCE in one, stable for any x), PyTorch's formula::

        l = w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)],   softplus(-x) = log1p(e^-|x|) + max(-x, 0)

    which equals ``-w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]`` without ever computing a log of
    0; backward: ``dl/dx = w [(1 - y) - (1 + (pw - 1) y) sigmoid(-x)]`` (``w (sigmoid(x) - y)`` for pw = 1).

    Args:
        weight: None or weights broadcastable to pred's shape (a rescaling per element or per output).
        reduction: 'mean' (default, over all elements), 'sum' or 'none'.
        pos_weight: None or the weight of positive examples per output (broadcast along the last axis).

    Shape:
        - pred: ``(*)`` logits, float32 or float64
        - target: ``(*)`` values in [0, 1], pred's shape and dtype
        - Output: a Python float; pred's shape for reduction='none'

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> crit = nn.BCEWithLogitsLoss()
        >>> round(crit(np.array([0.0, 1000.0]), np.array([1.0, 1.0])), 4)      # (log 2 + 0) / 2
        0.3466
        >>> crit.backward()                                                       # (sigmoid(x) - y) / 2
        array([-0.25,  0.  ])
    """

    def __init__(self, weight=None, *, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction=reduction)
        self.weight = _check_weight(weight, "weight", "BCEWithLogitsLoss")
        self.pos_weight = _check_weight(pos_weight, "pos_weight", "BCEWithLogitsLoss")

    def _broadcast(self, v: np.ndarray | None, name: str, shape: tuple[int, ...], dtype) -> np.ndarray | None:
        if v is None:
            return None
        try:
            return np.broadcast_to(v, shape).astype(dtype)
        except ValueError:
            raise ValueError(f"BCEWithLogitsLoss: {name}: shape {v.shape} does not broadcast to pred's "
                             f"shape {shape}") from None

    def _compute(self, pred, target):
        x = _check_pred(pred, "BCEWithLogitsLoss")
        y = _check_real_target(_as_target(target, "BCEWithLogitsLoss"), x, "BCEWithLogitsLoss")
        if y.min() < 0 or y.max() > 1:
            raise ValueError(f"BCEWithLogitsLoss: target: expected values in [0, 1], got values in "
                             f"[{y.min()}, {y.max()}]")
        a = np.exp(-np.abs(x))  # in (0, 1]: no overflow for any x
        softplus_neg = np.log1p(a) + np.maximum(-x, 0)
        sig_neg = np.where(x >= 0, a, 1) / (1 + a)  # sigmoid(-x): e^-x / (1 + e^-x) or 1 / (1 + e^x)
        pw = self._broadcast(self.pos_weight, "pos_weight", x.shape, x.dtype)
        lw = 1 if pw is None else 1 + (pw - 1) * y
        unreduced = (1 - y) * x + lw * softplus_neg
        local = (1 - y) - lw * sig_neg
        w = self._broadcast(self.weight, "weight", x.shape, x.dtype)
        if w is not None:
            unreduced, local = unreduced * w, local * w
        return unreduced.astype(x.dtype, copy=False), local.astype(x.dtype, copy=False), x.size
