"""perceptron_epoch against the Python-loop oracle (exact), convergence on AND/OR, and bad input."""
import numpy as np
import pytest

from cnn_core.kernels import perceptron_epoch
from oracles_perceptron import perceptron_epoch_ref

DTYPES = [np.float32, np.float64]


def _data(rng, n, d, dtype):
    X = rng.normal(size=(n, d)).astype(dtype)
    y = np.where(rng.random(n) < 0.5, -1, 1)  # random labels: not separable, so many updates
    return X, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(1, 1), (40, 7), (60, 30), (25, 1), (30, 8), (20, 16), (50, 61)])
@pytest.mark.parametrize("use_order", [False, True])
def test_epoch_equals_python_loop_exactly(dtype, n, d, use_order):
    rng = np.random.default_rng(n * 100 + d)
    X, y = _data(rng, n, d, dtype)
    w = rng.normal(size=d).astype(dtype)
    b, eta = float(rng.normal()), 0.37
    order = rng.integers(0, n, size=2 * n) if use_order else None  # repeats allowed
    total = 0
    for _ in range(3):  # several epochs: each starts from the previous state
        w_ref, b_ref, k_ref = perceptron_epoch_ref(X, y, w, b, eta, order)
        b, k = perceptron_epoch(X, y, w, b, eta=eta, order=order)
        assert k == k_ref
        assert b == b_ref
        np.testing.assert_array_equal(w, w_ref)
        total += k
    assert total > 0  # the comparison exercised updates, not just checks


def test_float_labels_and_non_contiguous_X():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(30, 12))[:, ::2]
    y = np.where(rng.random(30) < 0.5, -1.0, 1.0)
    w = np.zeros(6)
    w_ref, b_ref, k_ref = perceptron_epoch_ref(np.ascontiguousarray(X), y, w, 0.0)
    b, k = perceptron_epoch(X, y, w, 0.0)
    assert (b, k) == (b_ref, k_ref)
    np.testing.assert_array_equal(w, w_ref)


def test_checks_use_weights_updated_within_the_epoch():
    # The same positive sample twice: the first visit updates w, so the second visit must see
    # y*(w.x + b) = 1*(1 + 1) > 0 and not update. A batch (vectorized) pass would update twice.
    X = np.array([[1.0]])
    w = np.zeros(1)
    b, k = perceptron_epoch(X, np.array([1]), w, 0.0, order=np.array([0, 0]))
    assert k == 1 and b == 1.0 and w[0] == 1.0


def test_boundary_counts_as_mistake():
    # y*(w.x + b) == 0 exactly is a mistake (<= 0), as in the deck.
    w = np.array([1.0, -1.0])
    b, k = perceptron_epoch(np.array([[2.0, 2.0]]), np.array([1]), w, 0.0, eta=0.5)
    assert k == 1 and b == 0.5
    np.testing.assert_array_equal(w, [2.0, 0.0])


def test_empty_data_and_empty_order():
    w = np.ones(3)
    assert perceptron_epoch(np.zeros((0, 3)), np.zeros(0), w, 0.25) == (0.25, 0)
    assert perceptron_epoch(np.ones((2, 3)), np.array([1, -1]), w, 0.25,
                            order=np.zeros(0, dtype=np.int64)) == (0.25, 0)
    np.testing.assert_array_equal(w, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gate", ["and", "or"])
def test_converges_on_logic_gates(dtype, gate):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([-1, -1, -1, 1]) if gate == "and" else np.array([-1, 1, 1, 1])
    w, b = np.zeros(2, dtype=dtype), 0.0
    for epoch in range(1, 21):
        b, k = perceptron_epoch(X, y, w, b)
        if k == 0:
            break
    assert k == 0, f"no convergence in {epoch} epochs"
    assert epoch <= 12
    np.testing.assert_array_equal(np.sign(X @ w + b), y)


# ---- bad input: one test per case ----

def _ok():
    return np.ones((4, 3)), np.array([1, -1, 1, -1]), np.zeros(3)


def test_X_not_2d():
    _, y, w = _ok()
    with pytest.raises(ValueError, match=r"X: expected a 2-D array, got shape \(4,\)"):
        perceptron_epoch(np.ones(4), y, w, 0.0)


def test_X_no_features():
    with pytest.raises(ValueError, match=r"X: expected at least one feature column, got shape \(4, 0\)"):
        perceptron_epoch(np.ones((4, 0)), np.array([1, -1, 1, -1]), np.zeros(0), 0.0)


def test_X_integer():
    _, y, w = _ok()
    with pytest.raises(TypeError, match=r"X: expected dtype float32 or float64, got int64"):
        perceptron_epoch(np.ones((4, 3), dtype=np.int64), y, w, 0.0)


def test_X_not_array():
    _, y, w = _ok()
    with pytest.raises(TypeError, match=r"X: expected a numpy.ndarray, got list"):
        perceptron_epoch([[1.0, 2.0, 3.0]] * 4, y, w, 0.0)


def test_X_nan():
    X, y, w = _ok()
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values"):
        perceptron_epoch(X, y, w, 0.0)


def test_y_wrong_length():
    X, _, w = _ok()
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\).*got \(3,\)"):
        perceptron_epoch(X, np.array([1, -1, 1]), w, 0.0)


