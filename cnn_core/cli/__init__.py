"""The `cnn-core` command line: train, evaluate, predict, info (also `python -m cnn_core`)."""
from cnn_core.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
