"""Captured relaxations (eqprop.capture): the static-buffer plumbing against the uncaptured path.

On CPU the backend is ``EagerGraphs`` ("replay" calls the same function on the same static
buffers), so these tests check everything but the CUDA graph itself: what is copied in, the keys,
re-capture on a new storage, the fallback, and that in-place weight changes are seen — in float64
to 1e-12 against ``relax(..., capture=False)``.
"""
import warnings

import pytest
import torch

import eqprop
from eqprop import capture
from eqprop.dynamics import Clamp, Nudge, relax
from eqprop.models import HopfieldMLP
from eqprop.models.conv import ConvHopfield

TOL = dict(rtol=0, atol=1e-12)


@pytest.fixture(autouse=True)
def _float64_and_fresh():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    capture.clear()
    yield
    capture.clear()
    torch.set_default_dtype(old)


class Counting(capture.EagerGraphs):
    """The CPU backend, counting captures."""

    def __init__(self):
        self.captures = 0

    def capture(self, fn, device):
        self.captures += 1
        return super().capture(fn, device)


class Refusing(capture.EagerGraphs):
    """A backend whose capture fails, as CUDA's does on an unsupported op or a host sync."""

    def capture(self, fn, device):
        raise RuntimeError("operation not permitted when stream is capturing")


@pytest.fixture
def counting(monkeypatch):
    b = Counting()
    monkeypatch.setattr(capture, "backend_for", lambda device: b)
    return b


def mlp():
    torch.manual_seed(0)
    return HopfieldMLP([12, 10, 8, 4], gains=[1.5] * 3).double()


def conv(output="mse"):
    torch.manual_seed(0)
    return ConvHopfield((2, 8, 8), [3, 4], 4, output=output, gains=[1.5, 1.5, 1.5]).double()


def batch(model, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 12) if isinstance(model, HopfieldMLP) else (n, 2, 8, 8)
    return torch.rand(*shape, generator=g), torch.randint(0, 4, (n,), generator=g)


def phases(model, x, y):
    """Kwargs of the phases: free, nudged +-beta, per-sample beta, clamped."""
    free = relax(model, x, steps=7, mode="sync").state
    t = torch.nn.functional.one_hot(y, 4).double()
    return {
        "free": dict(state=None),
        "nudge+": dict(state=free, nudge=Nudge(0.3, y)),
        "nudge-": dict(state=free, nudge=Nudge(-0.3, y)),
        "nudge-per-sample": dict(state=free, nudge=Nudge(torch.linspace(-0.4, 0.4, x.shape[0]), y)),
        "clamp": dict(state=free, clamp=Clamp(0.5 * t + 0.25)),
    }


def same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, **TOL)


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_phase_equals_uncaptured(make, mode, counting):
    model = make()
    x, y = batch(model)
    for name, kw in phases(model, x, y).items():
        ref = relax(model, x, steps=6, mode=mode, **kw).state
        got = relax(model, x, steps=6, mode=mode, capture=True, **kw).state
        same(got, ref)
        again = relax(model, x, steps=6, mode=mode, capture=True, **kw).state  # replayed, not re-captured
        same(again, ref)
    # one capture per phase kind: +beta and -beta share the graph (beta is a buffer)
    assert counting.captures == 4 == capture.captured_phases(model)


def test_conv_ce_readout_nudge(counting):
    model = conv(output="ce")
    x, y = batch(model)
    free = relax(model, x, steps=5).state
    for beta in (0.2, -0.2):
        ref = relax(model, x, free, steps=4, nudge=Nudge(beta, y)).state
        same(relax(model, x, free, steps=4, nudge=Nudge(beta, y), capture=True).state, ref)


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
def test_in_place_weight_changes_are_seen_without_recapture(make, counting):
    model = make()
    x, y = batch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        ref = relax(model, x, steps=5, nudge=Nudge(0.5, y)).state
        same(relax(model, x, steps=5, nudge=Nudge(0.5, y), capture=True).state, ref)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()  # in place: the captured phase reads the new values through the same storage
    assert counting.captures == 1


