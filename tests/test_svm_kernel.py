"""svm_dual_cd and svm_smo against the Python-loop oracles of tests/oracles_svm.py, their stopping rules, and
bad input."""
import numpy as np
import pytest

from cnn_core.kernels import _svm, svm_dual_cd, svm_smo
from oracles_svm import dual_cd_ref, max_violation, smo_select_ref, smo_steps_ref, smo_update_ref

DTYPES = [np.float32, np.float64]


def _problem(rng, n, d, dtype, shift=0.7):
    y = np.where(rng.random(n) < 0.5, -1, 1)
    X = (rng.normal(size=(n, d)) + shift * y[:, None]).astype(dtype)  # overlapping classes: bounded alphas too
    return X, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(1, 3), (7, 1), (40, 9), (60, 16), (33, 21)])
@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
def test_dual_cd_equals_python_loop(dtype, n, d, C):
    rng = np.random.default_rng(n * 31 + d)
    X, y = _problem(rng, n, d, dtype)
    alpha, w, bias = np.zeros(n), np.zeros(d, dtype=dtype), np.zeros(2)
    rho = 0.3
    for call in range(3):  # several calls: each resumes from the state the previous one left
        ref = dual_cd_ref(X, y, alpha, w, bias, C, rho, 1e-3, 4, 1234 + call)
        epochs, converged = svm_dual_cd(X, y, alpha, w, bias, C, rho, eps=1e-3, max_epochs=4, seed=1234 + call)
        assert (epochs, converged) == ref[3:]
        # same operations in the same order: equal up to the last bit
        np.testing.assert_array_equal(alpha, ref[0])
        np.testing.assert_array_equal(w, ref[1])
        np.testing.assert_array_equal(bias, ref[2])
    assert alpha.any()
    np.testing.assert_allclose(w, (alpha * y) @ X.astype(np.float64), rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(2, 2), (12, 3), (50, 8), (90, 20)])
@pytest.mark.parametrize("C", [0.1, 1.0, 100.0])
def test_smo_steps_equal_python_loop(dtype, n, d, C):
    # fewer steps than n: the kernel's shrinking (every min(n, 1000) steps) has not started yet
    rng = np.random.default_rng(n * 7 + d)
    X, y = _problem(rng, n, d, np.float64)
    K = (X @ X.T).astype(dtype)
    alpha, G = np.zeros(n), -np.ones(n)
    steps = max(1, n - 1)
    a_ref, G_ref, done = smo_steps_ref(K.astype(np.float64), y, alpha, G, C, steps)
    k, converged = svm_smo(K, y, alpha, G, C, eps=1e-12, max_steps=steps)
    assert k == done
    np.testing.assert_allclose(alpha, a_ref, rtol=1e-10, atol=1e-12 * C)
    np.testing.assert_allclose(G, G_ref, rtol=1e-9, atol=1e-9)
    assert abs(alpha @ y) <= 1e-9 * max(1.0, alpha.sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_smo_converges_to_kkt_point(dtype, C):
    # run to the end (shrinking, unshrinking, gradient rebuilt): the answer must satisfy the KKT conditions
    # within eps, with G the true gradient and alpha feasible
    rng = np.random.default_rng(3)
    n = 1500
    X, y = _problem(rng, n, 10, np.float64, shift=0.5)
    K = (X @ X.T).astype(dtype)
    alpha, G = np.zeros(n), -np.ones(n)
    steps, converged = svm_smo(K, y, alpha, G, C, eps=1e-4)
    assert converged
    assert steps > n or C < 0.1  # long enough for shrinking to have run (C = 0.01 converges in ~250 steps)
    np.testing.assert_allclose(G, y * (K.astype(np.float64) @ (alpha * y)) - 1.0, rtol=1e-9, atol=1e-9 * C * n)
    assert np.all((alpha >= 0) & (alpha <= C)) and abs(alpha @ y) <= 1e-9 * alpha.sum()
    assert max_violation(y, alpha, G, C) < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [0.05, 1.0, 30.0])
def test_smo_chunks_with_kept_shrinking_reach_kkt_point(dtype, C):
    # the model's use: calls of a few hundred steps that keep the shrinking (perm, state) and leave G stale
    # on the shrunk slots (exact=False); each call copies the active block of K when few slots are left.
    # Active slots' G must stay exact between calls, and the end must be a KKT point with the true G.
    rng = np.random.default_rng(8)
    n = 1200
    X, y = _problem(rng, n, 6, np.float64, shift=0.6)
    K = (X @ X.T).astype(dtype)
    K64 = K.astype(np.float64)
    kd = np.diagonal(K).astype(np.float64)
    y8 = y.astype(np.int8)
    alpha, G = np.zeros(n), -np.ones(n)
    perm, state = _svm.smo_start(n)
    shrunk_seen = False
    for call in range(1000):
        steps, converged = _svm.smo(K, kd, y8, alpha, G, C, 1e-5, 300, perm, state, False)
        m = int(state[0])
        shrunk_seen |= m < n // 2  # the block copy (at most half the slots active) has been in use
        active = perm[:m]
        np.testing.assert_allclose(G[active], y[active] * (K64[active] @ (alpha * y)) - 1.0, rtol=1e-9,
                                   atol=1e-9 * C * n)
        assert sorted(perm.tolist()) == list(range(n))
        if converged:
            break
    assert converged and (shrunk_seen or C < 0.1)
    assert int(state[0]) == n  # convergence is only declared once every slot is back
    np.testing.assert_allclose(G, y * (K64 @ (alpha * y)) - 1.0, rtol=1e-9, atol=1e-9 * C * n)
    assert np.all((alpha >= 0) & (alpha <= C)) and abs(alpha @ y) <= 1e-9 * alpha.sum()
    assert max_violation(y, alpha, G, C) < 1e-5


