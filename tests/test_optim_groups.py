"""Optimizers with parameter groups, PyTorch's state_dict layout, the new optimizers (AdamW, RMSprop, Adagrad)
and schedules (LinearLR, SequentialLR, OneCycleLR, ReduceLROnPlateau), each against its update rule or lr
formula written out by hand in NumPy, and against PyTorch when it is installed."""
import math

import numpy as np
import pytest

from cnn_core.optim import (SGD, Adagrad, Adam, AdamW, CosineAnnealingLR, LinearLR, OneCycleLR, ReduceLROnPlateau,
                            RMSprop, SequentialLR, StepLR, clip_grad_norm, clip_grad_norm_, clip_grad_value_)

try:
    import torch
except ImportError:  # PyTorch is optional: the torch comparisons are skipped without it
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


class P:
    """Stand-in for cnn_core.nn.Parameter: .data, .grad and (optionally) requires_grad."""

    def __init__(self, data, dtype=np.float64):
        self.data = np.array(data, dtype=dtype)
        self.grad = np.zeros_like(self.data)


def grads(step, shape, k):
    """Deterministic gradient for parameter k at a step, with sign changes and different magnitudes."""
    n = int(np.prod(shape))
    return np.sin(1.3 * step + 0.7 * np.arange(n) + k).reshape(shape) * (1 + k) + 0.1 * k


# ---- hand-written update rules (float64, one parameter array at a time) ----------------------------------

