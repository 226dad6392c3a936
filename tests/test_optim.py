"""Optimizers, schedules and clipping against updates written out from the formulas in plain Python."""
import math
import platform

import numpy as np
import pytest

from cnn_core.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR, clip_grad_norm


class P:
    """Minimal stand-in for cnn_core.nn.Parameter: the optimizers only need .data and .grad."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = np.zeros_like(self.data)


# Gradients fed at each step: a deterministic sequence with sign changes, per element.
def grad_at(step, n):
    return [math.sin(1.3 * step + 0.7 * k) + 0.1 * k for k in range(n)]


TOL = {np.float64: 1e-12, np.float32: 2e-6}


def run(opt_factory, dtype, steps=6):
    p0 = [0.5, -1.25, 2.0, 0.0]
    p = P(np.array(p0, dtype=dtype))
    opt = opt_factory([p])
    for t in range(steps):
        p.grad[...] = np.array(grad_at(t, len(p0)), dtype=dtype)
        grad_before = p.grad.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad, grad_before)  # .grad is never modified
    return p0, p.data


def sgd_ref(p0, steps, lr, momentum=0.0, wd=0.0, nesterov=False):
    out = []
    for k, p in enumerate(p0):
        buf = None
        for t in range(steps):
            g = grad_at(t, len(p0))[k] + wd * p
            if momentum:
                buf = g if buf is None else momentum * buf + g
                g = g + momentum * buf if nesterov else buf
            p = p - lr * g
        out.append(p)
    return out


def adam_ref(p0, steps, lr, b1, b2, eps, wd=0.0):
    out = []
    for k, p in enumerate(p0):
        m = v = 0.0
        for t in range(1, steps + 1):
            g = grad_at(t - 1, len(p0))[k] + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [
    {}, {"momentum": 0.9}, {"momentum": 0.5, "nesterov": True}, {"weight_decay": 0.1},
    {"momentum": 0.9, "weight_decay": 0.05}, {"momentum": 0.8, "weight_decay": 0.2, "nesterov": True},
])
def test_sgd_matches_formulas(dtype, kw):
    p0, got = run(lambda ps: SGD(ps, lr=0.1, **kw), dtype)
    assert got.dtype == dtype
    want = sgd_ref(p0, 6, 0.1, kw.get("momentum", 0.0), kw.get("weight_decay", 0.0), kw.get("nesterov", False))
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def _contiguous_and_strided(values):
    """Two parameters holding `values`: one contiguous (the optimizers' compiled pass), one a strided view
    (NumPy's ufuncs)."""
    fast = P(values.copy())
    slow = P(np.zeros((values.shape[0], 2 * values.shape[1]), values.dtype))
    slow.data = slow.data[:, ::2]
    slow.data[...] = values
    slow.grad = np.zeros_like(values)
    return fast, slow


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [
    {}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.3}, {"momentum": 0.5, "nesterov": True},
    {"weight_decay": 0.1}, {"momentum": 0.8, "weight_decay": 0.2, "nesterov": True},
    {"momentum": 0.7, "dampening": 0.5, "weight_decay": 0.05},
])
@pytest.mark.parametrize("shape", [(5, 13), (37, 41)])
def test_sgd_compiled_step_equals_ufuncs_bitwise(dtype, kw, shape, simd):
    # Contiguous parameters take the compiled pass (kernels/_optim.pyx, src_c/optim.c's loop of each SIMD
    # level), a strided view of the same values takes NumPy's ufuncs: the two must round identically, step
    # after step (the momentum buffer's first step included), on odd sizes that leave a vector remainder
    # after full (unrolled) vector blocks.
    rng = np.random.default_rng(3)
    values = rng.standard_normal(shape).astype(dtype)
    fast, slow = _contiguous_and_strided(values)
    opts = [SGD([fast], lr=0.07, **kw), SGD([slow], lr=0.07, **kw)]
    for t in range(5):
        g = rng.standard_normal(values.shape).astype(dtype)
        for q, opt in zip((fast, slow), opts):
            q.grad[...] = g
            opt.step()
        np.testing.assert_array_equal(fast.data, slow.data, err_msg=f"step {t}")
    assert not np.array_equal(fast.data, values)
    if kw.get("momentum"):
        np.testing.assert_array_equal(opts[0].state[fast]["momentum_buffer"], opts[1].state[slow]["momentum_buffer"])


