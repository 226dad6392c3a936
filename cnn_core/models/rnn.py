"""Many-to-one recurrent classifier: an Elman RNN reads the sequence, a Linear layer scores its last state."""
from __future__ import annotations

import numpy as np

from cnn_core import nn
from cnn_core._random import get_rng
from cnn_core._validation import check_size
from cnn_core.nn.module import fed_by_a_layer, register_module


@register_module
class RNNClassifier(nn.Module):
    """logits = fc(h_T) with (out, h_T) = rnn(x): x (N, T, input_size) -> logits (N, num_classes).

    Images (N, 1, H, W) are read row by row: T = H time steps of W = input_size pixels each, so an MNIST
    digit is 28 steps of 28 features (RNNClassifier(28, hidden_size, 10)). backward(dlogits) runs the Linear
    layer's backward and then BPTT through the RNN (only h_T feeds the loss, so dC/dout is zero), accumulating
    all gradients and returning dC/dx in the shape of the input.
    Like a Sequential, the model screens x for NaN/inf where the call enters (in the RNN) and not again
    inside: the Linear layer reads h_T, which the RNN produced, within ``nn.module.fed_by_a_layer``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, nonlinearity: str = "tanh",
                 init: str = "default", dtype=None, rng=None):
        super().__init__(dtype)
        self.num_classes = check_size(num_classes, "num_classes")
        rng = get_rng(rng)
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, init=init, dtype=dtype, rng=rng)
        self.fc = nn.Linear(hidden_size, self.num_classes, init=init, dtype=dtype, rng=rng)
        self._x_shape = None

    @classmethod
    def parameter_shapes(cls, input_size, hidden_size, num_classes, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see nn.Module)."""
        rnn = nn.RNN.parameter_shapes(input_size, hidden_size)
        fc = nn.Linear.parameter_shapes(hidden_size, check_size(num_classes, "num_classes"))
        return {**{"rnn." + k: v for k, v in rnn.items()}, **{"fc." + k: v for k, v in fc.items()}}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"RNNClassifier: x: expected a numpy.ndarray, got {type(x).__name__}")
        if x.ndim == 4:
            if x.shape[1] != 1:
                raise ValueError(f"RNNClassifier: x: images must have one channel (N, 1, H, W) to be read row by "
                                 f"row, got shape {x.shape}")
            seq = x.reshape(x.shape[0], x.shape[2], x.shape[3])
        else:
            seq = x  # nn.RNN checks type, dtype, ndim and width
        self._x_shape = x.shape if self.training else None
        _, h_t = self.rnn(seq)
        with fed_by_a_layer():  # h_t is the RNN's output: screening it again is the loss's job (nn.Module)
            return self.fc(h_t)

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        x_shape = self._need_cache(self._x_shape)
        d_ht = self.fc.backward(dlogits)
        n, h = d_ht.shape
        t_len = x_shape[2] if len(x_shape) == 4 else x_shape[1]
        d_out = np.zeros((n, t_len, h), dtype=self._dtype)
        return self.rnn.backward(d_out, d_ht).reshape(x_shape)

    def _clear_cache(self) -> None:
        self._x_shape = None

    def get_config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "num_classes": self.num_classes, "nonlinearity": self.rnn.nonlinearity, "init": self.rnn.init,
                **super().get_config()}
