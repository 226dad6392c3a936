"""MNIST-format data sets: the embedded digits shipped in the package, or IDX files in a directory."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnn_core._validation import check_choice, check_path
from cnn_core.datasets.idx import load_idx
from cnn_core.datasets.pixels import to_unit_range

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

    Element types: MNIST files are unsigned bytes, but any IDX type is read, images by the library's one
    pixel rule (cnn_core.datasets.pixels): integer pixels 0..255 are divided by 255, float pixels must already
    be in [0, 1]; anything else is a ValueError naming the file. Labels must be whole numbers 0..9: a negative
    label, a fraction (1.7) or a NaN is a ValueError naming the file, never truncated.
    """
    check_choice(split, "split", tuple(_PREFIX))
    if path is None:
        directory, prefix = EMBEDDED_DIR, "t10k"
    else:
        directory, prefix = Path(check_path(path)), _PREFIX[split]
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
    _check_labels(labels, labels_file)
    if path is None:
        part = slice(0, EMBEDDED_TRAIN) if split == "train" else slice(EMBEDDED_TRAIN, None)
        images, labels = images[part], labels[part]
    X = to_unit_range(images, str(images_file))[:, None, :, :]
    return X, labels.astype(np.int64)


def _check_labels(a: np.ndarray, file: Path) -> None:
    """Every label a whole number in 0..9, else a ValueError naming the file, the value and its index."""
    if a.size == 0:
        return
    bad = (a < 0) | (a > 9)
    if a.dtype.kind == "f":
        bad |= ~np.isfinite(a) | (np.floor(a) != a)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{file}: expected labels 0-9, got a {a[at].item()!r} ({a.dtype}) at index {at}")