def _flush(x: np.ndarray) -> np.ndarray:
    """x with its subnormal values replaced by zeros of their sign (what MXCSR's DAZ reads and FTZ writes)."""
    return np.where(np.abs(x) < np.finfo(x.dtype).tiny, np.copysign(np.zeros_like(x), x), x)


def _flushed_sgd(p, g, buf, lr, mu, damp1, nesterov):
    """One SGD step with momentum (no weight decay), src_c/optim.c's sequence and rounding, every operand
    and every result flushed: the oracle of the compiled step under DAZ and FTZ."""
    T = p.dtype.type
    p, g, buf = _flush(p), _flush(g), _flush(buf)
    buf = _flush(_flush(buf * T(mu)) + (g if damp1 is None else _flush(g * T(damp1))))
    step = _flush(g + _flush(buf * T(mu))) if nesterov else buf
    return _flush(p - _flush(step * T(lr))), buf


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="DAZ/FTZ are set on x86 only")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.8, nesterov=True),
                                dict(momentum=0.7, dampening=0.25)], ids=["momentum", "nesterov", "dampening"])
def test_sgd_compiled_step_takes_subnormals_as_zero(dtype, kw, simd, num_threads):
    """SGD's compiled step runs with subnormal operands and results taken as zero (src_c/optim.c, MXCSR's
    DAZ and FTZ): a momentum buffer decaying where the gradient stays zero (a dead unit's rows) goes to zero
    instead of through the subnormals, step for step as an oracle that flushes every operand and result;
    the parameters keep the bits of NumPy's unflushed ufuncs (the updates from subnormal entries are below
    half an ulp of them); on one thread and two, every level; and the threads' modes are restored after it
    (NumPy's arithmetic here, and the GEMM on the pool's threads, still make subnormals)."""
    from cnn_core.kernels.gemm import gemm

    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(8)
    values = rng.standard_normal((5, 3 * 2 ** 15 // 5 + 1)).astype(dtype)   # a team of 2 on two threads
    for threads in (1, 2):
        num_threads(threads)
        fast, slow = _contiguous_and_strided(values)
        opts = [SGD([fast], lr=0.07, **kw), SGD([slow], lr=0.07, **kw)]
        g = rng.standard_normal(values.shape).astype(dtype)
        g[1:3] = 0                                        # two dead rows
        for q, opt in zip((fast, slow), opts):
            q.grad[...] = g
            opt.step()                                    # the first step: buffer = g
            opt.state[q]["momentum_buffer"][1:3] = tiny * 2 ** 4 * rng.random((2, values.shape[1]))
        buf = opts[0].state[fast]["momentum_buffer"].copy()
        p = fast.data.copy()
        damp1 = 1 - kw["dampening"] if "dampening" in kw else None
        for t in range(400):                              # until NumPy's buffer is subnormal in the dead rows
            if np.abs(opts[1].state[slow]["momentum_buffer"][1:3]).max() < tiny:
                break
            for q, opt in zip((fast, slow), opts):
                opt.step()
            p, buf = _flushed_sgd(p, g, buf, 0.07, kw["momentum"], damp1, kw.get("nesterov", False))
            bits = np.uint32 if dtype == np.float32 else np.uint64
            np.testing.assert_array_equal(opts[0].state[fast]["momentum_buffer"].view(bits), buf.view(bits),
                                          err_msg=f"step {t}")
            np.testing.assert_array_equal(fast.data.view(bits), p.view(bits), err_msg=f"step {t}")
            np.testing.assert_array_equal(fast.data, slow.data, err_msg=f"step {t}")
        unflushed = opts[1].state[slow]["momentum_buffer"][1:3]
        assert 3 < t < 400 and (opts[0].state[fast]["momentum_buffer"][1:3] == 0).all()
        assert np.count_nonzero((unflushed != 0) & (np.abs(unflushed) < tiny)) > 1000
        assert dtype(tiny) * dtype(0.25) != 0                # NumPy, on this thread
        a = np.full((64, 64), np.sqrt(tiny) * 2 ** -8, dtype)
        assert (gemm(a, a) != 0).all()                       # the pool's threads (2 threads: a team)


def _adam_unfloored(p, g, m, v, vmax, lr, beta1, beta2, eps, t):
    """One step of Adam's ufunc sequence (cnn_core.optim.Adam._step_one) without the moments' floors."""
    step_size, bias2_sqrt = lr / (1.0 - beta1 ** t), math.sqrt(1.0 - beta2 ** t)
    m[...] = m * beta1 + g * (1.0 - beta1)
    v[...] = v * beta2 + g * g * (1.0 - beta2)
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
    p[...] = p - m / (np.sqrt(v if vmax is None else vmax) / bias2_sqrt + eps) * step_size


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiny_eps", [False, True], ids=["eps 1e-8", "tiny eps"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_stores_subnormal_moments_as_zero(dtype, tiny_eps, amsgrad, simd):
    """Adam's moments below the smallest normal number are stored as zero (src_c/optim.c): m always, v and
    v_max only where eps is large enough for the denominator to keep its bits (1e-8; not 1e-30 in float32,
    1e-300 in float64, where v keeps its subnormals). Against the unfloored ufunc sequence: the moments equal
    it with its subnormals zeroed, the parameters bit for bit; the compiled pass and NumPy's ufuncs (a
    strided view) agree."""
    tiny = np.finfo(dtype).tiny
    eps = (1e-30 if dtype == np.float32 else 1e-300) if tiny_eps else 1e-8
    rng = np.random.default_rng(9)
    values = rng.standard_normal((37, 41)).astype(dtype)
    g = rng.standard_normal(values.shape).astype(dtype)
    g[1:3] = 0                                            # two dead rows
    fast, slow = _contiguous_and_strided(values)
    opts = [Adam([fast], lr=0.01, eps=eps, amsgrad=amsgrad), Adam([slow], lr=0.01, eps=eps, amsgrad=amsgrad)]
    for q, opt in zip((fast, slow), opts):
        q.grad[...] = g
        opt.step()
    names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    start = {k: opts[0].state[fast][k].copy() for k in names}
    start["exp_avg"][1:3] = tiny * 2 ** 4 * rng.random((2, 41))        # m decays into the subnormals
    start["exp_avg_sq"][1:3] = tiny * 0.5 * rng.random((2, 41))        # v is there already
    if amsgrad:
        start["max_exp_avg_sq"][1:3] = start["exp_avg_sq"][1:3]
    for q, opt in zip((fast, slow), opts):
        for k in names:
            opt.state[q][k][...] = start[k]
    ref = [fast.data.copy()] + [start[k].copy() for k in names] + ([None] if not amsgrad else [])
    for t in range(2, 40):
        for q, opt in zip((fast, slow), opts):
            opt.step()
        _adam_unfloored(ref[0], g, ref[1], ref[2], ref[3], 0.01, 0.9, 0.999, eps, t)
        bits = np.uint32 if dtype == np.float32 else np.uint64
        np.testing.assert_array_equal(fast.data.view(bits), ref[0].view(bits), err_msg=f"step {t}")
        np.testing.assert_array_equal(fast.data, slow.data, err_msg=f"step {t}")
        for k, want in zip(names, ref[1:]):
            floored = k == "exp_avg" or not tiny_eps
            want = np.where(np.abs(want) < tiny, 0, want) if floored else want
            np.testing.assert_array_equal(opts[0].state[fast][k], want, err_msg=f"{k} step {t}")
            np.testing.assert_array_equal(opts[1].state[slow][k], want, err_msg=f"{k} step {t}")
    assert np.count_nonzero(np.abs(ref[1][1:3]) < tiny) > 40                  # m went subnormal unfloored
    assert (opts[0].state[fast]["exp_avg"][1:3] == 0).all()
    assert (opts[0].state[fast]["exp_avg_sq"][1:3] == 0).all() != tiny_eps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.07, momentum=0.9, weight_decay=0.01),
                                  lambda ps: Adam(ps, lr=0.01, amsgrad=True),
                                  lambda ps: AdamW(ps, lr=0.01, weight_decay=0.05)], ids=["SGD", "Adam", "AdamW"])
