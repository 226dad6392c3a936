"""save / load: a network's architecture and weights, or a fitted linear estimator, in one .npz file, read back
without pickle.

Layout of a network's archive (all plain arrays, so np.load(allow_pickle=False) reads it):
  __format__   0-d str  "cnn_core.model"   (tells a cnn_core file from any other .npz)
  __version__  0-d int  FORMAT_VERSION     (files from a newer format are refused, not misread)
  __config__   0-d str  JSON of cnn_core.nn.module_to_config(model)
  __cnn_core__ 0-d str  the cnn_core version that wrote the file (informational)
  param.<name> one array per parameter (named_parameters), in the model's dtype
  buffer.<name> one array per persistent buffer (BatchNorm's running statistics: float in the model's dtype,
               or an integer counter), present only for models that have buffers
Files written before the recurrent layers took PyTorch's API (an RNN of one layer, batch first, with
parameters weight_ih, weight_hh, bias_ih, bias_hh) load as such an RNN: nn.rnn.upgrade_legacy_config gives
their RNN configs batch_first=True, and their parameters are read under the new names (weight_ih_l0, ...).
Layout of a fitted Perceptron's or LinearSVM's archive (the format `cnn-core train perceptron|svm --save` has
written since it existed, so those files load too):
  __format__ "cnn_core.estimator", __version__ ESTIMATOR_FORMAT_VERSION, __cnn_core__ (optional),
  __estimator__ 0-d str class name, __params__ 0-d str JSON of get_params(),
  coef_ (k, d), intercept_ (k,), classes_ (c,) integer labels
The restored estimator predicts exactly as the saved one (predict and decision_function read only coef_,
intercept_ and classes_); its training record (loss_curve_, n_iter_, ...) is not stored.

Reading a file that may be hostile. ``load`` and ``read_npy`` (a single .npy array, e.g. the images the CLI's
predict reads) share one bounded reader. A path naming anything but a regular file is an OSError, since it
is a matter of the file system (FileNotFoundError, IsADirectoryError, or OSError with errno EINVAL for a FIFO,
socket or device, refused before it is read: a FIFO blocks until a writer comes, /dev/zero never ends).
``load`` checks everything it can before it allocates anything sized by the file, and turns every defect of
the contents into a ValueError naming the file and what is wrong:
  - the archive: at most MAX_MEMBERS members, no duplicate names, no encryption, stored or deflated only, each
    member inside the file; a deflated member may expand at most MAX_COMPRESSION_RATIO times (plus
    COMPRESSION_SLACK bytes, for tiny members such as zero biases) - ``save`` never compresses;
  - every member's .npy header (read without its data, at most MAX_NPY_HEADER bytes): numbers or fixed-size
    strings only (NPY_DTYPE_KINDS: no object dtype, so no pickle), and the zip entry's uncompressed size must
    equal header + prod(shape) * itemsize, so a header cannot claim more data than the entry holds (a .npy
    file given to ``read_npy`` is checked the same way against the file's size);
  - the config: at most MAX_CONFIG_CHARS characters of JSON, nested at most MAX_CONFIG_DEPTH arrays/objects
    deep, at most MAX_MODULES modules, registered layer types and known keys only;
  - the weights: the parameter shapes the config implies (each layer's ``parameter_shapes``, computed without
    building it) must match the members' headers name for name before the model is built, so the model is
    never bigger than the data in the file; members are float32 or float64; values must be finite and
    representable in the model's dtype (float64 1e300 in a float32 model is refused, not turned into inf).
  - an estimator file: its arrays declare at most MAX_ESTIMATOR_BYTES in all (checked from the zip directory
    before any member is read), __params__ at most MAX_PARAMS_CHARS characters of flat JSON with keys among the
    class's constructor arguments, coef_/intercept_/classes_ finite numbers of consistent shapes, classes_
    integers in increasing order, and no other members.
A module class registered by the user without ``parameter_shapes`` is built from its config before its
shapes can be compared; its constructor must check its own arguments. Every built-in layer declares its shapes.
Peak memory while loading is the model plus about two copies of its largest parameter.

Writing. ``save`` (and every other file the library writes, such as ``cnn_core.plotting``'s pictures) writes a
temporary file ".<name>.<host>-<pid>-<token>.tmp" next to the target (the target of a symlink: saving to a
symlink writes through to the file it points at, as most editors do, and keeps the link), flushes it and
renames it over the target, so the file at the path is always either the old or the new one.
The temporary is removed on every exit path that runs Python code (exceptions, KeyboardInterrupt, SystemExit);
one left by a killed process (SIGKILL, power loss) is removed by the next save to the same path, once its
writer's pid, on this host, is no longer alive; a live writer's temporary (another MPI rank's, say) and those of
other hosts are never touched (a pid recycled by a new process keeps the file until that process ends).
Saving over an existing file keeps its permission bits.

Training checkpoints (save_checkpoint / load_checkpoint, at the end of this file) use the same writer and the
same bounded reader, in a format of their own ("cnn_core.checkpoint").
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import socket
import struct
import tokenize
import zipfile
import zlib
from itertools import accumulate
from typing import BinaryIO, Callable, NamedTuple

import numpy as np

from cnn_core._validation import check_path, open_regular
from cnn_core._version import __version__
from cnn_core.models import LinearSVM, Perceptron
from cnn_core.nn import Module, module_from_config, module_to_config
from cnn_core.nn.module import parameter_shapes_from_config
from cnn_core.nn.rnn import legacy_parameter_names, upgrade_legacy_config

FORMAT_NAME = "cnn_core.model"
FORMAT_VERSION = 1
_PARAM = "param."
_BUFFER = "buffer."
_META = ("__format__", "__version__", "__config__", "__cnn_core__")
ESTIMATOR_FORMAT_NAME = "cnn_core.estimator"
ESTIMATOR_FORMAT_VERSION = 1
_ESTIMATORS = {"Perceptron": Perceptron, "LinearSVM": LinearSVM}
_ESTIMATOR_MEMBERS = ("__estimator__", "__params__", "coef_", "intercept_", "classes_")

MAX_MEMBERS = 50_000           # archive members (params are at most a few per module)
MAX_MODULES = 10_000           # modules in the config, containers included
MAX_CONFIG_CHARS = 1 << 20     # JSON text of the config
MAX_CONFIG_DEPTH = 64          # nested JSON arrays/objects (a Sequential level takes 3)
MAX_META_BYTES = 1 << 16       # each of __format__, __version__, __cnn_core__ as a .npy member
MAX_NPY_HEADER = 10_000        # .npy header text (NumPy's own default limit)
NPY_MAGIC = b"\x93NUMPY"
NPY_DTYPE_KINDS = "biufcSU"    # numbers and fixed-size strings: never object (pickle), records or sub-arrays
MAX_COMPRESSION_RATIO = 20     # float weights deflate less than 1.2x; a zip bomb by 1000x
COMPRESSION_SLACK = 1 << 12    # bytes a deflated member may exceed the ratio by
_CHUNK = 1 << 20               # bytes read at a time
MAX_ESTIMATOR_BYTES = 256 << 20  # an estimator's arrays: coef_ of 10 classes x 784 pixels is 63 KB
MAX_PARAMS_CHARS = 1 << 16     # JSON text of an estimator's hyperparameters


# ---- save ----------------------------------------------------------------------------------------------

def _host_tag() -> str:
    """A short, file-name-safe tag of this host: temporaries of other hosts' writers are left alone."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True  # unknown: keep the file
    return True