def test_smo_max_steps_and_resume():
    rng = np.random.default_rng(5)
    X, y = _problem(rng, 80, 5, np.float64)
    K = X @ X.T
    a1, G1 = np.zeros(80), -np.ones(80)
    steps, converged = svm_smo(K, y, a1, G1, 1.0, eps=1e-6, max_steps=10)
    assert (steps, converged) == (10, False)
    svm_smo(K, y, a1, G1, 1.0, eps=1e-6)
    assert max_violation(y, a1, G1, 1.0) < 1e-6


def test_dual_cd_converged_flag_means_small_projected_gradient():
    rng = np.random.default_rng(8)
    X, y = _problem(rng, 200, 6, np.float64)
    alpha, w, bias = np.zeros(200), np.zeros(6), np.zeros(2)
    epochs, converged = svm_dual_cd(X, y, alpha, w, bias, 1.0, 0.5, eps=1e-3, max_epochs=100000)
    assert converged and epochs < 100000
    G = y * (X @ w + bias[0] + 0.5 * bias[1]) - 1.0
    PG = np.where(alpha == 0, np.minimum(G, 0), np.where(alpha == 1.0, np.maximum(G, 0), G))
    # the last epoch's spread was <= eps before the center moved by rho * s; s is tiny at convergence
    assert PG.max() - PG.min() <= 1e-3 + 2 * 0.5 * abs(bias[1]) + 1e-12


# ---- SMO's two passes (src_c/svm.c) at every instruction-set level ----

PASS_SIZES = [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1003]


def _pass_data(rng, m, n, dtype, ties):
    # ties: small integers everywhere, so that many slots share the optimum and the last one must win
    ix = rng.permutation(n)[:m].astype(np.intc)
    if ties:
        Ki, Kj = (rng.integers(-2, 3, n).astype(dtype) for _ in range(2))
        g = rng.integers(-3, 4, m).astype(np.float64)
        q = rng.integers(0, 4, m).astype(np.float64)
    else:
        Ki, Kj = (rng.normal(size=n).astype(dtype) for _ in range(2))
        g, q = rng.normal(size=m), rng.random(m) + 0.5
    mask = np.where(rng.random(m) < 0.3, -np.inf, 0.0)
    return ix, Ki, Kj, g, q, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", PASS_SIZES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("gather", [True, False])
def test_smo_update_pass_equals_numpy(simd, dtype, m, ties, gather):
    # gather: slots read K through ix (a permutation); else slot s reads entry s (plain loads)
    rng = np.random.default_rng(m * 5 + ties)
    ix, Ki, Kj, g, _, up = _pass_data(rng, m, m + 13, dtype, ties)
    ix = ix if gather else np.arange(m, dtype=np.intc)
    di, dj = (2.0, -1.0) if ties else (rng.normal(), rng.normal())
    g_ref, i_ref, top_ref = smo_update_ref(Ki, Kj, ix, di, dj, g, up)
    i, top = _svm.smo_update_pass(Ki, Kj, ix if gather else None, di, dj, g, up)
    # the scalar loop's operations in its order (no fused multiply-add): equal bits
    np.testing.assert_array_equal(g, g_ref)
    assert (i, top) == (i_ref, top_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [5, 17, 100])
