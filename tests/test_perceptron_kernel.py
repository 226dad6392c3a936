"""perceptron_epoch against the Python-loop oracle (exact), convergence on AND/OR, and bad input."""
import numpy as np
import pytest

from cnn_core.kernels import perceptron_epoch, perceptron_greedy_epoch, perceptron_ovr_epoch
from cnn_core.kernels.perceptron import new_pocket
from oracles_perceptron import greedy_epoch_ref, ovr_epoch_ref, perceptron_epoch_ref

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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (40, 7, 3), (60, 16, 1), (35, 9, 4)])
@pytest.mark.parametrize("use_order", [False, True])
@pytest.mark.parametrize("pocket", [False, True])
def test_ovr_epoch_equals_python_loop_exactly(dtype, n, d, k, use_order, pocket):
    rng = np.random.default_rng(n * 100 + d + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    T = np.where(rng.random((n, k)) < 0.3, -1, 1)
    T[: n // 3] *= -1 if n > 3 else 1
    W, B = np.zeros((k, d), dtype=dtype), np.zeros(k, dtype=dtype)
    active = np.ones(k, dtype=np.uint8)
    state = new_pocket(k, d, n, dtype) if pocket else None
    total = 0
    for epoch in range(4):  # each pass resumes from the previous state, pocket included
        order = rng.permutation(n) if use_order else None
        ref = ovr_epoch_ref(X, T, W, B, 0.5, order, active, state)
        updates = perceptron_ovr_epoch(X, T, W, B, eta=0.5, order=order, active=active, pocket=state)
        np.testing.assert_array_equal(W, ref[0])
        np.testing.assert_array_equal(B, ref[1])
        np.testing.assert_array_equal(active, ref[2])
        assert updates.tolist() == ref[3]
        if pocket:
            for got, want in zip(state, ref[4]):
                np.testing.assert_array_equal(got, want)
        total += sum(ref[3])
    assert total > 0
    if pocket and n > 1:
        assert (state[2][:, 2] < n).all()  # every problem's pocket has fewer errors than w = 0


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("narrow", [False, True])
def test_ovr_pocket_threads_and_float32_counts_equal_python_loop(threads, narrow, num_threads):
    # the problems are shared out among the threads (every nt-th one each), and the pocket's error counts
    # read a float32 copy of X when given one: neither may change a bit of the result. X's values are
    # float32 numbers (k / 16 + noise rounded to float32), so the copy is exact.
    num_threads(threads)
    rng = np.random.default_rng(11)
    n, d, k = 70, 21, 5
    X = rng.normal(size=(n, d)).astype(np.float32).astype(np.float64)
    T = np.where(rng.random((n, k)) < 0.4, -1, 1)
    W, B = np.zeros((k, d)), np.zeros(k)
    active = np.ones(k, dtype=np.uint8)
    state = new_pocket(k, d, n)
    X32 = X.astype(np.float32) if narrow else None
    counted = 0
    for epoch in range(5):
        order = rng.permutation(n)
        ref = ovr_epoch_ref(X, T, W, B, 1.0, order, active, state)
        updates = perceptron_ovr_epoch(X, T, W, B, order=order, active=active, pocket=state, X32=X32)
        np.testing.assert_array_equal(W, ref[0])
        np.testing.assert_array_equal(B, ref[1])
        np.testing.assert_array_equal(active, ref[2])
        assert updates.tolist() == ref[3]
        for got, want in zip(state, ref[4]):
            np.testing.assert_array_equal(got, want)
        counted += int((state[2][:, 2] < n).sum())
    assert counted > 0  # pockets were filled, so errors were counted (through X32 when narrow)


def test_ovr_X32_must_equal_X():
    X = np.array([[0.1, 0.2], [0.3, -0.4]])
    T = np.array([[1], [-1]])
    W, B = np.zeros((1, 2)), np.zeros(1)
    with pytest.raises(ValueError, match="X32: expected X's values exactly"):
        perceptron_ovr_epoch(X, T, W, B, pocket=new_pocket(1, 2, 2), X32=X.astype(np.float32))
    with pytest.raises(ValueError, match="X32: expected a C-contiguous float32 array of shape"):
        perceptron_ovr_epoch(X, T, W, B, pocket=new_pocket(1, 2, 2), X32=X)
    with pytest.raises(TypeError, match="X32: expected a numpy.ndarray"):
        perceptron_ovr_epoch(X, T, W, B, X32=[[0.0, 0.0]])


def test_ovr_epoch_single_problem_is_perceptron_epoch():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 6))
    y = np.where(rng.random(50) < 0.5, -1, 1)
    w, W, B = np.zeros(6), np.zeros((1, 6)), np.zeros(1)
    order = rng.permutation(50)
    b, k = perceptron_epoch(X, y, w, 0.0, eta=0.7, order=order)
    updates = perceptron_ovr_epoch(X, y[:, None], W, B, eta=0.7, order=order)
    assert updates.tolist() == [k] and B[0] == b
    np.testing.assert_array_equal(W[0], w)