def _remove_stale_temporaries(directory: str, base: str) -> None:
    """Delete the temporaries of `base` written on this host by processes that no longer exist."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness probe elsewhere (it terminates on Windows)
        return
    pattern = re.compile(rf"\.{re.escape(base)}\.{_host_tag()}-(\d+)-[0-9a-f]+\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # already removed by another saver, or not ours to remove


def save(model, path: str | os.PathLike) -> None:
    """Write `model` to `path` atomically: a network (architecture and weights), or a fitted Perceptron or
    LinearSVM (hyperparameters, `coef_`, `intercept_`, `classes_`). `load` reads either back.

    The archive is written to a temporary file in the same directory, flushed to disk and renamed over
    `path`, so a crash or error midway leaves any previous file at `path` intact. The file is written at
    exactly `path` (no ".npz" is appended). A network's class must be registered with cnn_core.nn; an
    estimator must be fitted, on integer class labels, with hyperparameters JSON can hold (random_state an int
    or None, not a Generator). Nothing is written when the model cannot be stored.
    A symlink at `path` is written through (its target is replaced, the link kept); an existing file keeps its
    permission bits; temporaries left by killed writers are removed (see the module docstring).
    Raises TypeError for another kind of `model`, ValueError for one that cannot be stored, and
    FileNotFoundError naming `path` when its directory does not exist.
    """
    user_path = check_path(path)
    if isinstance(model, Module):
        arrays = {"__format__": np.array(FORMAT_NAME), "__version__": np.array(FORMAT_VERSION),
                  "__config__": np.array(json.dumps(module_to_config(model, "model"))),
                  "__cnn_core__": np.array(__version__)}
        state = model.state_dict()
        params = {name for name, _ in model.named_parameters()}
        arrays.update({(_PARAM if name in params else _BUFFER) + name: a for name, a in state.items()})
    elif isinstance(model, tuple(_ESTIMATORS.values())):
        arrays = _estimator_arrays(model)
    else:
        raise TypeError(f"model: expected a cnn_core.nn.Module, Perceptron or LinearSVM, got {type(model).__name__}")
    _write_atomic(user_path, lambda f: np.savez(f, **arrays))


def _estimator_arrays(est) -> dict[str, np.ndarray]:
    """The members of a fitted estimator's file, checked so that load will read back what was saved."""
    name = type(est).__name__
    if not hasattr(est, "coef_"):
        raise ValueError(f"model: this {name} is not fitted yet; call fit before saving it")
    if est.classes_.dtype.kind not in "iu":
        raise ValueError(f"model: {name}.classes_: the file stores integer class labels, got dtype "
                         f"{est.classes_.dtype} (fit on integer labels to save)")
    params = {}
    for key, value in est.get_params().items():
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            value = value.item()  # NumPy scalars as the Python numbers JSON holds
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"model: {name} hyperparameter {key}={value!r} cannot be stored (expected None, a "
                             f"bool, a number or a str; e.g. set_params({key}=0) before saving)")
        params[key] = value
    return {"__format__": np.array(ESTIMATOR_FORMAT_NAME), "__version__": np.array(ESTIMATOR_FORMAT_VERSION),
            "__cnn_core__": np.array(__version__), "__estimator__": np.array(name),
            "__params__": np.array(json.dumps(params)), "coef_": est.coef_, "intercept_": est.intercept_,
            "classes_": est.classes_}


