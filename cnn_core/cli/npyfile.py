"""Reading .npy arrays and .npz members that a user hands the CLI, header first.

np.load trusts the header: a 200-byte file whose header claims shape (10**6, 1000, 196) makes it allocate
730 GiB (MemoryError), and a .npz member can be a zip bomb. Here the header is parsed on its own
(np.lib.format.read_magic / read_array_header_*), the dtype must be plain numbers or fixed-size strings (never
object, so never pickle), and the declared size must equal the bytes the file really holds before anything is
allocated; reading then costs what the file holds. Every failure is a ValueError that names the file.
"""
from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
MAX_MEMBERS = 64  # an estimator file has 7; a network file a few per layer


def is_npy(path: str) -> bool:
    """True when the file starts with the .npy magic (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(len(NPY_MAGIC)) == NPY_MAGIC


def _read_header(f: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, SyntaxError, EOFError, tokenize.TokenError) as e:  # what read_magic and the parser raise
        raise ValueError(f"{what}: not a readable .npy array ({e})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biufcSU":
        raise ValueError(f"{what}: expected an array of numbers or fixed-size strings, got dtype {dtype}")
    return shape, fortran, dtype


def read_npy_stream(f: BinaryIO, size: int, what: str) -> np.ndarray:
    """The array stored in the `size` bytes of `f` (a file or a zip member), checked before it is read.

    The header's shape and dtype must account for exactly the bytes after it: a header claiming more
    than the file holds (or less: trailing data) is refused without allocating the claimed size.
    """
    shape, fortran, dtype = _read_header(f, what)
    count = math.prod(shape)  # Python ints: a hostile header cannot overflow this
    declared = count * dtype.itemsize
    available = size - f.tell()
    if declared != available:
        raise ValueError(f"{what}: the .npy header declares shape {shape} of {dtype} ({declared:,} bytes) "
                         f"but the file holds {available:,} bytes of data")
    data = f.read(declared)
    if len(data) != declared:
        raise ValueError(f"{what}: truncated .npy data ({len(data):,} of {declared:,} bytes)")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def read_npy(path: str, what: str) -> np.ndarray:
    """The array in the .npy file at `path`; `what` prefixes every message (e.g. "INPUT: a.npy")."""
    with open(path, "rb") as f:
        return read_npy_stream(f, os.fstat(f.fileno()).st_size, what)


def check_archive(zf: zipfile.ZipFile, what: str, max_members: int | None = None) -> list[zipfile.ZipInfo]:
    """The members of an open .npz archive, its directory checked before any member is inflated.

    Every member must be NAME.npy, stored or deflated (what np.savez / savez_compressed write), neither
    encrypted nor patched (zipfile would raise RuntimeError / NotImplementedError on those); at most
    `max_members` of them.
    """
    infos = zf.infolist()
    if max_members is not None and len(infos) > max_members:
        raise ValueError(f"{what}: expected at most {max_members} arrays, the archive holds {len(infos)}")
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ValueError(f"{what}: unexpected member {info.filename!r} (expected NAME.npy arrays)")
        if info.flag_bits & 0x21:  # 0x1 encrypted, 0x20 compressed patched data
            raise ValueError(f"{what}: member {info.filename} is encrypted or patched (flags {info.flag_bits:#x})")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{what}: member {info.filename} uses compression method {info.compress_type} "
                             f"(expected stored or deflated)")
    return infos


def open_archive_errors(what: str, e: Exception) -> ValueError:
    """The ValueError for an archive zipfile cannot read (see ARCHIVE_ERRORS)."""
    return ValueError(f"{what}: not a readable .npz archive ({type(e).__name__}: {e})")


# What zipfile raises on a damaged archive: NotImplementedError for an unknown zip version or compression
# method, zlib.error for corrupt deflate data, EOFError for a cut stream.
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error)


def read_npz(path: str, what: str, max_bytes: int, names: set[str] | None = None) -> dict[str, np.ndarray]:
    """The members of the .npz archive at `path` (only `names`, when given), each read by read_npy_stream
    after check_archive has passed the directory (at most MAX_MEMBERS members; the members read declare at
    most `max_bytes` in all)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in check_archive(zf, what, MAX_MEMBERS)
                     if names is None or i.filename[:-len(".npy")] in names]
            total = sum(i.file_size for i in infos)
            if total > max_bytes:
                raise ValueError(f"{what}: the archive declares {total:,} bytes of arrays, more than the "
                                 f"{max_bytes:,} this file kind can hold")
            arrays = {}
            for info in infos:
                with zf.open(info) as f:
                    arrays[info.filename[:-len(".npy")]] = read_npy_stream(
                        f, info.file_size, f"{what}: member {info.filename}")
            return arrays
    except ARCHIVE_ERRORS as e:
        raise open_archive_errors(what, e) from None
