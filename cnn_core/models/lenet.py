"""LeNet-5 (LeCun et al. 1998) as the deck draws it, for 1x28x28 inputs."""
from __future__ import annotations

from cnn_core import nn
from cnn_core._random import get_rng
from cnn_core._validation import check_size
from cnn_core.models._layers import activation_class, pool_class


def lenet5(activation: str = "relu", pool: str = "max", num_classes: int = 10, dtype=None,
           rng=None) -> nn.Sequential:
    """Sequential: conv 6@5x5 (padding 2), act, pool 2, conv 16@5x5, act, pool 2, flatten,
    Linear 400->120, act, Linear 120->84, act, Linear 84->num_classes (logits, for CrossEntropyLoss).

    Input (N, 1, 28, 28); feature maps 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5 = 400.
    activation='relu', pool='max' is the modern form (61,706 parameters with 10 classes);
    activation='tanh', pool='avg' is the classic one (same parameter count: pooling here has no weights).
    """
    num_classes = check_size(num_classes, "num_classes")
    act = activation_class(activation)
    pool_cls = pool_class(pool)
    rng = get_rng(rng)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, dtype=dtype, rng=rng), act(dtype=dtype), pool_cls(2, dtype=dtype),
        nn.Conv2d(6, 16, 5, dtype=dtype, rng=rng), act(dtype=dtype), pool_cls(2, dtype=dtype),
        nn.Flatten(dtype=dtype),
        nn.Linear(16 * 5 * 5, 120, dtype=dtype, rng=rng), act(dtype=dtype),
        nn.Linear(120, 84, dtype=dtype, rng=rng), act(dtype=dtype),
        nn.Linear(84, num_classes, dtype=dtype, rng=rng),
    )