def _write_atomic(user_path: str, write: Callable[[BinaryIO], None], who: str = "cnn_core.save") -> None:
    """`write(f)` into a temporary file next to `user_path`, flushed, fsync'd and renamed over the target: the
    library's one writer of files (models, estimators, plots). `who` names the caller in error messages."""
    target = os.path.realpath(user_path)  # write through a symlink to the file it names
    directory, base = os.path.split(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"{who}: no such directory {directory!r} to save into",
                                user_path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, f"{who}: expected a file path, got a directory", user_path)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    _remove_stale_temporaries(directory, base)
    tmp = os.path.join(directory, f".{base}.{_host_tag()}-{os.getpid()}-{secrets.token_hex(6)}.tmp")
    try:
        # os.open with O_EXCL: a fresh file that honours the umask (tempfile would force mode 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise type(e)(e.errno, f"{who}: cannot create a file in {directory!r} ({e.strerror})",
                      user_path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
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


# ---- the bounded reader -------------------------------------------------------------------------------
# Every file the library reads from a user goes through _validation.open_regular, and every .npy stream (a .npy file,
# or a member of an .npz archive) through _npy_header and _npy_data: nothing is allocated from a size the
# file claims before the file is known to hold it.

class _Corrupt(Exception):
    """A defect of the file itself (load reports it as 'not a readable cnn_core model file', read_npy as a
    ValueError naming the file)."""


class _Header(NamedTuple):
    """A .npy header: shape, order and dtype, and the byte length of the header itself."""
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    length: int


def _npy_header(f: BinaryIO, size: int) -> _Header:
    """The header of the .npy stream `f` (at its start), which holds `size` bytes in all, read without the data.

    Checked: format 1.0 or 2.0, at most MAX_NPY_HEADER bytes of header text, a dtype of NPY_DTYPE_KINDS,
    no negative dimension, and header + prod(shape) * itemsize == `size`, so that a header can neither claim
    more data than the stream holds nor hide bytes after it. Raises _Corrupt; leaves `f` at the data.
    """
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != NPY_MAGIC:
        raise _Corrupt("not a readable .npy array (no .npy magic)")
    if magic[6:8] not in (b"\x01\x00", b"\x02\x00"):
        raise _Corrupt(f"not a readable .npy array (format version {magic[6]}.{magic[7]}; 1.0 and 2.0 are read)")
    len_size = 2 if magic[6] == 1 else 4
    raw_len = f.read(len_size)
    if len(raw_len) < len_size:
        raise _Corrupt("not a readable .npy array (truncated header)")
    (hlen,) = struct.unpack("<H" if len_size == 2 else "<I", raw_len)
    if hlen > MAX_NPY_HEADER:
        raise _Corrupt(f"not a readable .npy array (a header of {hlen:,} bytes, more than {MAX_NPY_HEADER:,})")
    text = f.read(hlen)
    if len(text) < hlen:
        raise _Corrupt("not a readable .npy array (truncated header)")
    reader = np.lib.format.read_array_header_1_0 if len_size == 2 else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = reader(io.BytesIO(raw_len + text))
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError) as e:  # what NumPy's header parser raises
        raise _Corrupt(f"not a readable .npy array (bad header: {e})") from None
    if dtype.kind not in NPY_DTYPE_KINDS:
        raise _Corrupt(f"expected an array of numbers or fixed-size strings, got dtype {dtype}")
    if any(d < 0 for d in shape):
        raise _Corrupt(f"negative dimension in shape {shape}")
    length = 8 + len_size + hlen
    n_bytes = math.prod(shape) * dtype.itemsize  # Python ints: a huge claim cannot overflow
    if size != length + n_bytes:
        raise _Corrupt(f"its .npy header declares shape {shape} of {dtype} ({n_bytes:,} bytes) but it holds "
                       f"{size - length:,} bytes of data")
    return _Header(shape, fortran, dtype, length)


def _npy_data(f: BinaryIO, h: _Header) -> np.ndarray:
    """The array of a checked header, read from `f` (at the data) in chunks into memory sized by the header."""
    flat = np.empty(math.prod(h.shape), h.dtype)
    buf = memoryview(flat.view(np.uint8))
    pos = 0
    while pos < len(buf):
        n = f.readinto(buf[pos:pos + _CHUNK])
        if not n:
            raise _Corrupt(f"truncated data ({pos:,} of {len(buf):,} bytes)")
        pos += n
    if f.read(1):
        raise _Corrupt("bytes after the data")
    return flat.reshape(h.shape, order="F" if h.fortran else "C")


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """The array in the .npy file at `path`, read without trusting the file.

    ``np.load`` trusts the header: a 200-byte file whose header claims shape (10**6, 1000, 196) makes it
    allocate 730 GiB. Here the header is read and checked on its own, as every member of a model file is
    (module docstring): numbers or fixed-size strings only (never pickle), and the declared data must be
    exactly what the file holds after the header, before anything of that size is allocated; reading then
    costs what the file holds. The array keeps the file's dtype (byte order included) and order.

    Raises FileNotFoundError, IsADirectoryError, or OSError for a FIFO, socket or device (see ``load``), and
    ValueError starting with the path and saying what is wrong for any other file that is no such array.
    """
    path = check_path(path)
    with open_regular(path) as f:
        try:
            return _npy_data(f, _npy_header(f, os.fstat(f.fileno()).st_size))
        except _Corrupt as e:
            raise ValueError(f"{os.fsdecode(path)}: {e}") from None