def ref_sgd(p, g, s, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = g + weight_decay * p
    if momentum:
        s["buf"] = g.copy() if "buf" not in s else momentum * s["buf"] + (1 - dampening) * g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def ref_adam(p, g, s, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    t = s["t"] = s.get("t", 0) + 1
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    if amsgrad:
        v = s["vmax"] = np.maximum(s.get("vmax", 0.0), v)
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_adamw(p, g, s, weight_decay=1e-2, **kw):
    return ref_adam(p, g, s, weight_decay=weight_decay, decoupled=True, **kw)


def ref_rmsprop(p, g, s, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    g = g + weight_decay * p
    sq = s["sq"] = alpha * s.get("sq", 0.0) + (1 - alpha) * g * g
    if centered:
        a = s["a"] = alpha * s.get("a", 0.0) + (1 - alpha) * g
        avg = np.sqrt(sq - a * a) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        s["buf"] = momentum * s.get("buf", 0.0) + g / avg
        return p - lr * s["buf"]
    return p - lr * g / avg


def ref_adagrad(p, g, s, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    t = s["t"] = s.get("t", 0) + 1
    g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + eps)


# (class, hand rule, constructor defaults, group 0 overrides, group 1 overrides)
CASES = [
    (SGD, ref_sgd, {"lr": 0.1}, {}, {"lr": 0.05, "momentum": 0.9}),
    (SGD, ref_sgd, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}, {}, {"momentum": 0.5}),
    (SGD, ref_sgd, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}, {}, {"weight_decay": 0.2}),
    (Adam, ref_adam, {}, {"lr": 0.01}, {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    (Adam, ref_adam, {"amsgrad": True, "lr": 0.02}, {}, {"amsgrad": False}),
    (AdamW, ref_adamw, {}, {"lr": 0.01}, {"weight_decay": 0.3, "lr": 0.05}),
    (AdamW, ref_adamw, {"amsgrad": True, "lr": 0.03}, {"weight_decay": 0.0}, {}),
    (RMSprop, ref_rmsprop, {}, {}, {"lr": 0.003, "alpha": 0.9}),
    (RMSprop, ref_rmsprop, {"momentum": 0.9}, {"centered": True}, {"weight_decay": 0.1}),
    (RMSprop, ref_rmsprop, {"centered": True, "eps": 1e-4}, {"momentum": 0.5, "lr": 0.001}, {}),
    (Adagrad, ref_adagrad, {}, {}, {"lr": 0.1, "lr_decay": 0.05}),
    (Adagrad, ref_adagrad, {"initial_accumulator_value": 0.5, "weight_decay": 0.1}, {"eps": 1e-3}, {"lr": 0.2}),
]
DEFAULTS = {SGD: {"lr": 1e-3}, Adam: {}, AdamW: {}, RMSprop: {}, Adagrad: {}}
TOL = {np.float64: 1e-12, np.float32: 2e-5}
STEPS = 7


def _run_two_groups(cls, ctor, g0, g1, dtype, steps=STEPS):
    a, b, c = P([0.5, -1.25, 2.0], dtype), P([[0.3, -0.7], [1.1, 0.0]], dtype), P([-0.4, 0.9], dtype)
    start = [x.data.astype(np.float64) for x in (a, b, c)]
    opt = cls([{"params": [a, b], **g0}, {"params": [c], **g1}], **ctor)
    for t in range(steps):
        for k, x in enumerate((a, b, c)):
            x.grad[...] = grads(t, x.data.shape, k)
        before = [x.grad.copy() for x in (a, b, c)]
        opt.step()
        for x, g in zip((a, b, c), before):
            np.testing.assert_array_equal(x.grad, g)  # .grad is never modified
    return start, [a, b, c], opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, rule, ctor, g0, g1", CASES)
def test_optimizer_matches_hand_rule_with_two_groups(cls, rule, ctor, g0, g1, dtype):
    start, params, opt = _run_two_groups(cls, ctor, g0, g1, dtype)
    hyper = [{**DEFAULTS[cls], **ctor, **g0}, {**DEFAULTS[cls], **ctor, **g1}]
    for k, (p0, x) in enumerate(zip(start, params)):
        h = hyper[0 if k < 2 else 1]
        p, s = p0, {}
        for t in range(STEPS):
            p = rule(p, grads(t, p.shape, k), s, **h)
        assert x.data.dtype == dtype
        np.testing.assert_allclose(x.data, p, rtol=TOL[dtype], atol=TOL[dtype])
    assert opt.lr == opt.param_groups[0]["lr"] == hyper[0].get("lr", opt.defaults["lr"])
    assert opt.param_groups[1]["lr"] == hyper[1].get("lr", opt.defaults["lr"])


def _torch_opt(cls, groups, ctor):
    name = cls.__name__
    return getattr(torch.optim, name)(groups, **ctor)


@needs_torch
@pytest.mark.parametrize("cls, rule, ctor, g0, g1", CASES)
def test_optimizer_matches_pytorch(cls, rule, ctor, g0, g1):
    start, params, opt = _run_two_groups(cls, ctor, g0, g1, np.float64)
    tp = [torch.tensor(p0, requires_grad=True) for p0 in start]
    topt = _torch_opt(cls, [{"params": tp[:2], **g0}, {"params": tp[2:], **g1}], ctor)
    for t in range(STEPS):
        for k, x in enumerate(tp):
            x.grad = torch.tensor(grads(t, tuple(x.shape), k))
        topt.step()
    for x, y in zip(params, tp):
        np.testing.assert_allclose(x.data, y.detach().numpy(), rtol=1e-12, atol=1e-13)
    # our state_dict has PyTorch's layout: same groups (hyperparameters and indices) and state keys
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for og, tg in zip(ours["param_groups"], theirs["param_groups"]):
        assert og["params"] == tg["params"]
        for k, v in og.items():
            if k != "params":
                assert tuple(v) == tuple(tg[k]) if isinstance(v, tuple) else v == tg[k], k
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for i, s in ours["state"].items():
        ts = {k: v for k, v in theirs["state"][i].items() if v is not None}
        assert set(s) == set(ts)
        for k, v in s.items():
            np.testing.assert_allclose(np.asarray(v, dtype=np.float64), ts[k].numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("cls, rule, ctor, g0, g1", CASES)
def test_pytorch_state_dict_loads_and_continues(cls, rule, ctor, g0, g1):
    """A PyTorch optimizer's state_dict loads into ours (tensors, float step) and the runs continue alike."""
    start, params, opt = _run_two_groups(cls, ctor, g0, g1, np.float64, steps=3)
    tp = [torch.tensor(x.data.copy(), requires_grad=True) for x in params]
    topt = _torch_opt(cls, [{"params": tp[:2], **g0}, {"params": tp[2:], **g1}], ctor)
    # give torch the same history, then load its state into a fresh optimizer of ours
    tp2 = [torch.tensor(p0, requires_grad=True) for p0 in start]
    topt2 = _torch_opt(cls, [{"params": tp2[:2], **g0}, {"params": tp2[2:], **g1}], ctor)
    for t in range(3):
        for k, x in enumerate(tp2):
            x.grad = torch.tensor(grads(t, tuple(x.shape), k))
        topt2.step()
    topt.load_state_dict(topt2.state_dict())
    fresh = [P(x.data.copy()) for x in params]
    mine = cls([{"params": fresh[:2], **g0}, {"params": fresh[2:], **g1}], **ctor)
    mine.load_state_dict(topt2.state_dict())
    for t in range(3, 6):
        for k, (x, y) in enumerate(zip(fresh, params)):
            x.grad[...] = y.grad[...] = grads(t, x.data.shape, k)
        mine.step()
        opt.step()
    for x, y in zip(fresh, params):
        np.testing.assert_allclose(x.data, y.data, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cls, rule, ctor, g0, g1", CASES)
def test_state_dict_round_trip_continues_bitwise(cls, rule, ctor, g0, g1):
    start, params, opt = _run_two_groups(cls, ctor, g0, g1, np.float32, steps=3)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    copies = [P(x.data.copy(), np.float32) for x in params]
    other = cls([{"params": copies[:2]}, {"params": copies[2:]}], **DEFAULTS[cls])  # other hyperparameters
    other.load_state_dict(sd)
    assert other.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    for i, st in sd["state"].items():  # the state was copied, not shared
        for key, v in st.items():
            if isinstance(v, np.ndarray):
                assert other.state[copies[i]][key] is not v
    for t in range(3, 6):
        for k, (x, y) in enumerate(zip(copies, params)):
            x.grad[...] = y.grad[...] = grads(t, x.data.shape, k)
        other.step()
        opt.step()
    for x, y in zip(copies, params):
        np.testing.assert_array_equal(x.data, y.data)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad])
def test_frozen_and_gradless_parameters_are_skipped(cls):
    a, b, c = P([1.0, 2.0]), P([3.0]), P([4.0, 5.0])
    b.requires_grad = False
    c.grad = None
    opt = cls([a, b, c], lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    for x in (a, b):
        x.grad[...] = 1.0
    opt.step()
    opt.zero_grad()
    assert not np.array_equal(a.data, [1.0, 2.0])
    np.testing.assert_array_equal(b.data, [3.0])
    np.testing.assert_array_equal(c.data, [4.0, 5.0])
    assert c.grad is None
    if cls is not Adagrad:  # Adagrad's state exists from construction, as in PyTorch
        assert b not in opt.state and c not in opt.state


def test_lr_attribute_is_the_first_groups():
    a, b = P([1.0]), P([1.0])
    opt = SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1, momentum=0.9)
    assert opt.lr == 0.5 and opt.momentum == 0.9
    opt.lr = 0.25
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.1]
    opt.add_param_group({"params": [P([0.0])], "momentum": 0.1})
    assert opt.param_groups[2]["momentum"] == 0.1 and opt.param_groups[2]["lr"] == 0.1
    assert len(opt.params) == 3


def test_adagrad_first_step_is_lr_times_sign():
    p = P([3.0, -0.2])
    p.grad[...] = [2.0, -0.5]
    Adagrad([p], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(p.data, [2.9, -0.1], rtol=1e-15)


# ---- schedules ---------------------------------------------------------------------------------------------

def _two_group_sgd(lr0=1.0, lr1=0.5, **kw):
    return SGD([{"params": [P([0.0])], "lr": lr0}, {"params": [P([0.0])], "lr": lr1}], lr=lr0, **kw)


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def test_step_and_cosine_act_on_every_group():
    opt = _two_group_sgd()
    sched = StepLR(opt, step_size=2, gamma=0.5)
    seq = [_lrs(opt)]
    for _ in range(5):
        sched.step()
        seq.append(_lrs(opt))
    assert seq == [[b * 0.5 ** (e // 2) for b in (1.0, 0.5)] for e in range(6)]
    opt = _two_group_sgd()
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    for e in range(1, 6):
        sched.step()
        want = [0.1 + (b - 0.1) * (1 + math.cos(math.pi * e / 4)) / 2 for b in (1.0, 0.5)]
        np.testing.assert_allclose(_lrs(opt), want, rtol=1e-15)
        assert sched.get_last_lr() == _lrs(opt)


def test_linear_lr_warmup_sequence():
    opt = _two_group_sgd()
    sched = LinearLR(opt, start_factor=0.25, total_iters=3)
    seq = [_lrs(opt)]
    for _ in range(5):
        sched.step()
        seq.append(_lrs(opt))
    factors = [0.25 + 0.75 * min(e, 3) / 3 for e in range(6)]
    np.testing.assert_allclose(seq, [[f * 1.0, f * 0.5] for f in factors], rtol=1e-15)


def test_sequential_warmup_then_cosine():
    opt = _two_group_sgd()
    warm = LinearLR(opt, start_factor=0.1, total_iters=2)
    cos = CosineAnnealingLR(opt, T_max=4)
    sched = SequentialLR(opt, [warm, cos], milestones=[2])
    seq = [_lrs(opt)]
    for _ in range(6):
        sched.step()
        seq.append(_lrs(opt))
    want = []
    for e in range(7):
        f = 0.1 + 0.9 * e / 2 if e < 2 else (1 + math.cos(math.pi * (e - 2) / 4)) / 2
        want.append([f * 1.0, f * 0.5])
    np.testing.assert_allclose(seq, want, rtol=1e-15, atol=1e-16)


def onecycle_ref(step, total, max_lr, pct=0.3, div=25.0, final_div=1e4, three=False, strategy="cos"):
    """PyTorch's OneCycleLR lr at a step, written from its phase table."""
    init = max_lr / div
    low = init / final_div
    if three:
        phases = [(pct * total - 1, init, max_lr), (2 * pct * total - 2, max_lr, init), (total - 1, init, low)]
    else:
        phases = [(pct * total - 1, init, max_lr), (total - 1, max_lr, low)]
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            f = (step - start) / (end - start)
            return b + (a - b) / 2 * (math.cos(math.pi * f) + 1) if strategy == "cos" else a + (b - a) * f
        start = end


@pytest.mark.parametrize("kw", [{}, {"three_phase": True}, {"anneal_strategy": "linear", "pct_start": 0.4}])
def test_one_cycle_sequence_and_momentum(kw):
    p = P([0.0])
    opt = Adam([{"params": [p]}, {"params": [P([0.0])]}])
    sched = OneCycleLR(opt, max_lr=[0.1, 0.01], total_steps=20, **kw)
    three, strategy = kw.get("three_phase", False), kw.get("anneal_strategy", "cos")
    pct = kw.get("pct_start", 0.3)
    for step in range(20):
        want = [onecycle_ref(step, 20, m, pct=pct, three=three, strategy=strategy) for m in (0.1, 0.01)]
        np.testing.assert_allclose(_lrs(opt), want, rtol=1e-14)
        # beta1 moves inversely: max_momentum where lr is lowest (start), base_momentum at max_lr
        b1 = opt.param_groups[0]["betas"][0]
        assert 0.85 - 1e-12 <= b1 <= 0.95 + 1e-12
        if step == 0:
            assert b1 == pytest.approx(0.95)
        p.grad[...] = 1.0
        opt.step()
        sched.step() if step < 19 else None
    sched.step()  # step 20 == total_steps is allowed (PyTorch too); one more is not
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


@needs_torch
@pytest.mark.parametrize("make", [
    lambda o, m: m.OneCycleLR(o, max_lr=[0.1, 0.05], total_steps=30),
    lambda o, m: m.OneCycleLR(o, max_lr=0.1, epochs=3, steps_per_epoch=7, three_phase=True),
    lambda o, m: m.OneCycleLR(o, max_lr=0.1, total_steps=25, anneal_strategy="linear", pct_start=0.25),
    lambda o, m: m.LinearLR(o, start_factor=0.2, total_iters=4),
    lambda o, m: m.StepLR(o, 3, gamma=0.3),
    lambda o, m: m.CosineAnnealingLR(o, 6, eta_min=0.01),
])
def test_schedules_match_pytorch(make):
    import cnn_core.optim as ours
    opt = SGD([{"params": [P([0.0])], "lr": 0.1}, {"params": [P([0.0])], "lr": 0.05}], momentum=0.9)
    tparams = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.SGD([{"params": tparams[:1], "lr": 0.1}, {"params": tparams[1:], "lr": 0.05}], momentum=0.9)
    s, ts = make(opt, ours), make(topt, torch.optim.lr_scheduler)
    for _ in range(20):
        np.testing.assert_allclose(_lrs(opt), [g["lr"] for g in topt.param_groups], rtol=1e-12)
        np.testing.assert_allclose([g["momentum"] for g in opt.param_groups],
                                   [g["momentum"] for g in topt.param_groups], rtol=1e-12)
        topt.step()
        s.step()
        ts.step()


@needs_torch
def test_sequential_and_plateau_match_pytorch():
    opt = _two_group_sgd(0.1, 0.05)
    tparams = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.SGD([{"params": tparams[:1], "lr": 0.1}, {"params": tparams[1:], "lr": 0.05}], lr=0.1)
    import cnn_core.optim as ours
    mods = (ours, torch.optim.lr_scheduler)
    seqs = [m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=3), m.CosineAnnealingLR(o, 5)], milestones=[3])
            for m, o in zip(mods, (opt, topt))]
    for _ in range(10):
        np.testing.assert_allclose(_lrs(opt), [g["lr"] for g in topt.param_groups], rtol=1e-12, atol=1e-15)
        topt.step()
        for s in seqs:
            s.step()
    opt = _two_group_sgd(0.1, 0.05)
    topt = torch.optim.SGD([{"params": tparams[:1], "lr": 0.1}, {"params": tparams[1:], "lr": 0.05}], lr=0.1)
    pl = [m.ReduceLROnPlateau(o, patience=1, factor=0.5, cooldown=1, min_lr=[0.0, 0.02])
          for m, o in zip(mods, (opt, topt))]
    for metric in [1.0, 0.9, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.6, 0.7, 0.8, 0.9]:
        for s in pl:
            s.step(metric)
        np.testing.assert_allclose(_lrs(opt), [g["lr"] for g in topt.param_groups], rtol=1e-12)


def test_reduce_on_plateau_by_hand():
    opt = _two_group_sgd(1.0, 0.1)
    s = ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2, threshold=0.1, threshold_mode="abs",
                          min_lr=[0.0, 0.08])
    seq = []
    for m in [1.0, 1.05, 1.09, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2]:
        s.step(m)
        seq.append(_lrs(opt))
    # improvements need > best + 0.1: 1.0 (best), then 1.2; bad epochs reduce after 3 in a row
    assert seq == [[1.0, 0.1], [1.0, 0.1], [1.0, 0.1], [1.0, 0.1], [1.0, 0.1], [1.0, 0.1],
                   [0.5, 0.08], [0.5, 0.08], [0.5, 0.08], [0.25, 0.08]]


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 2), lambda o: LinearLR(o), lambda o: OneCycleLR(o, 0.5, total_steps=10),
    lambda o: ReduceLROnPlateau(o, patience=0), lambda o: SequentialLR(o, [LinearLR(o), StepLR(o, 1)], [2]),
])
def test_schedule_state_dict_round_trip(make):
    def run(sched, opt, n):
        for i in range(n):
            sched.step(1.0 / (1 + i % 3)) if isinstance(sched, ReduceLROnPlateau) else sched.step()
        return _lrs(opt)
    o1 = _two_group_sgd(momentum=0.9)
    s1 = make(o1)
    run(s1, o1, 4)
    o2 = _two_group_sgd(momentum=0.9)
    s2 = make(o2)
    s2.load_state_dict(s1.state_dict())
    o2.load_state_dict(o1.state_dict())
    assert run(s1, o1, 5) == run(s2, o2, 5)
    with pytest.raises(ValueError, match="state_dict"):
        s2.load_state_dict({"nonsense": 1})


