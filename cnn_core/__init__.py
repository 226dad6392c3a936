"""cnn_core: neural networks from scratch on compiled Cython/C kernels."""
from cnn_core._version import __version__
from cnn_core._config import get_num_threads, openmp_enabled, set_num_threads
from cnn_core._random import manual_seed
from cnn_core._validation import FLOAT_DTYPES
from cnn_core.gradcheck import gradcheck
from cnn_core import nn, optim
from cnn_core.callbacks import Callback, History, LRSchedulerStep, ProgressBar
from cnn_core.serialization import load, save
from cnn_core.summary import summary
from cnn_core import metrics
from cnn_core.training import EvalResult, NonFiniteLossError, evaluate, fit, predict
from cnn_core import datasets, models  # importing models registers RNNClassifier for load()

SUPPORTED_DTYPES = tuple(dt.name for dt in FLOAT_DTYPES)


def show_config() -> None:
    """Print the version, the OpenMP build flag, the thread count in use and the supported dtypes."""
    print(f"cnn_core {__version__}")
    print(f"  OpenMP:  {'enabled' if openmp_enabled() else 'disabled (serial build)'}")
    print(f"  threads: {get_num_threads()}")
    print(f"  dtypes:  {', '.join(SUPPORTED_DTYPES)}")


__all__ = ["__version__", "show_config", "openmp_enabled", "get_num_threads", "set_num_threads", "manual_seed",
           "gradcheck", "nn", "optim", "datasets", "models", "fit", "evaluate", "predict", "History", "Callback", "LRSchedulerStep",
           "ProgressBar", "EvalResult", "NonFiniteLossError", "save", "load", "summary", "metrics"]