def is_npy(path: str | os.PathLike) -> bool:
    """True when the file at `path` starts with the .npy magic, whatever its name (a regular file only, as
    for ``read_npy``: the same errors)."""
    with open_regular(check_path(path)) as f:
        return f.read(len(NPY_MAGIC)) == NPY_MAGIC


# ---- load ----------------------------------------------------------------------------------------------

class _Mismatch(Exception):
    """Architecture and weights that do not fit together (load reports 'do not form a model')."""


def load(path: str | os.PathLike):
    """Rebuild the model saved at `path` and return it: a network with its weights (bit-exact), or a
    Perceptron / LinearSVM that predicts exactly as the saved one.

    Raises FileNotFoundError when there is no file, IsADirectoryError for a directory, OSError for a FIFO,
    socket or device (refused before reading: one can block or never end), and ValueError naming the path
    when the file is not a readable cnn_core model: truncated or corrupt, another kind of .npz/.npy, written by
    a newer format version, holding an architecture or weights that do not fit together, or exceeding a limit
    of the module docstring. The model is built only after its config and the members' headers have been
    checked.
    """
    path = check_path(path)
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        magic = f.read(6)
        if not magic.startswith(b"PK\x03\x04"):
            what = "a .npy array" if magic == NPY_MAGIC else "no zip header" if magic else "an empty file"
            raise ValueError(f"cnn_core.load: {path!r} is not a readable cnn_core model file "
                             f"(not an .npz archive: {what})")
        try:
            _check_member_count(f, size)
            with zipfile.ZipFile(f) as zf:
                return _load_archive(zf, size, path)
        except _Mismatch as e:
            raise ValueError(f"cnn_core.load: {path!r}: the architecture and weights do not form a model "
                             f"({e})") from None
        except _Corrupt as e:
            raise ValueError(f"cnn_core.load: {path!r} is not a readable cnn_core model file ({e})") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error, NotImplementedError,
                ValueError, OSError) as e:  # NotImplementedError: a zip version or feature zipfile lacks
            if str(e).startswith("cnn_core.load:"):  # already names the file and the defect
                raise
            raise ValueError(f"cnn_core.load: {path!r} is not a readable cnn_core model file "
                             f"(truncated, corrupt or not an .npz archive: {type(e).__name__}: {e})") from None


def _check_member_count(f, size: int) -> None:
    """Refuse an end-of-central-directory record announcing more than MAX_MEMBERS members, before zipfile
    builds an object per member."""
    f.seek(max(0, size - (22 + 0xFFFF)))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at >= 0 and at + 22 <= len(tail):
        (count,) = struct.unpack("<H", tail[at + 10:at + 12])
        if count > MAX_MEMBERS:
            raise _Corrupt(f"{count} members, more than the limit of {MAX_MEMBERS}")
    f.seek(0)


