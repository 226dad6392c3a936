"""IDX reader and MNIST loaders: real embedded digits, files written here, and every kind of corruption."""
import errno
import gzip
import os
import struct

import numpy as np
import pytest

from cnn_core.datasets import load_idx, load_mnist

# Label counts of the 10,000 MNIST test digits (shared/data/README.md), which the package embeds.
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path, array, code=0x08, gz=False):
    head = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    # Closed by `with`: from Python 3.12 a GzipFile buffers its writes, and one dropped unclosed leaves the file
    # empty.
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return data


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E)])
def test_load_idx_round_trip(tmp_path, gz, dtype, code):
    a = (np.random.default_rng(0).random((3, 4, 5)) * 100).astype(dtype)
    write_idx(tmp_path / "a.idx", a, code, gz)
    b = load_idx(tmp_path / "a.idx")
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_truncated_file(tmp_path):
    data = write_idx(tmp_path / "a", np.zeros((10, 3), np.uint8))
    (tmp_path / "a").write_bytes(data[:-1])
    with pytest.raises(ValueError, match=r"a: truncated IDX data.*need 30 bytes, found 29"):
        load_idx(tmp_path / "a")


def test_truncated_header(tmp_path):
    data = write_idx(tmp_path / "a", np.zeros((10, 3), np.uint8))
    (tmp_path / "a").write_bytes(data[:6])
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_idx(tmp_path / "a")


def test_trailing_bytes(tmp_path):
    data = write_idx(tmp_path / "a", np.zeros((10, 3), np.uint8))
    (tmp_path / "a").write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="unexpected bytes after"):
        load_idx(tmp_path / "a")


def test_foreign_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"a.png: not an IDX file \(magic 0x89504e47"):
        load_idx(tmp_path / "a.png")


def test_tiny_file(tmp_path):
    (tmp_path / "a").write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="only 2 bytes"):
        load_idx(tmp_path / "a")


def test_huge_claimed_dimensions_do_not_allocate(tmp_path):
    (tmp_path / "a").write_bytes(struct.pack(">HBBIII", 0, 0x08, 3, 2**31, 2**31, 2**31) + bytes(10))
    with pytest.raises(ValueError, match="truncated IDX data"):
        load_idx(tmp_path / "a")


def test_corrupt_gzip(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((100, 30), np.uint8), gz=True)
    data = bytearray((tmp_path / "a.gz").read_bytes())
    data[20:40] = b"\xff" * 20
    (tmp_path / "a.gz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="a.gz"):
        load_idx(tmp_path / "a.gz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_idx(tmp_path / "nope")


def test_embedded_digits_are_real_mnist():
    X_train, y_train = load_mnist()
    X_test, y_test = load_mnist(split="test")
    assert X_train.shape == (8000, 1, 28, 28) and X_test.shape == (2000, 1, 28, 28)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    assert counts.tolist() == T10K_COUNTS
    assert y_train[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_load_mnist_from_directory(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)  # raw and gzip may be mixed
    X, y = load_mnist(tmp_path, split="test")
    np.testing.assert_array_equal(X[:, 0], imgs.astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_mismatched_counts(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((7, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(6, np.uint8))
    with pytest.raises(ValueError, match="expected 7 labels"):
        load_mnist(tmp_path)


def test_load_mnist_label_out_of_range(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 12], np.uint8))
    with pytest.raises(ValueError, match="expected labels 0-9, got a 12"):
        load_mnist(tmp_path)


def test_load_mnist_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split: expected one of 'train', 'test', got 'val'"):
        load_mnist(split="val")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
def test_load_idx_refuses_special_files_without_blocking(tmp_path):
    """A FIFO would block open() until a writer came and /dev/zero never ends: both are refused up front."""
    os.mkfifo(tmp_path / "fifo")
    for special, kind in ((tmp_path / "fifo", "a FIFO"), ("/dev/zero", "a device")):
        with pytest.raises(OSError, match=kind) as info:
            load_idx(special)
        assert info.value.errno == errno.EINVAL and info.value.filename == str(special)


def test_load_idx_missing_file_and_directory_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_idx(tmp_path / "nope")
    assert info.value.filename == str(tmp_path / "nope")
    with pytest.raises(IsADirectoryError):
        load_idx(tmp_path)