# ---- clipping ----------------------------------------------------------------------------------------------

def test_clip_grad_norm_types_and_alias():
    a, b = P([3.0, -4.0]), P([12.0])
    a.grad[...] = [3.0, -4.0]
    b.grad[...] = [12.0]
    assert clip_grad_norm_([a, b], 100.0, norm_type=math.inf) == 12.0
    assert clip_grad_norm_([a, b], 100.0, norm_type=1) == pytest.approx(19.0, rel=1e-15)
    total = clip_grad_norm_([a, b], 1.3)
    assert total == pytest.approx(13.0, rel=1e-15)
    np.testing.assert_allclose(np.r_[a.grad, b.grad], np.array([3.0, -4.0, 12.0]) * 1.3 / (13.0 + 1e-6), rtol=1e-15)
    c = P([1.0])
    c.grad = None
    a.grad[...] = [6.0, 8.0]
    assert clip_grad_norm([a, c], 5.0) == pytest.approx(10.0)  # the old name, grads that are None skipped
    np.testing.assert_allclose(a.grad, [3.0, 4.0], rtol=1e-6)


def test_clip_grad_value():
    a, b = P([0.0, 0.0, 0.0]), P([0.0])
    a.grad[...] = [-3.0, 0.5, np.nan]
    b.grad = None
    clip_grad_value_([a, b], 1.0)
    np.testing.assert_array_equal(a.grad, [-1.0, 0.5, np.nan])