def _load_archive(zf: zipfile.ZipFile, size: int, path: str):
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Corrupt(f"{len(infos)} members, more than the limit of {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in members:
            raise _Corrupt(f"duplicate member {key!r}")
        members[key] = info
    # The small __format__ member first: which kind of file this is decides the limits that apply to the rest.
    headers: dict[str, _Header] = {}
    if "__format__" in members:
        _check_entry(members["__format__"], size)
        headers["__format__"] = _read_header(zf, members["__format__"])
    fmt = _read_meta(zf, members, headers, "__format__", "U") if headers else None
    if fmt not in (FORMAT_NAME, ESTIMATOR_FORMAT_NAME):
        raise ValueError(f"cnn_core.load: {path!r} is a .npz archive but not a cnn_core model file "
                         f"(no {FORMAT_NAME!r} or {ESTIMATOR_FORMAT_NAME!r} header; it holds {sorted(members)[:8]})")
    if fmt == ESTIMATOR_FORMAT_NAME:
        declared = sum(info.file_size for info in infos)
        if declared > MAX_ESTIMATOR_BYTES:
            raise _Corrupt(f"the archive declares {declared:,} bytes of arrays, more than the "
                           f"{MAX_ESTIMATOR_BYTES:,} an estimator file may hold")
    for key, info in members.items():
        if key not in headers:
            _check_entry(info, size)
            headers[key] = _read_header(zf, info)

    newest = FORMAT_VERSION if fmt == FORMAT_NAME else ESTIMATOR_FORMAT_VERSION
    version = _read_meta(zf, members, headers, "__version__", "iu")
    if version is None or version < 1:
        raise ValueError(f"cnn_core.load: {path!r}: corrupt header (__version__: expected a 0-d integer >= 1, "
                         f"got {'a missing or other kind of member' if version is None else version})")
    if version > newest:
        written_by = _read_meta(zf, members, headers, "__cnn_core__", "U") or "a newer cnn_core"
        raise ValueError(f"cnn_core.load: {path!r} has format version {version}, written by cnn_core "
                         f"{written_by}; this cnn_core {__version__} reads up to version {newest} "
                         f"(upgrade cnn_core)")
    if fmt == ESTIMATOR_FORMAT_NAME:
        return _load_estimator(zf, members, headers)
    unexpected = sorted(k for k in members if k not in _META and not k.startswith((_PARAM, _BUFFER)))
    if unexpected:
        raise _Mismatch(f"unexpected members {unexpected[:8]}")
    cfg = upgrade_legacy_config(_read_config(zf, members, headers))  # files of the one-layer batch-first RNN
    params = {k[len(_PARAM):]: headers[k] for k in members if k.startswith(_PARAM)}
    member_of = {name: _PARAM + name for name in params}  # parameter -> archive member (old RNN names differ)
    for name, h in params.items():
        if h.dtype.kind != "f" or h.dtype.itemsize not in (4, 8):
            raise _Mismatch(f"parameter {name!r}: expected float32 or float64 values, got {h.dtype}")
    try:
        shapes = parameter_shapes_from_config(cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise _Mismatch(f"{type(e).__name__}: {e}") from None
    if shapes is not None:  # the usual case: checked before anything is built
        _rename_legacy(params, member_of, shapes)
        _compare(shapes, params)
    try:
        model = module_from_config(cfg)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise _Mismatch(f"{type(e).__name__}: {e}") from None
    targets = dict(model.named_parameters())
    _rename_legacy(params, member_of, targets)
    _compare({name: p.shape for name, p in targets.items()}, params)
    for name, p in targets.items():
        values = _read_data(zf, members[member_of[name]], params[name])
        if not np.isfinite(values).all():
            raise _Mismatch(f"parameter {name!r} holds NaN or infinity")
        if values.dtype != p.dtype:
            with np.errstate(over="ignore"):
                cast = values.astype(p.dtype)
            if not np.isfinite(cast).all():
                raise _Mismatch(f"parameter {name!r} holds values up to {float(np.abs(values).max()):.3g}, "
                                f"beyond the range of the model's dtype {p.dtype}")
            values = cast
        p.data[...] = values
    _load_buffers(zf, members, headers, model)
    return model


def _load_buffers(zf, members, headers, model) -> None:
    """The model's persistent buffers from the buffer.<name> members: the same names and shapes as the built
    model's (a buffer is the size of its layer's parameters, which were checked before building), real
    numbers, finite, and representable in the buffer's dtype."""
    buffers = {k[len(_BUFFER):]: headers[k] for k in members if k.startswith(_BUFFER)}
    params = {name for name, _ in model.named_parameters()}
    targets = {name: v for name, v in model._named_state() if name not in params}  # the arrays, not copies
    _compare({name: b.shape for name, b in targets.items()}, buffers)
    state = {}
    for name, b in targets.items():
        h = buffers[name]
        if h.dtype.kind not in ("f" if b.dtype.kind == "f" else "iu"):
            raise _Mismatch(f"buffer {name!r}: expected {'float' if b.dtype.kind == 'f' else 'integer'} values, "
                            f"got {h.dtype}")
        values = _read_data(zf, members[_BUFFER + name], h)
        with np.errstate(over="ignore"):
            cast = values.astype(b.dtype)
        if (b.dtype.kind == "f" and not np.isfinite(cast).all()) or (b.dtype.kind != "f" and not np.array_equal(cast, values)):
            raise _Mismatch(f"buffer {name!r} holds NaN, infinity or values beyond the range of its dtype {b.dtype}")
        state[name] = cast
    model.load_state_dict(state, strict=False)


def _rename_legacy(params: dict[str, _Header], member_of: dict[str, str], expected) -> None:
    """Give the parameters a file stores under the old RNN names (nn.rnn.LEGACY_PARAMETER_NAMES) the names
    the model expects, in place in `params` and `member_of`."""
    for old, new in legacy_parameter_names(params, expected).items():
        params[new] = params.pop(old)
        member_of[new] = member_of.pop(old)


def _load_estimator(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], headers: dict[str, _Header]):
    """The Perceptron or LinearSVM of an estimator file whose archive and headers have been checked."""
    allowed = {"__format__", "__version__", "__cnn_core__", *_ESTIMATOR_MEMBERS}
    unexpected = sorted(k for k in members if k not in allowed)
    if unexpected:
        raise _Corrupt(f"unexpected members {unexpected[:8]}")
    missing = sorted(set(_ESTIMATOR_MEMBERS) - set(members))
    if missing:
        raise _Corrupt(f"missing {', '.join(missing)}")
    name = _read_meta(zf, members, headers, "__estimator__", "U")
    if name not in _ESTIMATORS:
        raise _Corrupt(f"__estimator__: expected one of {sorted(_ESTIMATORS)} (a 0-d string), got "
                       f"{name[:80] if isinstance(name, str) else name!r}")
    cls = _ESTIMATORS[name]
    est = cls(**_read_params(zf, members["__params__"], headers["__params__"], cls))
    coef = _read_numbers(zf, members, headers, "coef_", 2, "iuf")
    intercept = _read_numbers(zf, members, headers, "intercept_", 1, "iuf")
    classes = _read_numbers(zf, members, headers, "classes_", 1, "iu")
    if len(classes) < 2 or not (np.diff(classes) > 0).all():
        raise _Corrupt(f"classes_: expected at least two distinct labels in increasing order, "
                       f"got {classes[:10].tolist()}")
    if intercept.shape != (coef.shape[0],) or coef.shape[0] != (1 if len(classes) == 2 else len(classes)):
        raise _Corrupt(f"inconsistent shapes coef_ {coef.shape}, intercept_ {intercept.shape}, "
                       f"classes_ {classes.shape}")
    est.coef_ = coef.astype(np.float64)
    est.intercept_ = intercept.astype(np.float64)
    est.classes_ = classes.astype(classes.dtype.newbyteorder("="))
    return est


def _read_params(zf: zipfile.ZipFile, info: zipfile.ZipInfo, h: _Header, cls) -> dict:
    """The estimator's hyperparameters: a JSON object with keys among cls's constructor arguments."""
    if h.shape != () or h.dtype.kind != "U":
        raise _Corrupt(f"__params__: expected a 0-d string of JSON, got {h.dtype} of shape {h.shape}")
    if h.dtype.itemsize // 4 > MAX_PARAMS_CHARS:
        raise _Corrupt(f"__params__: expected at most {MAX_PARAMS_CHARS} characters of JSON, "
                       f"got {h.dtype.itemsize // 4}")
    text = _read_data(zf, info, h).item()
    try:
        params = _parse_json(text, "__params__")
    except ValueError as e:
        raise _Corrupt(str(e)) from None
    names = set(cls._param_names())
    if not isinstance(params, dict) or not set(params) <= names:
        raise _Corrupt(f"__params__: expected an object with keys among {sorted(names)}, got {text[:80]!r}")
    return params


def _read_numbers(zf, members, headers, key: str, ndim: int, kinds: str) -> np.ndarray:
    """A non-empty `ndim`-D member of one of the dtype kinds, finite when float."""
    h = headers[key]
    if len(h.shape) != ndim or h.dtype.kind not in kinds or math.prod(h.shape) == 0:
        raise _Corrupt(f"{key}: expected a non-empty {ndim}-D array of "
                       f"{'integers' if kinds == 'iu' else 'real numbers'}, got {h.dtype} of shape {h.shape}")
    a = _read_data(zf, members[key], h)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise _Corrupt(f"{key}: expected finite values, got NaN or infinity")
    return a


def _check_entry(info: zipfile.ZipInfo, size: int) -> None:
    """The zip entry's own plausibility, from the central directory alone."""
    name = info.filename
    if info.flag_bits & 0x21:  # 0x1 encrypted, 0x20 compressed patched data: zipfile cannot read either
        raise _Corrupt(f"member {name!r} is encrypted or patched (flags {info.flag_bits:#x})")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _Corrupt(f"member {name!r} uses compression method {info.compress_type} "
                       "(expected stored or deflated)")
    if info.header_offset + info.compress_size > size:
        raise _Corrupt(f"member {name!r} claims {info.compress_size} bytes at offset {info.header_offset}, "
                       f"past the end of the {size}-byte file")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise _Corrupt(f"stored member {name!r} claims {info.file_size} bytes but holds {info.compress_size}")
    if (info.compress_type == zipfile.ZIP_DEFLATED
            and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size + COMPRESSION_SLACK):
        raise _Corrupt(f"member {name!r} would expand from {info.compress_size} to {info.file_size} bytes, "
                       f"more than the limit of {MAX_COMPRESSION_RATIO}x (a zip bomb?)")


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Header:
    """A member's .npy header, read without its data and checked against the entry's size (_npy_header)."""
    with zf.open(info) as f:
        try:
            return _npy_header(f, info.file_size)
        except _Corrupt as e:
            raise _Corrupt(f"member {info.filename!r}: {e}") from None


def _read_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, h: _Header) -> np.ndarray:
    """The member's array (_npy_data), its header already checked; reading to the end verifies the CRC."""
    with zf.open(info) as f:
        f.read(h.length)
        try:
            return _npy_data(f, h)
        except _Corrupt as e:
            raise _Corrupt(f"member {info.filename!r}: {e}") from None


