"""cnn_core: neural networks from scratch on compiled Cython/C kernels."""
import os as _os

# ---- how long idle OpenMP threads spin (before the extension modules load libgomp) ----------------------
# libgomp's threads spin at every barrier and between parallel regions for GOMP_SPINCOUNT pause
# instructions (default 300,000: ~14 ms on the AMD EPYC this was measured on, ~48 ns a pause) before
# sleeping. When more threads are runnable than there are cores, a spinning thread holds a core that the
# thread it waits for needs, and the kernels' many small regions (two or three per MLP batch) then wait on
# scheduler time slices: an MLP epoch went from 0.29 s to 8.7-13.8 s under a compiler-and-test load
# (issue 10; benchmarks/bench_busy.py reproduces it). 1,000 pauses (~50 us there) still bridge the Python
# between two kernels on a quiet machine, and measured as fast as OMP_WAIT_POLICY=passive under load.
# libgomp reads its environment once, when it is loaded, so this must run before cnn_core._config loads
# it; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone. The variable is removed again once
# the runtime has read it, so that programs this process starts keep their own defaults.
OMP_SPINCOUNT_DEFAULT = 1000


def _libgomp_loaded() -> bool:
    """True when this process already holds a libgomp (e.g. PyTorch's wheel, loaded by `import torch`,
    has the same soname, libgomp.so.1): cnn_core's kernels then share it, with the settings it read."""
    try:
        import ctypes
        ctypes.CDLL("libgomp.so.1", mode=_os.RTLD_NOLOAD | _os.RTLD_LAZY)
        return True
    except (OSError, AttributeError):   # not loaded (or no RTLD_NOLOAD on this platform)
        return False


def _omp_wait_setting() -> tuple[str, bool]:
    """(what decides the wait of OpenMP threads, whether cnn_core set the default for the runtime's load)."""
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var in _os.environ:
            return f"{var}={_os.environ[var]} (set by the user)", False
    if _libgomp_loaded():
        return ("libgomp's default spin (300,000 pauses): libgomp was loaded before cnn_core (by another "
                f"library, e.g. torch); set GOMP_SPINCOUNT={OMP_SPINCOUNT_DEFAULT} before starting Python "
                "to avoid slowdowns on a busy machine"), False
    _os.environ["GOMP_SPINCOUNT"] = str(OMP_SPINCOUNT_DEFAULT)
    return f"GOMP_SPINCOUNT={OMP_SPINCOUNT_DEFAULT} (cnn_core's default)", True


_OMP_WAIT, _set_spincount = _omp_wait_setting()

from cnn_core._version import __version__  # noqa: E402
from cnn_core._config import (cpu_simd_levels, get_num_threads, get_simd, openmp_enabled,  # noqa: E402
                              set_num_threads, set_simd)

if _set_spincount:   # libgomp has read it (loaded with _config): the environment goes back as it was
    _os.environ.pop("GOMP_SPINCOUNT", None)

from cnn_core._random import manual_seed  # noqa: E402
from cnn_core._validation import FLOAT_DTYPES
from cnn_core.gradcheck import gradcheck
from cnn_core import nn, optim
from cnn_core.callbacks import (CSVLogger, Callback, EarlyStopping, History, LRSchedulerStep, ModelCheckpoint,
                                ProgressBar)
from cnn_core.serialization import load, load_checkpoint, save, save_checkpoint
from cnn_core.summary import summary
from cnn_core import data, metrics
from cnn_core.training import EvalResult, NonFiniteLossError, evaluate, fit, predict
from cnn_core import datasets, models  # importing models registers RNNClassifier for load()
from cnn_core.plan import Plan, compile  # noqa: A001 (cnn_core.compile, as torch.compile)

SUPPORTED_DTYPES = tuple(dt.name for dt in FLOAT_DTYPES)


def show_config() -> None:
    """Print the version, the OpenMP build flag, the thread count in use, how idle OpenMP threads wait
    (see OMP_SPINCOUNT_DEFAULT), the SIMD level in use with the levels this CPU can run, and the supported
    dtypes."""
    print(f"cnn_core {__version__}")
    print(f"  OpenMP:  {'enabled' if openmp_enabled() else 'disabled (serial build)'}")
    print(f"  threads: {get_num_threads()}")
    if openmp_enabled():
        print(f"  waiting: {_OMP_WAIT}")
    level = get_simd()
    note = " (AVX-512 where a kernel has an AVX-512 version, its AVX2 version elsewhere)" if level == "avx512" else ""
    print(f"  SIMD:    {level}{note}; CPU: {', '.join(cpu_simd_levels())}")
    print(f"  dtypes:  {', '.join(SUPPORTED_DTYPES)}")


__all__ = ["__version__", "show_config", "openmp_enabled", "get_num_threads", "set_num_threads", "get_simd",
           "set_simd", "cpu_simd_levels", "manual_seed",
           "gradcheck", "nn", "optim", "datasets", "models", "fit", "evaluate", "predict", "History", "Callback", "LRSchedulerStep",
           "ProgressBar", "EvalResult", "NonFiniteLossError", "save", "load", "summary", "metrics",
           "EarlyStopping", "ModelCheckpoint", "CSVLogger", "data", "save_checkpoint", "load_checkpoint",
           "compile", "Plan"]
