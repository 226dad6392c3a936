"""Batch normalization layers: BatchNorm1d (N, C) / (N, C, L) and BatchNorm2d (N, C, H, W), PyTorch's semantics.

In training each channel is normalized with the batch's statistics over every axis but the channel one
(mean and biased variance), and the running statistics are updated with the unbiased variance; in eval mode
the running statistics normalize (or the batch's, when ``track_running_stats=False``). The compiled kernels of
``cnn_core.kernels.norm`` compute forward and the closed-form backward, one thread per channel.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_real, check_size
from cnn_core.kernels.norm import _bn_backward, _bn_eval, _bn_train
from cnn_core.nn.module import Module, Parameter, is_kept, register_module


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which differ only in the input ranks they accept."""

    _ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None):
        super().__init__(dtype)
        self.num_features = check_size(num_features, "num_features")
        self.eps = check_real(eps, "eps", 0.0, low_open=True)
        self.momentum = None if momentum is None else check_real(momentum, "momentum", 0.0, 1.0)
        self.affine = check_bool(affine, "affine")
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats")
        c = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(c, self._dtype))
            self.bias = Parameter(np.zeros(c, self._dtype))
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, self._dtype))
            self.register_buffer("running_var", np.ones(c, self._dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._cache = None

    @classmethod
    def parameter_shapes(cls, num_features, affine=True, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        c = check_size(num_features, "num_features")
        return {"weight": (c,), "bias": (c,)} if check_bool(affine, "affine") else {}

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch counted (PyTorch's)."""
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)

    def _gamma_beta(self) -> tuple[np.ndarray, np.ndarray]:
        if self.affine:
            return self.weight.data, self.bias.data
        return np.ones(self.num_features, self._dtype), np.zeros(self.num_features, self._dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", None, "")
        if x.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__}: x: expected a {' or '.join(f'{d}-D' for d in self._ndims)} "
                             f"array {self._layout}, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: x: expected {self.num_features} channels (num_features) "
                             f"along dim 1, got shape {x.shape}")
        gamma, beta = self._gamma_beta()
        batch_stats = self.training or not self.track_running_stats
        if not batch_stats:
            y, _ = _bn_eval(x, self.running_mean, self.running_var, gamma, beta, self.eps)
            return y
        m = x.size // self.num_features
        if m < 2 and self.training:
            raise ValueError(f"{type(self).__name__}: x: expected more than 1 value per channel when training, "
                             f"got shape {x.shape}")
        y, mean, var, invstd = _bn_train(x, gamma, beta, self.eps, self._handout("y", x.shape, x.dtype))
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean *= 1 - f
            self.running_mean += f * mean
            self.running_var *= 1 - f
            self.running_var += (f * m / (m - 1)) * var  # the unbiased variance, as PyTorch keeps
        if self.training:
            xc = np.ascontiguousarray(x)
            # backward reads x as it is now: a private copy unless ascontiguousarray already made one, or the
            # caller promised to leave x alone (fit's batch and the arrays its layers hand on: is_kept; the
            # copy was 16 MB a step of small_cnn's five batch norms)
            self._cache = (xc.copy() if np.may_share_memory(xc, x) and not is_kept(x) else xc, mean, invstd)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy = dC/dy (the input's shape); returns dC/dx (None when not input_grad) and accumulates dC/dweight,
        dC/dbias when affine."""
        x, mean, invstd = self._need_cache(self._cache)
        self._check_grad(dy, "dy", x.shape)
        gamma, _ = self._gamma_beta()
        dx = self._handout("dx", x.shape, x.dtype) if self.input_grad else None
        dx, dgamma, dbeta = _bn_backward(x, np.ascontiguousarray(dy), mean, invstd, gamma, True, self.input_grad, dx)
        if self.affine:
            self.weight.grad += dgamma
            self.bias.grad += dbeta
        return dx

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats, **super().get_config()}


@register_module
class BatchNorm1d(_BatchNorm):
    """Batch normalization over a batch of vectors (N, C) or sequences (N, C, L), per feature/channel c:

        y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias

    E and Var over N (and L), Var biased. Training updates ``running_mean`` and ``running_var`` (buffers, saved
    in state_dict, not parameters) as ``r <- (1 - momentum) r + momentum * stat``, the variance unbiased
    (``momentum=None``: the cumulative average over ``num_batches_tracked`` batches); eval mode normalizes with
    them. The backward is the closed-form gradient, with the statistics' dependence on x included.

    Args:
        num_features: C, the number of features or channels.
        eps: added to the variance (default 1e-5).
        momentum: weight of the newest batch in the running statistics (default 0.1), or None.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) (default True).
        track_running_stats: keep running statistics (default True); False normalizes with the batch's in eval
            mode too.
        dtype: float32 (default) or float64.

    Shape:
        - Input: ``(N, C)`` or ``(N, C, L)``
        - Output: the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> bn = nn.BatchNorm1d(2, dtype=np.float64)
        >>> bn(np.array([[1.0, 10.0], [3.0, 30.0]])).round(3)
        array([[-1., -1.],
               [ 1.,  1.]])
        >>> bn.running_mean, bn.running_var                  # 0.9 * (0, 1) + 0.1 * (mean, unbiased var)
        (array([0.2, 2. ]), array([ 1.1, 20.9]))
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


@register_module
class BatchNorm2d(_BatchNorm):
    """Batch normalization of images (N, C, H, W), per channel c over N, H and W (see BatchNorm1d for the
    formulas and the running statistics): ``y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias``.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance (default 1e-5).
        momentum: weight of the newest batch in the running statistics (default 0.1), or None.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) (default True).
        track_running_stats: keep running statistics (default True).
        dtype: float32 (default) or float64.

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: the input's shape

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> bn = nn.BatchNorm2d(3)
        >>> y = bn(np.random.default_rng(0).normal(5, 2, (8, 3, 4, 4)).astype(np.float32))
        >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)), bool(np.allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3))
        (True, True)
        >>> sorted(bn.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