def _read_meta(zf, members, headers, key: str, kinds: str):
    """The Python value of a small 0-d header member of one of the dtype kinds, else None."""
    info = members.get(key)
    if info is None:
        return None
    h = headers[key]
    if h.shape != () or h.dtype.kind not in kinds or info.file_size > MAX_META_BYTES:
        return None
    return _read_data(zf, info, h).item()


def _read_config(zf, members, headers):
    """The config as JSON, size- and depth-checked before it is parsed."""
    info, h = members.get("__config__"), headers.get("__config__")
    if info is None or h.shape != () or h.dtype.kind != "U":
        raise _Mismatch("no config (expected __config__, a 0-d string)")
    if h.dtype.itemsize // 4 > MAX_CONFIG_CHARS:
        raise _Mismatch(f"config of {h.dtype.itemsize // 4} characters, more than the limit of "
                        f"{MAX_CONFIG_CHARS}")
    try:
        cfg = _parse_json(_read_data(zf, info, h).item(), "config")
    except ValueError as e:
        raise _Mismatch(str(e)) from None
    n_modules, stack = 0, [cfg]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            n_modules += "type" in node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if n_modules > MAX_MODULES:
        raise _Mismatch(f"config of {n_modules} modules, more than the limit of {MAX_MODULES}")
    return cfg


