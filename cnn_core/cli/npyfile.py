"""Reading the .npy arrays that a user hands the CLI (predict's INPUT), header first.

np.load trusts the header: a 200-byte file whose header claims shape (10**6, 1000, 196) makes it allocate
730 GiB (MemoryError). Here the header is parsed on its own
(np.lib.format.read_magic / read_array_header_*), the dtype must be plain numbers or fixed-size strings (never
object, so never pickle), and the declared size must equal the bytes the file really holds before anything is
allocated; reading then costs what the file holds. Every failure is a ValueError that names the file.
"""
from __future__ import annotations

import math
import os
import tokenize
from typing import BinaryIO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"


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
    """The array stored in the `size` bytes of `f`, checked before it is read.

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
