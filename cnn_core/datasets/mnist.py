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
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_file}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_file}: expected {images.shape[0]} labels to match {images_file}, "
                         f"got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_file}: expected labels 0-9, got a {int(labels.max())}")
    if path is None:
        part = slice(0, EMBEDDED_TRAIN) if split == "train" else slice(EMBEDDED_TRAIN, None)
        images, labels = images[part], labels[part]
    X = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return X, labels.astype(np.int64)