def _parse_json(text: str, what: str):
    """`text` parsed as JSON; a ValueError naming `what` when it is not JSON or is nested more than
    MAX_CONFIG_DEPTH deep. The depth is counted on the text with strings blanked out, before the (recursive)
    JSON parser runs, so hostile nesting never reaches the interpreter's recursion limit."""
    brackets = re.sub(r'[^\[\]{}]', "", re.sub(r'"(?:[^"\\]|\\.)*"', '""', text))
    depth = max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{what} nested {depth} deep, more than the limit of {MAX_CONFIG_DEPTH}")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None


def _compare(shapes: dict[str, tuple[int, ...]], params: dict[str, _Header]) -> None:
    missing = sorted(set(shapes) - set(params))
    unexpected = sorted(set(params) - set(shapes))
    if missing or unexpected:
        raise _Mismatch(f"the config's parameters and the file's differ: missing {missing[:8]}, "
                        f"unexpected {unexpected[:8]}")
    for name, shape in shapes.items():
        if tuple(shape) != tuple(params[name].shape):
            raise _Mismatch(f"parameter {name!r}: the config implies shape {tuple(shape)}, the file holds "
                            f"shape {tuple(params[name].shape)}")


# ---- training checkpoints ------------------------------------------------------------------------------
# Layout (the same bounded reader and limits as a model file):
#   __format__ "cnn_core.checkpoint", __version__ CHECKPOINT_FORMAT_VERSION, __cnn_core__ (informational)
#   __epoch__      0-d int: epochs finished (fit's initial_epoch to continue)
#   param.<name>   the model's state_dict arrays
#   optim.<i>.<k>  the optimizer's state arrays (state_dict()["state"][i][k])
#   __optim__      JSON: {"param_groups": [...], "state": {i: {counter: int}}} (the rest of the state_dict)
#   __scheduler__  JSON of the scheduler's state_dict (absent without a scheduler)
#   __rng__        JSON of the library's global random-generator state (cnn_core._random)

CHECKPOINT_FORMAT_NAME = "cnn_core.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_OPTIM = "optim."


def save_checkpoint(path: str | os.PathLike, model, optimizer, scheduler=None, epoch: int = 0) -> None:
    """Write everything a training run needs to continue exactly, atomically, in one .npz file: the model's
    state, the optimizer's state (PyTorch's state_dict), the scheduler's state when given, `epoch` (the
    number of finished epochs) and the library's random-generator state.

    `load_checkpoint` restores them; `fit(..., initial_epoch=epoch)` then continues so that the run ends with
    exactly the weights of an uninterrupted one. Call it between epochs (e.g. from a callback's on_epoch_end,
    with epoch + 1).
    """
    from cnn_core._random import get_rng_state
    from cnn_core._validation import check_int
    user_path = check_path(path)
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    if not callable(getattr(optimizer, "state_dict", None)):
        raise TypeError(f"optimizer: expected a cnn_core.optim optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and not callable(getattr(scheduler, "state_dict", None)):
        raise TypeError(f"scheduler: expected a cnn_core.optim schedule or None, got {type(scheduler).__name__}")
    epoch = check_int(epoch, "epoch", 0)
    arrays = {"__format__": np.array(CHECKPOINT_FORMAT_NAME), "__version__": np.array(CHECKPOINT_FORMAT_VERSION),
              "__cnn_core__": np.array(__version__), "__epoch__": np.array(epoch, dtype=np.int64)}
    arrays.update({_PARAM + name: a for name, a in model.state_dict().items()})
    sd = optimizer.state_dict()
    counters: dict[str, dict] = {}
    for i, st in sd["state"].items():
        counters[str(i)] = {}
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"{_OPTIM}{i}.{k}"] = v
            else:
                counters[str(i)][k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    arrays["__optim__"] = np.array(json.dumps({"param_groups": groups, "state": counters}))
    if scheduler is not None:
        arrays["__scheduler__"] = np.array(json.dumps(scheduler.state_dict()))
    arrays["__rng__"] = np.array(json.dumps(get_rng_state()))
    _write_atomic(user_path, lambda f: np.savez(f, **arrays), "cnn_core.save_checkpoint")


def load_checkpoint(path: str | os.PathLike, model, optimizer=None, scheduler=None) -> int:
    """Restore a `save_checkpoint` file into `model` (and `optimizer`, `scheduler` when given, which must be
    built as the saved ones were) and the library's random-generator state; return the saved epoch.

    The file is read with the bounded reader of `load` (same limits; hostile files are refused with a
    ValueError naming the path). Everything is checked by the objects' own load_state_dict; when anything
    fails, the model, optimizer, scheduler and generator are put back as they were before the call.
    """
    from cnn_core._random import get_rng_state, set_rng_state
    path = check_path(path)
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if not f.read(4).startswith(b"PK\x03\x04"):
            raise ValueError(f"cnn_core.load_checkpoint: {path!r} is not a checkpoint file (not an .npz archive)")
        try:
            _check_member_count(f, size)
            with zipfile.ZipFile(f) as zf:
                parts = _read_checkpoint(zf, size, path, scheduler is not None)
        except _Corrupt as e:
            raise ValueError(f"cnn_core.load_checkpoint: {path!r} is not a readable checkpoint ({e})") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error, NotImplementedError,
                OSError) as e:
            raise ValueError(f"cnn_core.load_checkpoint: {path!r} is not a readable checkpoint (truncated or "
                             f"corrupt: {type(e).__name__}: {e})") from None
    epoch, params, optim_state, sched_state, rng_state = parts
    before = (model.state_dict(), optimizer.state_dict() if optimizer is not None else None,
              scheduler.state_dict() if scheduler is not None else None, get_rng_state())
    try:
        model.load_state_dict(params)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
        if scheduler is not None:
            scheduler.load_state_dict(sched_state)
        set_rng_state(rng_state)
    except (TypeError, ValueError, KeyError) as e:
        model.load_state_dict(before[0])
        if optimizer is not None:
            optimizer.load_state_dict(before[1])
        if scheduler is not None:
            scheduler.load_state_dict(before[2])
        set_rng_state(before[3])
        raise ValueError(f"cnn_core.load_checkpoint: {path!r} does not fit the given objects "
                         f"({type(e).__name__}: {e})") from None
    return epoch