def test_y_2d():
    X, _, w = _ok()
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\).*got \(4, 1\)"):
        perceptron_epoch(X, np.ones((4, 1)), w, 0.0)


def test_y_zero_one_labels():
    X, _, w = _ok()
    with pytest.raises(ValueError, match=r"y: expected labels -1 or \+1 only, got \[0\]"):
        perceptron_epoch(X, np.array([0, 1, 1, 0]), w, 0.0)


def test_y_nan():
    X, _, w = _ok()
    with pytest.raises(ValueError, match=r"y: expected labels -1 or \+1 only"):
        perceptron_epoch(X, np.array([1.0, np.nan, 1.0, -1.0]), w, 0.0)


def test_y_non_numeric():
    X, _, w = _ok()
    with pytest.raises(TypeError, match=r"y: expected an integer or float dtype, got <U1"):
        perceptron_epoch(X, np.array(list("abab")), w, 0.0)


def test_y_bool():
    X, _, w = _ok()
    with pytest.raises(TypeError, match=r"y: expected an integer or float dtype, got bool"):
        perceptron_epoch(X, np.array([True, False, True, False]), w, 0.0)


def test_w_dtype_mismatch():
    X, y, _ = _ok()
    with pytest.raises(TypeError, match=r"w: expected dtype float64 \(X's\), got float32"):
        perceptron_epoch(X, y, np.zeros(3, np.float32), 0.0)


def test_w_integer():
    X, y, _ = _ok()
    with pytest.raises(TypeError, match=r"w: expected dtype float64 \(X's\), got int64"):
        perceptron_epoch(X, y, np.zeros(3, np.int64), 0.0)


def test_w_wrong_length():
    X, y, _ = _ok()
    with pytest.raises(ValueError, match=r"w: expected shape \(3,\).*got \(4,\)"):
        perceptron_epoch(X, y, np.zeros(4), 0.0)


def test_w_not_contiguous():
    X, y, _ = _ok()
    with pytest.raises(ValueError, match=r"w: expected a C-contiguous writable array"):
        perceptron_epoch(X, y, np.zeros(6)[::2], 0.0)


def test_w_read_only():
    X, y, w = _ok()
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"w: expected a C-contiguous writable array"):
        perceptron_epoch(X, y, w, 0.0)


def test_w_nan():
    X, y, w = _ok()
    w[0] = np.nan
    with pytest.raises(ValueError, match=r"w: expected finite values"):
        perceptron_epoch(X, y, w, 0.0)


def test_w_not_array():
    X, y, _ = _ok()
    with pytest.raises(TypeError, match=r"w: expected a numpy.ndarray, got list"):
        perceptron_epoch(X, y, [0.0, 0.0, 0.0], 0.0)


def test_b_not_finite():
    X, y, w = _ok()
    with pytest.raises(ValueError, match=r"b: expected a finite number, got nan"):
        perceptron_epoch(X, y, w, float("nan"))


def test_b_not_a_number():
    X, y, w = _ok()
    with pytest.raises(TypeError, match=r"b: expected a real number, got '0' \(str\)"):
        perceptron_epoch(X, y, w, "0")


@pytest.mark.parametrize("eta", [0.0, -1.0, float("inf"), float("nan")])
def test_eta_not_positive_finite(eta):
    X, y, w = _ok()
    with pytest.raises(ValueError, match=r"eta: expected a finite number > 0"):
        perceptron_epoch(X, y, w, 0.0, eta=eta)


@pytest.mark.parametrize("order, exc, match", [
    (np.array([0, 4]), ValueError, r"order: expected indices in 0\.\.3, got values in 0\.\.4"),
    (np.array([2, -1]), ValueError, r"order: expected indices in 0\.\.3, got values in -1\.\.2"),
    (np.array([0.0, 1.0]), TypeError, r"order: expected an integer dtype, got float64"),
    (np.array([[0, 1], [2, 3]]), ValueError, r"order: expected a 1-D array, got shape \(2, 2\)"),
])
def test_bad_order(order, exc, match):
    X, y, w = _ok()
    with pytest.raises(exc, match=match):
        perceptron_epoch(X, y, w, 0.0, order=order)


def test_failed_validation_leaves_w_untouched():
    X, y, w = _ok()
    with pytest.raises(ValueError):
        perceptron_epoch(X, y, w, 0.0, order=np.array([0, 9]))
    np.testing.assert_array_equal(w, 0.0)
