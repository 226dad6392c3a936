"""Fully connected layer: z = a_prev w^T + b, and its backward pass BP1-BP4 of the deck."""
from __future__ import annotations

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import check_bool, check_size
from cnn_core.kernels.activations import _sigma, _sigma_backward
from cnn_core.kernels.dense import _bias_grad, _linear, _weight_grad
from cnn_core.kernels.gemm import _matmul
from cnn_core.nn.init import check_init, check_parameter_bytes, layer_weights
from cnn_core.nn.module import Module, Parameter, is_kept, register_module


@register_module
class Linear(Module):
    """Fully connected layer: ``z = x w^T + b``, the deck's ``z = w a + b`` for a batch of row vectors.

    Backward takes ``delta = dC/dz`` and accumulates ``dC/dw = delta^T x`` (BP4) and ``dC/db = sum_n delta``
    (BP3) into the parameters' ``.grad``; it returns ``dC/dx = delta w`` (BP2 before the activation's
    sigma'), or None when ``input_grad`` is False.

    Args:
        in_features: width of each input row.
        out_features: width of each output row.
        bias: whether to learn the bias b (default True).
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's: w and b ~ U(-1/sqrt(k), 1/sqrt(k)) with k = in_features (for w, the
            kaiming-uniform of ``nn.init.layer_weights``); or ``"normal"``, the deck's: w ~ N(0, 1/k), b ~ N(0, 1).

    Shape:
        - Input: ``(N, in_features)``
        - Output: ``(N, out_features)``
        - weight: ``(out_features, in_features)``, bias: ``(out_features,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> fc = nn.Linear(3, 2, rng=0)
        >>> fc.weight.data[:] = [[1, 0, 0], [1, 1, 1]]
        >>> fc.bias.data[:] = [0, -1]
        >>> fc(np.array([[1, 2, 3]], np.float32))
        array([[1., 5.]], dtype=float32)
        >>> fc.backward(np.array([[1, 1]], np.float32))       # dC/dx = delta w
        array([[2., 1., 1.]], dtype=float32)
        >>> fc.weight.grad                                    # dC/dw = delta^T x
        array([[1., 2., 3.],
               [1., 2., 3.]], dtype=float32)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, rng=None,
                 init: str = "default"):
        super().__init__(dtype)
        self.in_features = check_size(in_features, "in_features")
        self.out_features = check_size(out_features, "out_features")
        self.init = check_init(init)
        check_parameter_bytes((self.out_features, self.in_features), self._dtype, "in_features, out_features")
        w, b = layer_weights((self.out_features, self.in_features), (self.out_features,) if bias else None,
                             init, get_rng(rng), self._dtype)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None
        self._a_prev = self._a = None     # forward's input, and its output when a ReLU was fused (else None)

    @classmethod
    def parameter_shapes(cls, in_features, out_features, bias=True, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        shape = (check_size(out_features, "out_features"), check_size(in_features, "in_features"))
        return {"weight": shape, "bias": shape[:1]} if check_bool(bias, "bias") else {"weight": shape}

    _fuses_relu = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=False)

    def _forward_relu(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=True)

    def _forward(self, x: np.ndarray, relu: bool) -> np.ndarray:
        """z = x w^T + b, or a = max(z, 0) in place on z with `relu` (a fused ReLU, kept for backward's mask)."""
        self._check_input(x, "x", 2, "(batch, in_features)")
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear: x: expected {self.in_features} features (in_features), got shape {x.shape}")
        xc = np.ascontiguousarray(x)
        # backward needs x as it is now: keep a private copy, so that the caller changing x in place before
        # backward cannot change the gradients (unless ascontiguousarray already copied a strided x, or the
        # caller promised to leave x alone: fit's batch, see nn.module.batch_feed; 200 KB an MLP step).
        if not self.training:
            self._a_prev = None
        else:
            self._a_prev = xc.copy() if np.may_share_memory(xc, x) and not is_kept(x) else xc
        z = _linear(xc, self.weight.data, None if self.bias is None else self.bias.data, row_shares=self.training)
        if relu:
            _sigma("relu", z, z)
        self._a = z if relu and self.training else None
        return z

    def backward(self, delta: np.ndarray) -> np.ndarray | None:
        """delta = dC/dz of this layer (N, out), or dC/da after a forward with a fused ReLU; returns dC/da_prev
        (N, in) (None when not input_grad) and accumulates dC/dw, dC/db."""
        a_prev = self._need_cache(self._a_prev)
        self._check_grad(delta, "delta", (a_prev.shape[0], self.out_features))
        delta = np.ascontiguousarray(delta)
        if self._a is not None:
            delta = _sigma_backward("relu", delta, self._a)     # BP2's (.) sigma'(z), sigma' = [a > 0]
        # BP3: dC/db = delta, summed over the batch (column sum).
        if self.bias is not None:
            gb, accumulate = self.bias._grad_to_write()
            if accumulate:
                gb += _bias_grad(delta)
            else:
                gb[...] = _bias_grad(delta)
        # BP4: dC/dw_jk = a_k^{l-1} delta_j, i.e. delta^T a_prev over the batch, accumulated in place (beta=1)
        # or, after zero_grad, written (beta=0).
        gw, accumulate = self.weight._grad_to_write()
        _weight_grad(delta, a_prev, gw, accumulate)
        if not self.input_grad:
            return None
        # BP2's (w^{l})^T delta^{l} in row layout: the error handed to the previous layer (before its sigma').
        return _matmul(delta, self.weight.data)

    def _clear_cache(self) -> None:
        self._a_prev = self._a = None

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "init": self.init, **super().get_config()}