def _read_checkpoint(zf: zipfile.ZipFile, size: int, path, want_scheduler: bool):
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Corrupt(f"{len(infos)} members, more than the limit of {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    headers: dict[str, _Header] = {}
    for info in infos:
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in members:
            raise _Corrupt(f"duplicate member {key!r}")
        _check_entry(info, size)
        members[key] = info
        headers[key] = _read_header(zf, info)
    if _read_meta(zf, members, headers, "__format__", "U") != CHECKPOINT_FORMAT_NAME:
        raise _Corrupt(f"no {CHECKPOINT_FORMAT_NAME!r} header (a model file is read by cnn_core.load)")
    version = _read_meta(zf, members, headers, "__version__", "iu")
    if version is None or not 1 <= version <= CHECKPOINT_FORMAT_VERSION:
        raise _Corrupt(f"__version__: expected 1..{CHECKPOINT_FORMAT_VERSION}, got {version}")
    epoch = _read_meta(zf, members, headers, "__epoch__", "iu")
    if epoch is None or epoch < 0:
        raise _Corrupt(f"__epoch__: expected a 0-d integer >= 0, got {epoch}")
    known = {"__format__", "__version__", "__cnn_core__", "__epoch__", "__optim__", "__scheduler__", "__rng__"}
    unexpected = sorted(k for k in members if k not in known and not k.startswith((_PARAM, _OPTIM)))
    if unexpected:
        raise _Corrupt(f"unexpected members {unexpected[:8]}")
    params, optim_arrays = {}, {}
    for key, h in headers.items():
        if key.startswith((_PARAM, _OPTIM)):
            if h.dtype.kind not in "iuf":
                raise _Corrupt(f"member {key!r}: expected numbers, got {h.dtype}")
            a = _read_data(zf, members[key], h)
            if key.startswith(_PARAM):
                params[key[len(_PARAM):]] = a
            else:
                optim_arrays[key[len(_OPTIM):]] = a
    optim = _read_json_member(zf, members, headers, "__optim__")
    if not isinstance(optim, dict) or set(optim) != {"param_groups", "state"} or not isinstance(optim["state"], dict):
        raise _Corrupt("__optim__: expected an object with 'param_groups' and 'state'")
    state: dict = {}
    for i, counters in optim["state"].items():
        if not isinstance(counters, dict):
            raise _Corrupt(f"__optim__: state {i!r} is not an object")
        state[i] = dict(counters)
    for name, a in optim_arrays.items():
        i, _, k = name.partition(".")
        state.setdefault(i, {})[k] = a
    groups = optim["param_groups"]
    if isinstance(groups, list):
        groups = [{k: (tuple(v) if k == "betas" and isinstance(v, list) else v) for k, v in g.items()}
                  if isinstance(g, dict) else g for g in groups]
    sched = _read_json_member(zf, members, headers, "__scheduler__") if want_scheduler else None
    if want_scheduler and sched is None:
        raise _Corrupt("no scheduler state (__scheduler__), but a scheduler was given")
    rng = _read_json_member(zf, members, headers, "__rng__")
    return epoch, params, {"param_groups": groups, "state": state}, sched, rng


def _read_json_member(zf, members, headers, key: str):
    """A 0-d string member holding JSON, size- and depth-checked; None when absent."""
    info, h = members.get(key), headers.get(key)
    if info is None:
        return None
    if h.shape != () or h.dtype.kind != "U" or h.dtype.itemsize // 4 > MAX_CONFIG_CHARS:
        raise _Corrupt(f"{key}: expected a 0-d string of at most {MAX_CONFIG_CHARS} characters of JSON")
    try:
        return _parse_json(_read_data(zf, info, h).item(), key)
    except ValueError as e:
        raise _Corrupt(str(e)) from None
