"""Getting images into the CLI and into the layout a model reads: (N, C, H, W), (N, H*W) or rows (N, H, W)."""
from __future__ import annotations

import os

import numpy as np

from cnn_core.cli.errors import UsageError
from cnn_core.datasets import load_idx, load_mnist


def load_split(data: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """load_mnist with its errors turned into one-line user errors naming --data."""
    try:
        return load_mnist(data, split=split)
    except (FileNotFoundError, ValueError, OSError) as e:
        where = "the embedded digits" if data is None else f"--data {data}"
        raise UsageError(f"cannot read the {split} split from {where}: {e}") from None


def read_images(path: str) -> np.ndarray:
    """Images from an IDX file (raw or .gz) or a .npy array, as float32 (N, H, W) or (N, C, H, W) in [0, 1].

    uint8 pixels are scaled by 1/255; float arrays are taken as already scaled. A 2-D array is one image.
    """
    if not os.path.exists(path):
        raise UsageError(f"INPUT: no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"INPUT: expected an IDX image file or a .npy array, got a directory: {path}")
    if path.endswith(".npy"):
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UsageError(f"INPUT: {path} is not a readable .npy array ({e})") from None
    else:
        try:
            a = load_idx(path)
        except (ValueError, OSError) as e:
            raise UsageError(f"INPUT: {e} (expected an IDX image file, or a .npy array named *.npy)") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "uif" or a.size == 0:
        raise UsageError(f"INPUT: {path}: expected numeric images, got {getattr(a, 'dtype', type(a).__name__)} "
                         f"of shape {getattr(a, 'shape', '?')}")
    if a.ndim == 2:
        a = a[None]
    if a.ndim not in (3, 4):
        raise UsageError(f"INPUT: {path}: expected images of shape (H, W), (N, H, W) or (N, C, H, W), "
                         f"got shape {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / np.float32(255.0)
    else:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise UsageError(f"INPUT: {path}: the images contain NaN or infinity")
    return a


def first_layer(model):
    """The first module without submodules, depth first: the one that reads the input."""
    module = model
    while True:
        children = list(module.children())
        if not children:
            return module
        module = children[0]


def layout_for(model) -> str:
    """How the model reads images: 'image' (N, C, H, W), 'flat' (N, features), or 'rows' (N, H, W) for an RNN."""
    name = type(first_layer(model)).__name__
    if name == "Linear":
        return "flat"
    if name == "RNN":
        return "rows"
    return "image"  # Conv2d, pooling and Flatten all take (N, C, H, W)


def expects(model) -> str:
    """What the model's first layer reads, for error messages."""
    layer = first_layer(model)
    cfg = layer.get_config()
    name = type(layer).__name__
    if name == "Linear":
        return f"{cfg['in_features']} input features (e.g. 28x28 images flattened to 784)"
    if name == "RNN":
        return f"rows of {cfg['input_size']} pixels (images {cfg['input_size']} wide)"
    if name == "Conv2d":
        return f"images with {cfg['in_channels']} channel(s)"
    return f"input of {name}"


def to_layout(X: np.ndarray, layout: str) -> np.ndarray:
    """Images (N, H, W) or (N, C, H, W) reshaped for the layout (no copy when the data allow it)."""
    if layout == "flat":
        return X.reshape(len(X), -1)
    if layout == "rows":
        if X.ndim == 4:
            if X.shape[1] != 1:
                raise UsageError(f"an RNN reads single-channel images row by row, got {X.shape[1]} channels")
            X = X[:, 0]
        return X
    return X[:, None] if X.ndim == 3 else X


def fit_model_input(model, X: np.ndarray, what: str) -> np.ndarray:
    """X in the model's layout, checked by one eval-mode forward pass on its first sample.

    A shape the model cannot take (wrong image size, channels or width) becomes a UsageError that names
    `what` (the input file or data directory) and what the model expects.
    """
    Xm = to_layout(X, layout_for(model))
    was_training = model.training
    model.eval()
    try:
        model(Xm[:1].astype(model.dtype))
    except (ValueError, TypeError) as e:
        raise UsageError(f"{what}: images of shape {tuple(X.shape[1:])} do not fit this model, which expects "
                         f"{expects(model)} ({e})") from None
    finally:
        model.train(was_training)
    return Xm