def test_compiled_step_split_over_threads_equals_one_thread_and_the_ufuncs_bitwise(dtype, make, num_threads,
                                                                                   two_threads):
    """A parameter of 5 rows, 3 * 2^15 + 5 elements, takes a team of 2 on the small-job pool
    (CNN_OPTIM_MIN_PER_THREAD; shares of whole rows, 2 and 3, as the GEMM's row shares): SGD's, Adam's and
    AdamW's compiled steps give the same bits as on one thread and as NumPy's ufuncs."""
    from cnn_core import _config
    rng = np.random.default_rng(4)
    values = rng.standard_normal((5, 3 * 2 ** 15 // 5 + 1)).astype(dtype)
    grads = [rng.standard_normal(values.shape).astype(dtype) for _ in range(3)]
    results = []
    for threads in (2, 1):
        num_threads(threads)
        fast, slow = _contiguous_and_strided(values)
        opts = [make([fast]), make([slow])]
        jobs = _config._pool_stats()[0]
        for g in grads:
            for q, opt in zip((fast, slow), opts):
                q.grad[...] = g
                opt.step()
        assert _config._pool_stats()[0] - jobs == (len(grads) if threads == 2 else 0)
        np.testing.assert_array_equal(fast.data, slow.data)
        results.append(fast.data)
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kw", [
    {}, {"weight_decay": 0.1}, {"amsgrad": True}, {"weight_decay": 0.05, "amsgrad": True, "lr": 0.02},
    {"betas": (0.5, 0.9), "eps": 1e-3, "lr": 0.05, "weight_decay": 0.0},
])
@pytest.mark.parametrize("shape", [(5, 13), (37, 41)])
def test_adam_compiled_step_equals_ufuncs_bitwise(dtype, cls, kw, shape, simd):
    # As for SGD: contiguous parameters take the compiled pass (src_c/optim.c's loop of each SIMD level), a
    # strided view of the same values takes NumPy's ufuncs; both round identically step after step, moments
    # (and amsgrad's running maximum) included, with zero and tiny gradients where v stays 0 or underflows.
    rng = np.random.default_rng(5)
    values = rng.standard_normal(shape).astype(dtype)
    fast, slow = _contiguous_and_strided(values)
    opts = [cls([fast], **kw), cls([slow], **kw)]
    for t in range(6):
        g = rng.standard_normal(values.shape).astype(dtype) * (0.1 if t % 2 else 3.0)
        g.flat[::7] = 0.0
        g.flat[3::11] = np.finfo(dtype).tiny
        for q, opt in zip((fast, slow), opts):
            q.grad[...] = g
            opt.step()
        np.testing.assert_array_equal(fast.data, slow.data, err_msg=f"step {t}")
    assert not np.array_equal(fast.data, values)
    for key in opts[0].state[fast]:
        np.testing.assert_array_equal(opts[0].state[fast][key], opts[1].state[slow][key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1}, {"betas": (0.5, 0.9), "eps": 1e-3, "lr": 0.05}])
