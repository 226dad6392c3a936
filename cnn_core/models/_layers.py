"""Name -> layer lookups shared by the model builders (activation and pooling choices)."""
from __future__ import annotations

from cnn_core import nn
from cnn_core._validation import check_choice

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def activation_class(name: str, arg: str = "activation") -> type:
    return ACTIVATIONS[check_choice(name, arg, tuple(ACTIVATIONS))]


def pool_class(name: str) -> type:
    return POOLS[check_choice(name, "pool", tuple(POOLS))]
