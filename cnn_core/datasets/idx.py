"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

A header's dimensions are checked against the file before anything is allocated: a raw file must be exactly
header + prod(dims) * itemsize bytes long; a gzip file may claim at most MAX_GZIP_RATIO times its compressed
size (deflate cannot do better than about 1032:1), and is read in chunks that stop at the real end of the
stream, so memory follows the data actually present, never the header's claim.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from cnn_core._validation import check_path, open_regular

# IDX type code -> big-endian NumPy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_RATIO = 1032  # deflate's largest possible expansion: a larger claim cannot be backed by the file


def _read(f, n: int, path: str) -> bytes:
    """The next at most `n` bytes of the (decompressed) stream `f`, in chunks so that a header claiming terabytes
    costs only what the file really holds."""
    chunks, got = [], 0
    try:
        while got < n:
            chunk = f.read(min(n - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt gzip stream ({e})") from None
    return b"".join(chunks)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file into an array of its native dtype (uint8 for MNIST images and labels).

    The header (two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
    uint32) is checked, and the payload must hold exactly prod(dims) elements: a truncated file, trailing
    bytes or a foreign file raise ValueError naming the file and what is wrong. The file is opened once, and
    only if it is a regular file (FileNotFoundError, IsADirectoryError or OSError EINVAL otherwise: a FIFO or a
    device could block or never end).
    """
    path = check_path(path)
    with open_regular(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        with (gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw) as f:
            return _parse(f, path, size, gz)


def _parse(f, path: str, size: int, gz: bool) -> np.ndarray:
    head = _read(f, 4, path)
    if len(head) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(head)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic 0x{head.hex()}: expected 0x0000 then a type code "
                         f"in {sorted(hex(c) for c in _IDX_DTYPES)})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    dims_bytes = _read(f, 4 * ndim, path)
    if len(dims_bytes) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({4 + len(dims_bytes)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = _IDX_DTYPES[code]
    count = math.prod(dims)  # Python ints: a corrupt header cannot overflow this
    n_bytes = count * dtype.itemsize
    if gz:
        if n_bytes > MAX_GZIP_RATIO * size:
            raise ValueError(f"{path}: IDX dimensions {dims} need {n_bytes} bytes, more than a {size}-byte gzip "
                             f"file can hold (at most {MAX_GZIP_RATIO}x)")
    elif size != header_len + n_bytes:
        what = "truncated IDX data" if size < header_len + n_bytes else "unexpected bytes after the IDX data"
        raise ValueError(f"{path}: {what}: dimensions {dims} need {n_bytes} bytes, found {size - header_len}")
    # Read one byte past the payload, to detect trailing data without reading the whole tail.
    payload = _read(f, n_bytes + 1, path)
    if len(payload) < n_bytes:
        raise ValueError(f"{path}: truncated IDX data: dimensions {dims} need {n_bytes} bytes, found {len(payload)}")
    if len(payload) > n_bytes:
        raise ValueError(f"{path}: unexpected bytes after the IDX data of dimensions {dims}")
    data = np.frombuffer(payload, dtype=dtype, count=count)
    return data.reshape(dims).astype(dtype.newbyteorder("="))
