"""Data sets: the IDX reader and MNIST-format loaders (embedded digits or a directory of IDX files)."""
from cnn_core.datasets.idx import load_idx
from cnn_core.datasets.mnist import EMBEDDED_DIR, load_mnist

__all__ = ["load_idx", "load_mnist", "EMBEDDED_DIR"]