def test_adam_matches_formulas(dtype, kw):
    p0, got = run(lambda ps: Adam(ps, **kw), dtype)
    assert got.dtype == dtype
    b1, b2 = kw.get("betas", (0.9, 0.999))
    want = adam_ref(p0, 6, kw.get("lr", 1e-3), b1, b2, kw.get("eps", 1e-8), kw.get("weight_decay", 0.0))
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def test_adam_first_step_is_lr_times_sign():
    # Bias correction makes step 1 exactly lr * g / (|g| + eps): without it the step would be ~lr*(1-b1)/sqrt(1-b2).
    p = P(np.zeros(3))
    p.grad[...] = [3.0, -0.2, 1e-3]
    Adam([p], lr=0.01, eps=0.0).step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-12)


def test_several_parameters_updated_independently():
    a, b = P(np.ones((2, 3))), P(np.full(4, 2.0))
    a.grad[...] = 1.0
    b.grad[...] = -2.0
    opt = SGD([a, b], lr=0.5, momentum=0.9)
    opt.step()
    opt.step()
    np.testing.assert_allclose(a.data, 1 - 0.5 * 1 - 0.5 * 1.9)
    np.testing.assert_allclose(b.data, 2 + 0.5 * 2 + 0.5 * 3.8)


def test_step_reuses_buffers_and_updates_in_place():
    p = P(np.ones(5))
    data = p.data
    opt = Adam([p], weight_decay=0.1)
    p.grad[...] = 1.0
    opt.step()
    bufs = [id(x) for s in (opt.state[p], opt._scratch.get(id(p), {})) for x in s.values()
            if isinstance(x, np.ndarray)]
    opt.step()
    assert p.data is data
    assert bufs == [id(x) for s in (opt.state[p], opt._scratch.get(id(p), {})) for x in s.values()
                    if isinstance(x, np.ndarray)]
    assert id(p) not in opt._scratch   # the compiled step needs no scratch arrays