def test_pocket_holds_weights_with_fewer_errors():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3)) + 0.8 * np.repeat([[1.0], [-1.0]], 40, axis=0)
    T = np.repeat([[1], [-1]], 40, axis=0)
    W, B = np.zeros((1, 3)), np.zeros(1)
    pocket = new_pocket(1, 3, 80)
    for _ in range(5):
        perceptron_ovr_epoch(X, T, W, B, order=rng.permutation(80), pocket=pocket)
    PW, PB, state = pocket
    errors = int(np.sum(T[:, 0] * (X @ PW[0] + PB[0]) <= 0))
    assert errors == state[0, 2] < 40  # the recorded count is the pocket's true count


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["geometric", "functional"])
@pytest.mark.parametrize("n,d", [(1, 2), (30, 3), (45, 8), (25, 17)])
def test_greedy_epoch_equals_python_loop_exactly(dtype, loss, n, d):
    rng = np.random.default_rng(n * 10 + d)
    y = np.where(rng.random(n) < 0.5, -1, 1)
    X = (rng.normal(size=(n, d)) + 0.5 * y[:, None]).astype(dtype)
    w, b, total = np.zeros(d, dtype=dtype), 0.0, 0
    for _ in range(3):
        order = rng.permutation(n)
        w_ref, b_ref, k_ref = greedy_epoch_ref(X, y, w, b, 0.5, order, loss)
        b, k = perceptron_greedy_epoch(X, y, w, b, eta=0.5, order=order, loss=loss)
        assert k == k_ref and b == b_ref
        np.testing.assert_array_equal(w, w_ref)
        total += k
    assert total > 0


def test_greedy_geometric_rejects_shrinking_candidate():
    # w = (-3, 3), b = 0: margins -9, -3, -18, so L = 30 and the distances sum to 30 / ||w|| = 7.07. The
    # candidate from point 0 (eta 0.5: w = (-1.5, 3), b = -0.5) lowers L to 26 only by shrinking w: the
    # distances rise to 26 / 3.354 = 7.75. The literal rule keeps it, the deck's summary-slide loss does not.
    X = np.array([[-3.0, 0.0], [-2.0, -3.0], [2.0, -4.0]])
    y = np.array([-1, 1, 1])
    w0 = np.array([-3.0, 3.0])
    w_f, w_g = w0.copy(), w0.copy()
    _, kept_f = perceptron_greedy_epoch(X, y, w_f, 0.0, eta=0.5, order=np.array([0]), loss="functional")
    _, kept_g = perceptron_greedy_epoch(X, y, w_g, 0.0, eta=0.5, order=np.array([0]), loss="geometric")
    assert kept_f == 1 and w_f.tolist() == [-1.5, 3.0]
    assert kept_g == 0 and w_g.tolist() == w0.tolist()


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
    with pytest.raises(ValueError, match=r"w: expected a C-contiguous array, got a non-contiguous view"):
        perceptron_epoch(X, y, np.zeros(6)[::2], 0.0)


def test_w_read_only():
    X, y, w = _ok()
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"w: expected a writable array, got a read-only one"):
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
