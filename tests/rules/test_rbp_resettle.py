"""RBP at a free state that is not a stable fixed point (float64).

A relaxation cut short near a saddle leaves the units in their linear range with a loop gain
above 1: the sweep's Jacobian has spectral radius > 1 there, the adjoint iteration grows, and the
"exact" gradient is off by orders of magnitude (what made the 784-500-500-10 RBP run diverge,
docs/compare.md). RBP sees the adjoint grow, relaxes on and solves again (``resettle``).
"""
import pytest
import torch

from eqprop.diagnostics.bias_trace import GradientBias
from eqprop.dynamics import UnsettledError
from eqprop.models import HopfieldMLP
from eqprop.rules import RBP
from eqprop.training import DivergenceError, Trainer
from tests.conftest import float64_one_thread as _f64

float64_one_thread = pytest.fixture(_f64, autouse=True)


def _net(seed: int):
    """784-500-500-10 in miniature with couplings 2x their initial scale; seed 6 is short of its
    fixed point after 20 sweeps and settled after 40, seed 19 needs 60."""
    torch.manual_seed(seed)
    model = HopfieldMLP([6, 8, 8, 3])
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(2.0)
    return model, torch.rand(4, 6), torch.tensor([0, 1, 2, 0])


def _flat(g: dict) -> torch.Tensor:
    return torch.cat([v.flatten() for v in g.values()])


def _rel(g: dict, ref: dict) -> float:
    return float((_flat(g) - _flat(ref)).norm() / _flat(ref).norm())


def _converged(model, x, y) -> dict:
    g, r = RBP(free_steps=5000, tol=1e-15, adjoint_steps=20000, adjoint_tol=1e-14, resettle=0).estimate(model, x, y)
    assert r.stats["free_steps"] < 5000 and r.stats["adjoint_change"] <= 1e-14
    return g


def test_a_growing_adjoint_resettles_to_the_fixed_point_gradient():
    model, x, y = _net(6)
    truth = _converged(model, x, y)
    raw, r0 = RBP(free_steps=20, adjoint_steps=400, resettle=0).estimate(model, x, y)
    assert _rel(raw, truth) > 1e6  # the blow-up: the adjoint grew through its 400 iterations
    got, r = RBP(free_steps=20, adjoint_steps=400).estimate(model, x, y)
    assert r.stats["resettled"] == 1 and r.stats["free_steps"] == 40
    assert _rel(got, truth) < 1e-10


def test_resettling_is_the_same_relaxation_carried_on():
    """Two blocks of 20 sweeps, the second from where the first stopped, are one of 40."""
    model, x, y = _net(6)
    got, _ = RBP(free_steps=20, adjoint_steps=400).estimate(model, x, y)
    longer, r = RBP(free_steps=40, adjoint_steps=400, resettle=0).estimate(model, x, y)
    assert r.stats["resettled"] == 0
    assert torch.allclose(_flat(got), _flat(longer), rtol=1e-12, atol=1e-15)


def test_with_a_tolerance_the_resettles_are_whole_blocks():
    """A tolerance stops the free phase early (8 sweeps here); a resettle must not stop at once on
    the same small change: it runs whole blocks of free_steps."""
    model, x, y = _net(6)
    _, r0 = RBP(free_steps=20, tol=0.1, adjoint_steps=400, adjoint_tol=0.0, resettle=0).estimate(model, x, y)
    got, r = RBP(free_steps=20, tol=0.1, adjoint_steps=400, adjoint_tol=0.0).estimate(model, x, y)
    assert r0.stats["free_steps"] == 8 and r.stats["resettled"] >= 1
    assert r.stats["free_steps"] == 8 + 20 * r.stats["resettled"]
    assert _rel(got, _converged(model, x, y)) < 1e-10


def test_a_run_recorded_before_resettle_existed_resolves_to_no_resettling():
    """A recorded RBP configuration without ``resettle`` is a run that never resettled: resolved
    with ``resettle: 0`` (RBP.absent_means), so resuming it with today's default is a recorded
    change and a grid cell made so is not taken for today's; other rules are untouched."""
    from eqprop.config import load_config, resolve_recorded

    cfg = load_config(None, ["rule.name=rbp"]).to_dict()
    assert cfg["rule"]["resettle"] == 10
    old = {**cfg, "rule": {k: v for k, v in cfg["rule"].items() if k != "resettle"}}
    assert resolve_recorded(old)["rule"]["resettle"] == 0
    assert resolve_recorded(cfg)["rule"]["resettle"] == 10
    ep = load_config(None, ["rule.name=ep-centered"]).to_dict()
    assert resolve_recorded(ep) == ep


def test_a_state_that_will_not_settle_in_the_allowed_resettles_is_an_error():
    model, x, y = _net(19)
    with pytest.raises(UnsettledError, match=r"after 40 free sweeps the adjoint iteration still grows.*rule\.free_steps"):
        RBP(free_steps=20, adjoint_steps=400, resettle=1).estimate(model, x, y)
    got, r = RBP(free_steps=20, adjoint_steps=400, resettle=2).estimate(model, x, y)
    assert r.stats["resettled"] == 2 and _rel(got, _converged(model, x, y)) < 0.05
    with pytest.raises(ValueError, match="resettle must be >= 0"):
        RBP(resettle=-1)


def test_the_trainer_reports_an_unsettled_state_as_a_divergence(tmp_path):
    model, x, y = _net(19)
    rule = RBP(free_steps=20, adjoint_steps=400, resettle=1)
    t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.01), (x, y), (x, y), epochs=1, batch_size=4,
                out=str(tmp_path / "run"), progress=False)
    with pytest.raises(DivergenceError, match=r"epoch 1, batch 1: rbp: after 40 free sweeps.*no epoch had completed"):
        t.fit()


def test_on_one_of_several_processes_an_unsettled_state_stops_them_all(tmp_path):
    """Data-parallel: the process whose shard cannot settle poisons its gradients with NaN, which
    the all-reduce carries to the others, whose gradient checks then fire; its own error names
    the cause."""
    model, x, y = _net(19)
    rule = RBP(free_steps=20, adjoint_steps=400, resettle=1)
    t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.01), (x, y), (x, y), epochs=1, batch_size=4,
                out=str(tmp_path / "run"), progress=False)
    t.world_size = 2  # as under torchrun; the all-reduce itself is tests/distributed's
    with pytest.raises(DivergenceError, match=r"batch 1: loss=nan \(rbp: after 40 free sweeps"):
        t.fit()
    assert all(torch.isnan(p.grad).all() for p in model.parameters())


def test_the_bias_probe_records_nan_where_its_reference_cannot_settle(monkeypatch):
    model, x, y = _net(19)
    probe = GradientBias(probe=4)
    probe.x, probe.y = x, y
    monkeypatch.setattr(probe, "reference", lambda rule: RBP(free_steps=20, adjoint_steps=400, resettle=1))
    got = probe.measure(model, RBP(free_steps=20, adjoint_steps=400))
    assert set(got) == {"bias_cosine", "bias_rel_error", "bias_norm_ratio"}
    assert all(v != v for v in got.values())  # NaN: no exact gradient to compare with, and no crash
