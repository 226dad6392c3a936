"""Name -> layer lookups shared by the model builders (activation and pooling choices)."""
from __future__ import annotations

from cnn_core import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def activation_class(name: str, arg: str = "activation") -> type:
    if not isinstance(name, str):
        raise TypeError(f"{arg}: expected one of {sorted(ACTIVATIONS)}, got {name!r} ({type(name).__name__})")
    if name not in ACTIVATIONS:
        raise ValueError(f"{arg}: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def pool_class(name: str) -> type:
    if not isinstance(name, str):
        raise TypeError(f"pool: expected one of {sorted(POOLS)}, got {name!r} ({type(name).__name__})")
    if name not in POOLS:
        raise ValueError(f"pool: expected one of {sorted(POOLS)}, got {name!r}")
    return POOLS[name]
