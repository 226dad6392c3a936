"""Weight initialization: PyTorch's defaults and the deck's (Nielsen's) Gaussian choice.

Values are drawn in float64 and then cast, so a float32 and a float64 model built from the same seed hold
the same weights up to rounding.
"""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import check_choice, check_nbytes

INIT_SCHEMES = ("default", "normal")


def check_init(init: str) -> str:
    return check_choice(init, "init", INIT_SCHEMES)


def check_parameter_bytes(shape: tuple[int, ...], dtype, name: str) -> None:
    """Refuse, before drawing it, a parameter no process could hold (more than 2**47 bytes); `name` says
    which constructor arguments make the shape."""
    check_nbytes(shape, dtype, name, "a parameter")


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output unit: in_features for (out, in), in_channels*KH*KW for (out, in, KH, KW)."""
    return int(np.prod(shape[1:]))


def uniform(shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """U(-bound, bound)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype, copy=False)


def normal(shape: tuple[int, ...], std: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """N(0, std^2)."""
    return rng.normal(0.0, std, size=shape).astype(dtype, copy=False)


def kaiming_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype, a: float = math.sqrt(5)) -> np.ndarray:
    """PyTorch's default weight init for Linear and Conv2d: kaiming_uniform_(w, a=sqrt(5)).

    gain = sqrt(2 / (1 + a^2)), bound = sqrt(3) * gain / sqrt(fan_in); with a = sqrt(5) this is 1/sqrt(fan_in).
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return uniform(shape, math.sqrt(3.0) * gain / math.sqrt(fan_in(shape)), rng, dtype)


def layer_weights(w_shape: tuple[int, ...], b_shape: tuple[int, ...] | None, init: str,
                  rng: np.random.Generator, dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """(w, b) for a Linear/Conv2d layer.

    'default': PyTorch's kaiming-uniform weights and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases.
    'normal':  the deck's (Nielsen's) w ~ N(0, 1/n_in), b ~ N(0, 1).
    """
    n_in = fan_in(w_shape)
    if init == "normal":
        w = normal(w_shape, 1.0 / math.sqrt(n_in), rng, dtype)
        b = normal(b_shape, 1.0, rng, dtype) if b_shape is not None else None
    else:
        w = kaiming_uniform(w_shape, rng, dtype)
        b = uniform(b_shape, 1.0 / math.sqrt(n_in), rng, dtype) if b_shape is not None else None
    return w, b