def test_zero_grad_in_place():
    p = P(np.ones(3))
    grad = p.grad
    grad[...] = 5.0
    SGD([p], lr=0.1).zero_grad()
    assert p.grad is grad and not grad.any()


def test_lr_change_takes_effect():
    p = P(np.zeros(1))
    p.grad[...] = 1.0
    opt = SGD([p], lr=0.1)
    opt.step()
    opt.lr = 0.01
    opt.step()
    np.testing.assert_allclose(p.data, [-0.11])


def test_state_dict_round_trip_continues_identically():
    def make():
        p = P(np.array([1.0, -2.0]))
        return p, Adam([p], lr=0.1)
    p1, o1 = make()
    p2, o2 = make()
    for t in range(3):
        p1.grad[...] = grad_at(t, 2)
        o1.step()
    p2.data[...] = p1.data
    o2.load_state_dict(o1.state_dict())
    for t in range(3, 5):
        p1.grad[...] = p2.grad[...] = grad_at(t, 2)
        o1.step()
        o2.step()
    np.testing.assert_array_equal(p1.data, p2.data)


# ---- schedules -------------------------------------------------------------------------------------------

def test_step_lr_sequence():
    opt = SGD([P(np.zeros(1))], lr=1.0)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    assert sched.get_last_lr() == [1.0]
    lrs = []
    for _ in range(8):
        sched.step()
        lrs.append(opt.lr)
        assert sched.get_last_lr() == [opt.lr]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_cosine_lr_sequence():
    opt = SGD([P(np.zeros(1))], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    lrs = []
    for _ in range(4):
        sched.step()
        lrs.append(opt.lr)
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)]
    np.testing.assert_allclose(lrs, want, rtol=1e-15)
    assert lrs[-1] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.055)


def test_schedule_drives_adam():
    opt = Adam([P(np.zeros(1))], lr=0.2)
    sched = StepLR(opt, step_size=1)
    sched.step()
    assert opt.lr == pytest.approx(0.02)


# ---- clipping --------------------------------------------------------------------------------------------

def test_clip_scales_to_max_norm():
    a, b = P(np.zeros(2)), P(np.zeros((1, 2)))
    a.grad[...] = [3.0, 0.0]
    b.grad[...] = [[0.0, 4.0]]
    total = clip_grad_norm([a, b], 1.0)
    assert total == pytest.approx(5.0)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3 * coef, 0])
    np.testing.assert_allclose(b.grad, [[0, 4 * coef]])
    assert math.sqrt((a.grad ** 2).sum() + (b.grad ** 2).sum()) <= 1.0


def test_clip_leaves_small_grads_alone():
    p = P(np.zeros(3, dtype=np.float32))
    p.grad[...] = [0.1, 0.2, 0.2]
    before = p.grad.copy()
    assert clip_grad_norm([p], 1.0) == pytest.approx(0.3, rel=1e-6)
    np.testing.assert_array_equal(p.grad, before)


def test_clip_nonfinite_norm_returned_grads_untouched():
    p = P(np.zeros(2))
    p.grad[...] = [np.inf, 1.0]
    assert clip_grad_norm([p], 1.0) == math.inf
    np.testing.assert_array_equal(p.grad, [np.inf, 1.0])


# ---- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda p: SGD(p, lr=-0.1), "lr"),
    (lambda p: SGD(p, lr=float("nan")), "lr"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: Adam(p, lr=-1e-3), "lr"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: Adam(p, eps=-1e-8), "eps"),
    (lambda p: Adam(p, weight_decay=-0.1), "weight_decay"),
    (lambda p: SGD([], lr=0.1), "params"),
    (lambda p: Adam([], lr=0.1), "params"),
    (lambda p: SGD(p + p, lr=0.1), "twice"),
    (lambda p: StepLR(SGD(p, lr=0.1), step_size=0), "step_size"),
    (lambda p: StepLR(SGD(p, lr=0.1), step_size=2, gamma=-1.0), "gamma"),
    (lambda p: CosineAnnealingLR(SGD(p, lr=0.1), T_max=0), "T_max"),
    (lambda p: CosineAnnealingLR(SGD(p, lr=0.1), T_max=5, eta_min=-1.0), "eta_min"),
    (lambda p: clip_grad_norm(p, -1.0), "max_norm"),
    (lambda p: clip_grad_norm([], 1.0), "params"),
])
def test_bad_values_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make([P(np.zeros(2))])


