"""save / load: a model's architecture and weights in one .npz file, read back without pickle.

Layout of the archive (all plain arrays, so np.load(allow_pickle=False) reads it):
  __format__   0-d str  "cnn_core.model"   (tells a cnn_core file from any other .npz)
  __version__  0-d int  FORMAT_VERSION     (files from a newer format are refused, not misread)
  __config__   0-d str  JSON of cnn_core.nn.module_to_config(model)
  __cnn_core__ 0-d str  the cnn_core version that wrote the file (informational)
  param.<name> one array per state_dict entry, in the model's dtype
"""
from __future__ import annotations

import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from cnn_core._version import __version__
from cnn_core.nn import module_from_config, module_to_config

FORMAT_NAME = "cnn_core.model"
FORMAT_VERSION = 1
_PARAM = "param."


def save(model, path: str | os.PathLike) -> None:
    """Write `model` (architecture and weights) to `path` atomically.

    The archive is written to a temporary file in the same directory, flushed to disk and renamed over
    `path`, so a crash or error midway leaves any previous file at `path` intact. The file is written at
    exactly `path` (no ".npz" is appended). The model's class must be registered with cnn_core.nn.
    """
    path = os.fspath(path)
    arrays = {"__format__": np.array(FORMAT_NAME), "__version__": np.array(FORMAT_VERSION),
              "__config__": np.array(json.dumps(module_to_config(model))), "__cnn_core__": np.array(__version__)}
    arrays.update({_PARAM + name: a for name, a in model.state_dict().items()})
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with O_EXCL: a fresh file that honours the umask (tempfile would force mode 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform, where it is skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike):
    """Rebuild the model saved at `path` with its weights (bit-exact) and return it.

    Raises FileNotFoundError when there is no file, and ValueError naming the path when the file is not a
    readable cnn_core model: truncated or corrupt, another kind of .npz/.npy, written by a newer format
    version, or holding an architecture or weights that do not fit together.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"cnn_core.load: no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cnn_core.load: expected a model file, got a directory: {path!r}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith(b"PK\x03\x04"):
        what = "a .npy array" if magic == b"\x93NUMPY" else "no zip header" if magic else "an empty file"
        raise ValueError(f"cnn_core.load: {path!r} is not a readable cnn_core model file "
                         f"(not an .npz archive: {what})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"cnn_core.load: {path!r} is not a readable cnn_core model file "
                         f"(truncated, corrupt or not an .npz archive: {e})") from e
    if _scalar(fields.get("__format__"), "U") != FORMAT_NAME:
        raise ValueError(f"cnn_core.load: {path!r} is a .npz archive but not a cnn_core model file "
                         f"(no {FORMAT_NAME!r} header; it holds {sorted(fields)[:8]})")
    version = _scalar(fields.get("__version__"), "iu")
    if version is None or version < 1:
        raise ValueError(f"cnn_core.load: {path!r}: corrupt header (format version {fields.get('__version__')!r})")
    if version > FORMAT_VERSION:
        written_by = _scalar(fields.get("__cnn_core__"), "U") or "a newer cnn_core"
        raise ValueError(f"cnn_core.load: {path!r} has format version {version}, written by cnn_core "
                         f"{written_by}; this cnn_core {__version__} reads up to version {FORMAT_VERSION} "
                         f"(upgrade cnn_core)")
    try:
        model = module_from_config(json.loads(_scalar(fields.get("__config__"), "U") or ""))
        model.load_state_dict({k[len(_PARAM):]: v for k, v in fields.items() if k.startswith(_PARAM)})
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"cnn_core.load: {path!r}: the architecture and weights do not form a model "
                         f"({type(e).__name__}: {e})") from e
    return model


def _scalar(a, kinds: str):
    """The Python value of a 0-d array of one of the dtype kinds, else None."""
    if isinstance(a, np.ndarray) and a.ndim == 0 and a.dtype.kind in kinds:
        return a.item()
    return None
