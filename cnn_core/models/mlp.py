"""The multilayer perceptron of the deck: fully connected layers, each followed by an activation."""
from __future__ import annotations

from typing import Sequence

from cnn_core import nn
from cnn_core._random import get_rng
from cnn_core._validation import check_size
from cnn_core.models._layers import activation_class


def mlp(sizes: Sequence[int], activation: str = "sigmoid", output_activation: str | None = None,
        init: str = "default", dtype=None, rng=None) -> nn.Sequential:
    """Sequential(Linear(sizes[0], sizes[1]), act, ..., Linear(sizes[-2], sizes[-1])[, output act]).

    sizes: layer widths, input first (at least two). activation: 'sigmoid', 'tanh', 'relu' or 'elu' after every
    hidden layer. output_activation: None (default) leaves the last layer linear, giving the logits that
    CrossEntropyLoss expects; 'sigmoid' gives Nielsen's network, whose outputs a^L in (0, 1) are scored by
    QuadraticLoss against one-hot targets: mlp([784, 30, 10], 'sigmoid', output_activation='sigmoid',
    init='normal'). init: 'default' (PyTorch's) or 'normal' (the deck's w ~ N(0, 1/n_in), b ~ N(0, 1)).
    All layers draw their weights from one generator (rng: None for the global one, a seed or a Generator).
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes: expected a sequence of layer widths like [784, 30, 10], got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least two widths (input and output), got {list(sizes)}")
    for i, s in enumerate(sizes):
        check_size(s, f"sizes[{i}]")
    act = activation_class(activation)
    out_act = None if output_activation is None else activation_class(output_activation, "output_activation")
    rng = get_rng(rng)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(int(n_in), int(n_out), init=init, dtype=dtype, rng=rng))
        last = i == len(sizes) - 2
        if not last:
            layers.append(act(dtype=dtype))
        elif out_act is not None:
            layers.append(out_act(dtype=dtype))
    return nn.Sequential(*layers)