def test_new_storage_recaptures(counting):
    model = mlp()
    x, _ = batch(model)
    relax(model, x, steps=5, capture=True)
    w = model.layers[1].weight
    model.layers[1].weight = torch.nn.Parameter(w.detach() * 1.3)  # a new storage
    ref = relax(model, x, steps=5).state
    same(relax(model, x, steps=5, capture=True).state, ref)
    assert counting.captures == 2 and capture.captured_phases(model) == 1  # replaced, not added


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
def test_new_batch_shape_rekeys(make, counting):
    model = make()
    for n in (5, 3, 5):
        x, y = batch(model, n=n, seed=n)
        ref = relax(model, x, steps=4, nudge=Nudge(0.2, y)).state
        same(relax(model, x, steps=4, nudge=Nudge(0.2, y), capture=True).state, ref)
    assert counting.captures == 2  # batch 5 once, batch 3 once


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_new_inputs_and_start_states_are_copied_in(mode, counting):
    """New batches and start states in the same static buffers: the context's per-run caches
    (ConvContext.up, keyed on tensor identity) must not carry over between calls."""
    model = conv()
    for seed in (1, 2, 3):
        x, y = batch(model, seed=seed)
        free = relax(model, x, steps=5, mode=mode).state
        ref = relax(model, x, free, steps=4, mode=mode, nudge=Nudge(0.4, y)).state
        same(relax(model, x, free, steps=4, mode=mode, nudge=Nudge(0.4, y), capture=True).state, ref)
    assert counting.captures == 1


def test_outputs_are_fresh_tensors(counting):
    model = mlp()
    x, _ = batch(model)
    a = relax(model, x, steps=4, capture=True).state
    keep = [t.clone() for t in a]
    relax(model, x + 0.5, steps=4, capture=True)  # a second call must not overwrite the first result
    same(a, keep)