@pytest.mark.parametrize("make, match", [
    (lambda p: SGD(p[0], lr=0.1), "params"),
    (lambda p: SGD([np.zeros(2)], lr=0.1), r"params\[0\]"),
    (lambda p: SGD([P(np.zeros(2, dtype=np.int64))], lr=0.1), r"params\[0\].*int64"),
    (lambda p: SGD(p, lr="0.1"), "lr"),
    (lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov="yes"), "nesterov"),
    (lambda p: Adam(p, betas=0.9), "betas"),
    (lambda p: StepLR(object(), step_size=2), "optimizer"),
    (lambda p: StepLR(SGD(p, lr=0.1), step_size=2.5), "step_size"),
])
def test_bad_types_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make([P(np.zeros(2))])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_grads_finite_scan(dtype, bad, simd):
    # fit's one-call scan of every gradient (cnn_core/_finite.pyx, src_c/finite.c's loop of each SIMD level)
    # against np.isfinite: a bad value anywhere in any array (first, middle, last element; 1-D to 4-D,
    # sizes below, at and past full vector blocks; None entries skipped) is found.
    from cnn_core._finite import all_finite
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(7,), (3, 5), (2, 3, 4, 5), (33,), (64,), (1001,)]]
    assert all_finite(arrays) and all_finite([None, *arrays, None]) and all_finite([])
    for k, a in enumerate(arrays):
        for pos in (0, a.size // 2, a.size - 1):
            a.flat[pos] = bad
            assert not all_finite([None, *arrays]), (k, pos)
            assert not all(np.isfinite(x).all() for x in arrays)
            a.flat[pos] = 1.0
    big = np.full(3, np.finfo(dtype).max, dtype)   # the largest finite value is finite
    assert all_finite([big, -big])
    with pytest.raises(TypeError, match="float32/float64"):
        all_finite([np.zeros(3, np.int32)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, cut", [((3 * 2 ** 15 + 1,), (3 * 2 ** 15 + 1) // 2 // 8 * 8),
                                        ((5, 3 * 2 ** 15 // 5 + 1), 2 * (3 * 2 ** 15 // 5 + 1))],
                         ids=["1-D, cache lines", "5 rows, rows"])
def test_all_grads_finite_scan_split_over_threads_finds_every_place(dtype, shape, cut, num_threads, two_threads):
    """An array of over 3 * 2^15 elements is scanned by a team of 2 on the small-job pool, a 1-D one in shares
    of whole cache lines, one of 5 rows in 2 and 3 rows (the GEMM's row shares): a NaN or an infinity at
    either end of either share (the second starting at `cut`) is found, on 2 threads and on 1."""
    from cnn_core import _config
    from cnn_core._finite import all_finite
    a = np.ones(shape, dtype)
    for threads in (2, 1):
        num_threads(threads)
        jobs = _config._pool_stats()[0]
        assert all_finite([np.ones(3, dtype), a])
        for pos in (0, cut - 1, cut, a.size - 1):
            for bad in (np.nan, -np.inf):
                a.flat[pos] = bad
                assert not all_finite([a]), (threads, pos, bad)
                a.flat[pos] = 1.0
        assert _config._pool_stats()[0] - jobs == (9 if threads == 2 else 0)


@pytest.mark.parametrize("dtype, bits", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_all_grads_finite_scan_at_the_bit_pattern_edges(dtype, bits, simd):
    # The scan reads max(|bits|) >= the exponent-all-ones pattern (src_c/finite.c: float32, and float64 at
    # AVX-512; an OR of per-element tests elsewhere): every NaN payload
    # (quiet, signalling, negative), both infinities are found; the largest finite magnitude, -0.0,
    # subnormals are not, at a place inside a vector block and in the tail.
    from cnn_core._finite import all_finite
    nbits = 8 * np.dtype(dtype).itemsize
    exp = {32: 0x7f800000, 64: 0x7ff0000000000000}[nbits]
    sign = 1 << (nbits - 1)
    finite = [exp - 1, sign | (exp - 1), sign, 1, sign | 1, 0]
    nonfinite = [exp, sign | exp, exp + 1, sign | (exp + 1), exp | (exp >> 1), sign | exp | 1, (sign - 1), (2 * sign - 1)]
    for n, pos in ((100, 37), (100, 99), (5, 2)):
        a = np.zeros(n, bits)
        for pattern in finite:
            a[pos] = pattern
            assert all_finite([a.view(dtype)]), hex(pattern)
        for pattern in nonfinite:
            a[pos] = pattern
            assert not all_finite([a.view(dtype)]), hex(pattern)
            assert not np.isfinite(a.view(dtype)).all()


def _sgd_model(dtype, rng, sizes=((100, 784), (100,), (10, 100), (10,))):
    """Parameters shaped like an MLP's, gradients filled (the weight, 78,400 elements, is split over a team of 2:
    CNN_OPTIM_MIN_PER_THREAD)."""
    from cnn_core.nn.module import Parameter
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in sizes]
    for p in params:
        p.grad[...] = rng.standard_normal(p.data.shape)
    return params


def _strided(params):
    """Copies of `params` whose data are strided views (NumPy's ufuncs take them, not the compiled step)."""
    out = []
    for p in params:
        q = type(p)(p.data.copy())
        wide = np.zeros(p.data.shape + (2,), p.data.dtype)
        wide[..., 0] = p.data
        q.data = wide[..., 0]
        q.grad = None if p.grad is None else p.grad.copy()
        out.append(q)
    return out


_STATE_KEYS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.03, momentum=0.9, weight_decay=0.01),
                                  lambda ps: SGD(ps, lr=0.03, momentum=0.8, dampening=0.1, nesterov=False),
                                  lambda ps: SGD(ps, lr=0.03),
                                  lambda ps: Adam(ps, lr=0.01, weight_decay=0.01, amsgrad=True),
                                  lambda ps: AdamW(ps, lr=0.01, weight_decay=0.05)],
                         ids=["SGD", "SGD-dampening", "SGD-plain", "Adam-amsgrad", "AdamW"])
def test_step_of_all_parameters_in_one_call_equals_the_ufuncs(dtype, make, num_threads, two_threads):
    """SGD's and Adam's steps update a group's parameters in one compiled call (kernels/_optim.pyx): the bits
    of NumPy's ufuncs (the same parameters as strided views), state included, on 2 threads and on 1, step
    after step; a parameter that joins later (its gradient None at first) takes its first step then, beside
    the others' later steps (its own momentum start, its own bias corrections). A float64 parameter among
    float32 ones sends the group parameter by parameter, with the same bits."""
    results = []
    for threads in (2, 1):
        num_threads(threads)
        rng = np.random.default_rng(6)
        params = _sgd_model(dtype, rng)
        twins = _strided(params)
        params[3].grad = twins[3].grad = None
        opt, ref = make(params), make(twins)
        for step in range(4):
            if step == 2:
                params[3].grad, twins[3].grad = np.zeros_like(params[3].data), np.zeros(params[3].data.shape, dtype)
            for p, q in zip(params, twins):
                if p.grad is not None:
                    p.grad[...] = q.grad[...] = rng.standard_normal(p.data.shape)
            opt.step()
            ref.step()
            for p, q in zip(params, twins):
                np.testing.assert_array_equal(p.data, q.data, err_msg=f"step {step}")
                for key in _STATE_KEYS:
                    np.testing.assert_array_equal(opt.state.get(p, {}).get(key), ref.state.get(q, {}).get(key))
        assert (opt.state[params[3]].get("step", 2), opt.state[params[0]].get("step", 4)) == (2, 4)
        results.append([p.data.copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    params = _sgd_model(np.float32, rng)
    params[1].data, params[1].grad = params[1].data.astype(np.float64), params[1].grad.astype(np.float64)
    twins = _strided(params)
    opt, ref = make(params), make(twins)
    for _ in range(3):
        for p, q in zip(params, twins):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.data.shape)
        opt.step()
        ref.step()
        for p, q in zip(params, twins):
            np.testing.assert_array_equal(p.data, q.data)