# ---- bad arguments -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, exc, match", [
    (lambda p: RMSprop(p, alpha=-0.1), ValueError, "alpha"),
    (lambda p: RMSprop(p, momentum=-1), ValueError, "momentum"),
    (lambda p: RMSprop(p, centered=1), TypeError, "centered"),
    (lambda p: Adagrad(p, lr_decay=-1), ValueError, "lr_decay"),
    (lambda p: Adagrad(p, initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
    (lambda p: AdamW(p, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p: Adam(p, amsgrad="no"), TypeError, "amsgrad"),
    (lambda p: SGD([{"params": p, "lr": -1.0}]), ValueError, r"params\[0\]\['lr'\]"),
    (lambda p: SGD([{"params": p, "betas": 1.0}]), ValueError, "betas"),
    (lambda p: SGD([{"lr": 0.1}]), ValueError, "params"),
    (lambda p: SGD([{"params": p}, {"params": p}]), ValueError, "another group"),
    (lambda p: SGD([{"params": p}, p[0]]), TypeError, "params"),
    (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p: LinearLR(SGD(p), start_factor=0.0), ValueError, "start_factor"),
    (lambda p: LinearLR(SGD(p), total_iters=0), ValueError, "total_iters"),
    (lambda p: OneCycleLR(SGD(p), 0.1), ValueError, "total_steps"),
    (lambda p: OneCycleLR(SGD(p), [0.1, 0.2], total_steps=5), ValueError, "max_lr"),
    (lambda p: OneCycleLR(SGD(p), 0.1, total_steps=5, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda p: OneCycleLR(Adagrad(p), 0.1, total_steps=5), ValueError, "cycle_momentum"),
    (lambda p: ReduceLROnPlateau(SGD(p), factor=1.0), ValueError, "factor"),
    (lambda p: ReduceLROnPlateau(SGD(p), mode="up"), ValueError, "mode"),
    (lambda p: ReduceLROnPlateau(SGD(p)).step("low"), TypeError, "metrics"),
    (lambda p: SequentialLR(SGD(p), [StepLR(SGD(p), 1)], []), ValueError, "another optimizer"),
    (lambda p: clip_grad_norm_(p, 1.0, norm_type=0), ValueError, "norm_type"),
    (lambda p: clip_grad_value_(p, -1.0), ValueError, "clip_value"),
    (lambda p: SGD(p).load_state_dict({"state": {}, "param_groups": []}), ValueError, "param_groups"),
    (lambda p: SGD(p).load_state_dict({"state": {5: {}}, "param_groups": SGD(p).state_dict()["param_groups"]}),
     ValueError, "index"),
    (lambda p: Adam(p).load_state_dict({"state": {0: {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(2)}},
                                        "param_groups": Adam(p).state_dict()["param_groups"]}),
     ValueError, "shape"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make([P([0.0, 1.0])])


def test_failed_load_leaves_optimizer_unchanged():
    p = P([1.0, 2.0])
    opt = Adam([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = 0.5
    bad["state"][0]["exp_avg_sq"][0] = -1.0
    with pytest.raises(ValueError, match="exp_avg_sq"):
        opt.load_state_dict(bad)
    assert opt.lr == 0.1
    np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], before["state"][0]["exp_avg_sq"])
