"""Many-to-one recurrent classifier: a recurrent layer (Elman RNN, LSTM or GRU) reads the sequence, a Linear layer
scores its last state."""
from __future__ import annotations

import numpy as np

from cnn_core import nn
from cnn_core._random import get_rng
from cnn_core._validation import check_choice, check_size
from cnn_core.nn.module import fed_by_a_layer, register_module

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@register_module
class RNNClassifier(nn.Module):
    """logits = fc(h_T) with (out, state) = rnn(x): x (N, T, input_size) -> logits (N, num_classes).

    Images (N, 1, H, W) are read row by row: T = H time steps of W = input_size pixels each, so an MNIST
    digit is 28 steps of 28 features (RNNClassifier(28, hidden_size, 10)). The recurrent layer ``rnn`` is an
    ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (``cell``) built with batch_first=True; h_T is its last layer's final
    hidden state. backward(dlogits) runs the Linear layer's backward and then BPTT through the recurrent layer
    (only h_T feeds the loss, so dC/dout is zero), accumulating all gradients and returning dC/dx in the shape
    of the input.
    Like a Sequential, the model screens x for NaN/inf where the call enters (in the recurrent layer) and not
    again inside: the Linear layer reads h_T, which the recurrent layer produced, within
    ``nn.module.fed_by_a_layer``. ``input_grad`` is the recurrent layer's (``fit`` turns it off).

    Args:
        input_size, hidden_size: the recurrent layer's.
        num_classes: the Linear layer's outputs.
        nonlinearity: the Elman RNN's (``"tanh"`` or ``"relu"``); the gated cells take only ``"tanh"``.
        init, dtype, rng: as for the layers.
        cell: ``"rnn"`` (default), ``"lstm"`` or ``"gru"``.
        num_layers: stacked recurrent layers (default 1).
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, nonlinearity: str = "tanh",
                 init: str = "default", dtype=None, rng=None, cell: str = "rnn", num_layers: int = 1):
        super().__init__(dtype)
        self.num_classes = check_size(num_classes, "num_classes")
        self.cell = check_choice(cell, "cell", tuple(CELLS))
        rng = get_rng(rng)
        kwargs = {"num_layers": num_layers, "batch_first": True, "init": init, "dtype": dtype, "rng": rng}
        if cell == "rnn":
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
        else:
            if check_choice(nonlinearity, "nonlinearity", nn.rnn.NONLINEARITIES) != "tanh":
                raise ValueError(f"nonlinearity: expected 'tanh' for cell={cell!r} (only the Elman RNN takes "
                                 f"another), got {nonlinearity!r}")
            self.rnn = CELLS[cell](input_size, hidden_size, **kwargs)
        self.fc = nn.Linear(hidden_size, self.num_classes, init=init, dtype=dtype, rng=rng)
        self._x_shape = None

    @property
    def input_grad(self) -> bool:
        rnn = self.__dict__.get("rnn")
        return rnn.input_grad if rnn is not None else True

    @input_grad.setter
    def input_grad(self, on: bool) -> None:
        rnn = self.__dict__.get("rnn")  # absent while Module.__init__ sets the default
        if rnn is not None:
            rnn.input_grad = bool(on)

    @classmethod
    def parameter_shapes(cls, input_size, hidden_size, num_classes, cell="rnn", num_layers=1,
                         **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see nn.Module)."""
        rnn = CELLS[check_choice(cell, "cell", tuple(CELLS))].parameter_shapes(input_size, hidden_size, num_layers)
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
            seq = x  # the recurrent layer checks type, dtype, ndim and width
        self._x_shape = x.shape if self.training else None
        _, state = self.rnn(seq)
        h_n = state[0] if isinstance(state, tuple) else state
        with fed_by_a_layer():  # h_T is the RNN's output: screening it again is the loss's job (nn.Module)
            return self.fc(h_n[-1])

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        x_shape = self._need_cache(self._x_shape)
        d_ht = self.fc.backward(dlogits)
        n, h = d_ht.shape
        t_len = x_shape[2] if len(x_shape) == 4 else x_shape[1]
        d_out = np.zeros((n, t_len, h), dtype=self._dtype)
        d_hn = np.zeros((self.rnn.num_layers, n, h), dtype=self._dtype)
        d_hn[-1] = d_ht
        dx = self.rnn.backward(d_out, (d_hn, None) if self.cell == "lstm" else d_hn)
        return None if dx is None else dx.reshape(x_shape)

    def _clear_cache(self) -> None:
        self._x_shape = None

    def get_config(self) -> dict:
        return {"input_size": self.rnn.input_size, "hidden_size": self.rnn.hidden_size,
                "num_classes": self.num_classes, "nonlinearity": getattr(self.rnn, "nonlinearity", "tanh"),
                "init": self.rnn.init, "cell": self.cell, "num_layers": self.rnn.num_layers, **super().get_config()}
