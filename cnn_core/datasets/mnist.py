"""MNIST-format data sets: the embedded digits shipped in the package, or IDX files in a directory."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnn_core.datasets.idx import load_idx

EMBEDDED_DIR = Path(__file__).parent / "data"
EMBEDDED_TRAIN = 8000  # the first 8,000 embedded digits are 'train', the last 2,000 'test'
_PREFIX = {"train": "train", "test": "t10k"}


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"path: no {stem}[.gz] in {directory}")


def load_mnist(path: str | os.PathLike | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load digits as (X float32 (N, 1, 28, 28) scaled to [0, 1], y int64 (N,)).

    path=None uses the 10,000 real MNIST digits embedded in the package (first 8,000 'train', last 2,000
    'test'); path=DIR reads the standard file names (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
    t10k-...) found in full MNIST and Fashion-MNIST.

    Element types: MNIST files are unsigned bytes, but any IDX type is read by the same rule. Images hold
    intensities on the 0..255 scale whatever their type (X = pixel / 255): integer or float values outside
    [0, 255], NaN or infinity are a ValueError naming the file (a float file already scaled to [0, 1] is
    not told apart: it would come out 255 times too dark, so convert it to 0..255 first). Labels must be whole
    numbers 0..9: a negative label, a fraction (1.7) or a NaN is a ValueError naming the file, never truncated.
    """
    if split not in _PREFIX:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if path is None:
        directory, prefix = EMBEDDED_DIR, "t10k"
    else:
        directory, prefix = Path(path), _PREFIX[split]
        if not directory.is_dir():
            raise FileNotFoundError(f"path: {directory} is not a directory")
    images_file = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels_file = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = load_idx(images_file), load_idx(labels_file)
    if images.ndim != 3:
        raise ValueError(f"{images_file}: expected images of shape (N, H, W), got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_file}: expected {images.shape[0]} labels to match {images_file}, "
                         f"got shape {labels.shape}")
    _check_range(images, 0, 255, images_file, "pixel intensities 0..255", whole=False)
    _check_range(labels, 0, 9, labels_file, "labels 0-9", whole=True)
    if path is None:
        part = slice(0, EMBEDDED_TRAIN) if split == "train" else slice(EMBEDDED_TRAIN, None)
        images, labels = images[part], labels[part]
    X = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return X, labels.astype(np.int64)


def _check_range(a: np.ndarray, lo: int, hi: int, file: Path, what: str, whole: bool) -> None:
    """Every value finite, in [lo, hi] and (when `whole`) a whole number, else a ValueError naming the file."""
    if a.size == 0:
        return
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a < lo) | (a > hi)
        if whole:
            bad |= np.floor(a) != a
    else:
        bad = (a < lo) | (a > hi)
    if bad.any():
        at = int(np.flatnonzero(bad.ravel())[0])
        index = at if a.ndim == 1 else tuple(int(i) for i in np.unravel_index(at, a.shape))
        raise ValueError(f"{file}: expected {what}, got a {a.ravel()[at].item()!r} ({a.dtype}) at index {index}")