def test_smo_update_pass_no_member(simd, dtype, m):
    # I_up empty: every value is -inf, so there is no i
    rng = np.random.default_rng(m)
    ix, Ki, Kj, g, _, _ = _pass_data(rng, m, m, dtype, False)
    assert _svm.smo_update_pass(Ki, Kj, ix, 0.5, 0.25, g, np.full(m, -np.inf)) == (-1, -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", PASS_SIZES)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("gather", [True, False])
def test_smo_select_pass_equals_numpy(simd, dtype, m, ties, gather):
    rng = np.random.default_rng(m * 3 + ties)
    ix, Ki, _, g, q, low = _pass_data(rng, m, m + 5, dtype, ties)
    ix = ix if gather else np.arange(m, dtype=np.intc)
    Kii, Gmax = (2.0, 1.0) if ties else (1.5, 0.3)
    # some curvatures at or below zero (the tau floor)
    if m:
        q[rng.random(m) < 0.1] = -10.0
    got = _svm.smo_select_pass(Ki, ix if gather else None, Kii, Gmax, g, low, q)
    assert got == smo_select_ref(Ki, ix, Kii, Gmax, g, low, q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_smo_select_pass_no_candidate(simd, dtype):
    # no slot of I_low with Gmax + y G > 0: no j, but Gmax2 still the max over I_low
    rng = np.random.default_rng(1)
    m = 37
    ix, Ki, _, _, q, _ = _pass_data(rng, m, m, dtype, False)
    g = np.full(m, 5.0)
    g[7] = 4.0
    assert _svm.smo_select_pass(Ki, ix, 1.0, -10.0, g, np.zeros(m), q) == (-1, -4.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_smo_same_bits_at_every_level(use_simd, dtype):
    # a whole solve (shrinking, the block copy, unshrinking) follows the same path at every level
    rng = np.random.default_rng(4)
    n = 1500
    X, y = _problem(rng, n, 10, np.float64, shift=0.5)
    K = (X @ X.T).astype(dtype)
    results = {}
    for path in ("baseline", "avx2", "avx512"):
        try:
            use_simd(path)
        except pytest.skip.Exception:  # a level this CPU lacks
            continue
        alpha, G = np.zeros(n), -np.ones(n)
        results[path] = (svm_smo(K, y, alpha, G, 1.0, eps=1e-5), alpha, G)
    assert len(results) >= 2
    first = results["baseline"]
    for path, (steps, alpha, G) in results.items():
        assert steps == first[0], path
        np.testing.assert_array_equal(alpha, first[1])
        np.testing.assert_array_equal(G, first[2])


@pytest.mark.parametrize("n,d", [(1, 1), (5, 7), (40, 8), (33, 17), (200, 64)])
def test_margins_and_combine_equal_numpy(n, d):
    # the duality-gap check's two products, compiled (one thread, the GIL released)
    rng = np.random.default_rng(n + d)
    X, w = rng.normal(size=(n, d)), rng.normal(size=d)
    z = np.full(n, np.nan)
    _svm.margins(X, w, z)
    np.testing.assert_allclose(z, X @ w, rtol=1e-12, atol=1e-12 * np.abs(X).sum(axis=1).max())
    v = np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n))  # zeros skipped
    out = np.full(d, np.nan)
    _svm.combine(X, v, out)
    np.testing.assert_allclose(out, X.T @ v, rtol=1e-12, atol=1e-12 * np.abs(X).sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,block", [(1, 64), (63, 64), (64, 64), (200, 64), (333, 128), (130, 1024)])
def test_gram_into_equals_numpy(num_threads, dtype, n, block):
    # lower blocks by the GEMM, the rest mirrored: X X^T, exactly symmetric, the same at 1 and 2 threads
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 9)).astype(dtype)
    results = []
    for threads in (1, 2):
        num_threads(threads)
        K = np.full((n, n), np.nan, dtype=dtype)
        _svm.gram_into(X, K, block)
        results.append(K)
    K = results[0]
    np.testing.assert_array_equal(K, K.T)
    np.testing.assert_array_equal(results[1], K)
    ref = X.astype(np.float64) @ X.T.astype(np.float64)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(K, ref, rtol=0, atol=20 * eps * (np.abs(X) @ np.abs(X).T).max())


# ---- bad input ----

def test_smo_infeasible_alpha():
    with pytest.raises(ValueError, match=r"alpha: expected sum_i y_i alpha_i = 0"):
        svm_smo(np.eye(2), np.array([1, 1]), np.array([0.5, 0.0]), -np.ones(2), 1.0)


def test_smo_alpha_out_of_box():
    with pytest.raises(ValueError, match=r"alpha: expected values in \[0, C\]"):
        svm_smo(np.eye(2), np.array([1, -1]), np.array([2.0, 2.0]), -np.ones(2), 1.0)


def test_smo_K_not_square():
    with pytest.raises(ValueError, match=r"K: expected a square matrix"):
        svm_smo(np.ones((2, 3)), np.array([1, -1]), np.zeros(2), -np.ones(2), 1.0)


def test_smo_bad_labels():
    with pytest.raises(ValueError, match=r"y: expected labels -1 or \+1 only"):
        svm_smo(np.eye(2), np.array([0, 1]), np.zeros(2), -np.ones(2), 1.0)


def test_dual_cd_w_dtype():
    with pytest.raises(TypeError, match=r"w: expected dtype float64"):
        svm_dual_cd(np.ones((2, 2)), np.array([1, -1]), np.zeros(2), np.zeros(2, np.float32), np.zeros(2), 1.0, 1.0)


def test_dual_cd_bad_C():
    with pytest.raises(ValueError, match=r"C: expected"):
        svm_dual_cd(np.ones((2, 2)), np.array([1, -1]), np.zeros(2), np.zeros(2), np.zeros(2), 0.0, 1.0)


def test_dual_cd_nan_X():
    X = np.ones((2, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite"):
        svm_dual_cd(X, np.array([1, -1]), np.zeros(2), np.zeros(2), np.zeros(2), 1.0, 1.0)
