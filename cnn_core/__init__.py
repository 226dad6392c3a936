"""cnn_core: neural networks from scratch on compiled Cython/C kernels."""
from cnn_core._version import __version__
from cnn_core._config import (cpu_simd_levels, get_num_threads, get_simd, openmp_enabled, set_num_threads,
                              set_simd)
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
    """Print the version, the OpenMP build flag, the thread count in use, the SIMD level in use with the
    levels this CPU can run, and the supported dtypes."""
    print(f"cnn_core {__version__}")
    print(f"  OpenMP:  {'enabled' if openmp_enabled() else 'disabled (serial build)'}")
    print(f"  threads: {get_num_threads()}")
    level = get_simd()
    note = " (AVX-512: the packed GEMM; every other kernel runs its AVX2 version)" if level == "avx512" else ""
    print(f"  SIMD:    {level}{note}; CPU: {', '.join(cpu_simd_levels())}")
    print(f"  dtypes:  {', '.join(SUPPORTED_DTYPES)}")


__all__ = ["__version__", "show_config", "openmp_enabled", "get_num_threads", "set_num_threads", "get_simd",
           "set_simd", "cpu_simd_levels", "manual_seed",
           "gradcheck", "nn", "optim", "datasets", "models", "fit", "evaluate", "predict", "History", "Callback", "LRSchedulerStep",
           "ProgressBar", "EvalResult", "NonFiniteLossError", "save", "load", "summary", "metrics"]