def test_failed_capture_falls_back_and_warns_once(monkeypatch):
    monkeypatch.setattr(capture, "backend_for", lambda device: Refusing())
    capture._warned.clear()
    model = conv()
    x, y = batch(model)
    ref = relax(model, x, steps=4, nudge=Nudge(0.3, y)).state
    with pytest.warns(RuntimeWarning, match="capture of the ConvHopfield relaxation failed.*not permitted"):
        got = relax(model, x, steps=4, nudge=Nudge(0.3, y), capture=True).state
    same(got, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same(relax(model, x, steps=4, nudge=Nudge(0.3, y), capture=True).state, ref)


def test_tol_is_refused():
    model = mlp()
    x, _ = batch(model)
    with pytest.raises(ValueError, match="fixed sweep budget.*tol=None"):
        relax(model, x, steps=4, tol=1e-6, capture=True)
    with pytest.raises(ValueError, match="capture records a fixed sweep budget"):
        eqprop.rules.EP(capture=True, tol=1e-6)


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
@pytest.mark.parametrize("rule", ["ep-centered", "ep-positive", "cl", "cpl-centered"])
def test_rule_gradients_equal_uncaptured(make, rule, counting):
    name, _, variant = rule.partition("-")
    cls = {"ep": eqprop.rules.EP, "cl": eqprop.rules.CL, "cpl": eqprop.rules.CpL}[name]
    kw = dict(free_steps=8, nudge_steps=4, mode="async")
    if variant:
        kw["variant"] = variant
    if name != "cl":
        kw["beta"] = 0.3
    model = make()
    x, y = batch(model)
    ref_rule, cap_rule = cls(**kw), cls(capture=True, **kw)
    g_ref, r_ref = ref_rule.estimate(model, x, y)
    g_cap, r_cap = cap_rule.estimate(model, x, y)
    for k in g_ref:
        torch.testing.assert_close(g_cap[k], g_ref[k], **TOL)
    same(r_cap.state, r_ref.state)
    torch.testing.assert_close(cap_rule.infer(model, x, y).output, ref_rule.infer(model, x, y).output, **TOL)


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
def test_bf16_copy_synced_in_place_is_seen(make, counting):
    """The bf16 relaxation copy keeps its storages (synced in place from the float32 master), so
    the captured free phase follows the master's in-place updates without re-capture."""
    model = make().float()
    x, y = batch(model)
    x = x.float()
    ref_rule = eqprop.rules.EP(free_steps=6, relax_dtype="bfloat16")
    cap_rule = eqprop.rules.EP(free_steps=6, relax_dtype="bfloat16", capture=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        ref = ref_rule.infer(model, x, y).output
        torch.testing.assert_close(cap_rule.infer(model, x, y).output, ref, rtol=0, atol=0)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
    assert counting.captures == 1


def test_truncated_bptt_captures_its_undifferentiated_sweeps(counting):
    model = conv()
    x, y = batch(model)
    kw = dict(free_steps=7, backprop_steps=3)
    g_ref, _ = eqprop.rules.BPTT(**kw).estimate(model, x, y)
    g_cap, _ = eqprop.rules.BPTT(capture=True, **kw).estimate(model, x, y)
    for k in g_ref:
        torch.testing.assert_close(g_cap[k], g_ref[k], **TOL)
    assert counting.captures == 1  # the 4 sweeps before the differentiated ones


def test_ffebm_rules_refuse_capture():
    with pytest.raises(ValueError, match="capture is not supported for ff-EBM chains"):
        eqprop.rules.FFEBMEP(capture=True)


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
def test_bf16_nudged_phases_keep_their_dtype_and_follow_eager(make, counting):
    """beta becomes a buffer in the states' dtype: the force, hence the states, stay bfloat16;
    the estimate follows eager's (beta rounded to bfloat16 is the only difference)."""
    model = make().float()
    x, y = batch(model)
    x = x.float()
    kw = dict(beta=0.2, free_steps=8, nudge_steps=4, relax_dtype="bfloat16")
    g_ref, _ = eqprop.rules.EP(**kw).estimate(model, x, y)
    g_cap, r_cap = eqprop.rules.EP(capture=True, **kw).estimate(model, x, y)
    a = torch.cat([g_ref[k].flatten() for k in g_ref])
    b = torch.cat([g_cap[k].flatten() for k in g_ref])
    assert float(a @ b / (a.norm() * b.norm())) > 0.99
    assert all(g.dtype == torch.float32 for g in g_cap.values())
    low = eqprop.precision.relaxation_copy(model, "bfloat16")
    x_low, free = x, relax(low, x, steps=5).state
    out = relax(low, x_low, free, steps=3, nudge=Nudge(0.2, y), capture=True).state
    assert all(s.dtype == torch.bfloat16 for s in out)


def test_captured_phases_go_with_their_model(counting):
    import gc
    model = mlp()
    x, _ = batch(model)
    relax(model, x, steps=3, capture=True)
    assert len(capture._entries) == 1
    del model
    gc.collect()
    assert len(capture._entries) == 0  # a discarded model's graphs and buffers are freed


def test_a_context_the_buffers_cannot_mirror_falls_back(counting):
    """A context tensor with overlapping memory (an expanded input drive) cannot be copied into:
    the phase warns once and runs uncaptured, with the right result."""
    capture._warned.clear()
    model = mlp()
    x, _ = batch(model)
    ctx = model.context(x)
    ctx = type(ctx)(x=ctx.x, input_drive=ctx.input_drive[:1].expand_as(ctx.input_drive))
    ref = relax(model, x, steps=4, ctx=ctx, fused=False).state
    with pytest.warns(RuntimeWarning, match="running it uncaptured"):
        got = relax(model, x, steps=4, ctx=ctx, fused=False, capture=True).state
    same(got, ref)
    same(relax(model, x, steps=4, ctx=ctx, fused=False, capture=True).state, ref)  # no second try
    assert counting.captures == 0


class Traced(capture.EagerGraphs):
    """A CPU stand-in for a CUDA graph's semantics: the Python of the phase runs ONCE (traced by
    ``make_fx`` into a graph of aten ops that reads the static buffers and parameters by
    reference); a replay runs the recorded ops only. Anything decided in Python at capture time
    (a cached tensor, a branch on a value, a host sync) is frozen, as in a CUDA graph."""

    def __init__(self):
        self.captures = 0

    def capture(self, fn, device):
        from torch.fx.experimental.proxy_tensor import make_fx

        self.captures += 1
        gm = make_fx(fn)()

        def replay():
            with torch.no_grad():
                return gm()
        return capture._Replay(replay)


@pytest.fixture
def traced(monkeypatch):
    b = Traced()
    monkeypatch.setattr(capture, "backend_for", lambda device: b)
    return b


@pytest.mark.parametrize("make", [mlp, conv], ids=["mlp", "conv"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_frozen_python_replays_equal_eager(make, mode, traced):
    """Every phase kind, new batches and start states, and in-place weight updates between calls,
    with the Python of each phase run only at capture: what a CUDA graph will do."""
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for seed in (1, 2, 3):
        x, y = batch(model, seed=seed)
        for name, kw in phases(model, x, y).items():
            ref = relax(model, x, steps=5, mode=mode, **kw).state
            same(relax(model, x, steps=5, mode=mode, capture=True, **kw).state, ref)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
    assert traced.captures == 4


def test_frozen_python_rule_step(traced):
    model = conv()
    x, y = batch(model)
    kw = dict(beta=0.3, free_steps=6, nudge_steps=3)
    for _ in range(2):
        g_ref, _ = eqprop.rules.EP(**kw).estimate(model, x, y)
        g_cap, _ = eqprop.rules.EP(capture=True, **kw).estimate(model, x, y)
        for k in g_ref:
            torch.testing.assert_close(g_cap[k], g_ref[k], **TOL)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.9)
