"""Getting images into the CLI and into the layout a model reads: (N, C, H, W), (N, H*W) or rows (N, H, W)."""
from __future__ import annotations

import numpy as np

import cnn_core
from cnn_core.cli.errors import UsageError
from cnn_core.datasets import load_idx, load_mnist
from cnn_core.datasets.pixels import to_unit_range
from cnn_core.serialization import is_npy, read_npy

RECURRENT = ("RNN", "LSTM", "GRU")  # layers that read an image's rows as time steps (when batch_first)


def load_split(data: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """load_mnist with its errors turned into one-line user errors naming --data (load_mnist itself refuses
    labels outside 0..9, such as a -5 in an int32 IDX file, naming the file)."""
    where = "the embedded digits" if data is None else f"--data {data}"
    try:
        X, y = load_mnist(data, split=split)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise UsageError(f"cannot read the {split} split from {where}: {e}") from None
    if X.shape[0] == 0 or 0 in X.shape[2:]:
        raise UsageError(f"cannot use the {split} split from {where}: expected at least one image of at least "
                         f"1x1 pixels, got images of shape {X.shape[1:]} x {X.shape[0]}")
    return X, y


def read_images(path: str) -> np.ndarray:
    """Images from an IDX file (raw or .gz) or a .npy array, as float32 (N, H, W) or (N, C, H, W) in [0, 1].

    A .npy file is recognised by its magic (any name) and read header first (cnn_core.serialization.read_npy).
    The pixel scale follows the library's one pixel rule (cnn_core.datasets.pixels). A 2-D array is one image.
    A missing file, a directory or a special file (a FIFO would block) is refused by the library's reader.
    """
    hint = ""
    try:
        if is_npy(path):
            a = read_npy(path)
        else:
            hint = " (expected an IDX image file, or a .npy array)"
            a = load_idx(path)
    except ValueError as e:  # both readers' messages start with the path
        raise UsageError(f"INPUT: {e}{hint}") from None
    except OSError as e:
        raise UsageError(f"INPUT: cannot read {path}: {e.strerror or e}") from None
    if a.size == 0 or a.dtype.kind not in "buif":
        raise UsageError(f"INPUT: {path}: expected numeric images, got {a.dtype} of shape {a.shape}")
    if a.ndim == 2:
        a = a[None]
    if a.ndim not in (3, 4):
        raise UsageError(f"INPUT: {path}: expected images of shape (H, W), (N, H, W) or (N, C, H, W), "
                         f"got shape {a.shape}")
    try:
        return to_unit_range(a, f"INPUT: {path}")
    except ValueError as e:
        raise UsageError(str(e)) from None


def leaf_layers(model) -> list:
    """The modules without submodules, in the order the input meets them (depth first); [model] if it has none.

    The first one reads the input (its layout); the last one gives the output (logits or probabilities).
    """
    return [m for m in model.modules() if next(m.children(), None) is None]


def layout_for(model) -> str:
    """How the model reads images: 'image' (N, C, H, W), 'flat' (N, features), or 'rows' (N, H, W) for a
    recurrent layer (RNN, LSTM, GRU)."""
    first = leaf_layers(model)[0]
    name = type(first).__name__
    if name == "Linear":
        return "flat"
    if name in RECURRENT and first.batch_first:  # (N, T, W); a time-major layer fails the shape check
        return "rows"
    return "image"  # Conv2d, pooling and Flatten all take (N, C, H, W)


def expects(model) -> str:
    """What the model's first layer reads, for error messages."""
    layer = leaf_layers(model)[0]
    cfg = layer.get_config()
    name = type(layer).__name__
    if name == "Linear":
        return f"{cfg['in_features']} input features (e.g. 28x28 images flattened to 784)"
    if name in RECURRENT:
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
    """X in the model's layout, checked by predicting its first sample (cnn_core.predict: eval mode, every
    module's mode restored).

    A shape the model cannot take (wrong image size, channels or width) becomes a UsageError that names
    `what` (the input file or data directory) and what the model expects.
    """
    Xm = to_layout(X, layout_for(model))
    try:
        cnn_core.predict(model, Xm[:1].astype(model.dtype))
    except (ValueError, TypeError) as e:
        raise UsageError(f"{what}: images of shape {tuple(X.shape[1:])} do not fit this model, which expects "
                         f"{expects(model)} ({e})") from None
    return Xm
