"""GradientBias: the per-epoch cosine/relative error against RBP equals an independent comparison,
and a real run logs the trace that the grid plot reads."""
import json

import pytest
import torch

from eqprop.diagnostics import compare_gradients
from eqprop.diagnostics.bias_trace import GradientBias, plot_bias_traces, read_bias
from eqprop.models import HopfieldMLP
from eqprop.rules import EP
from eqprop.training import Trainer
from tests.conftest import float64_one_thread as _f64

float64_one_thread = pytest.fixture(_f64)


def _data(n=96, d=12, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2 * torch.rand(k, d, generator=g)
    y = torch.arange(n) % k
    return (centers[y] + 0.3 * torch.randn(n, d, generator=g)).clamp(0, 1), y


def test_measure_equals_an_independent_gradient_comparison(float64_one_thread):
    torch.manual_seed(0)
    model = HopfieldMLP([12, 16, 3]).double()
    x, y = _data()
    rule = EP(beta=0.05, free_steps=400, nudge_steps=400, tol=1e-12, variant="centered")
    cb = GradientBias(probe=32, others=["ep-positive"], adjoint_tol=1e-13)
    cb.x, cb.y = x[:32].double(), y[:32]
    got = cb.measure(model, rule)
    ref = compare_gradients(model, cb.x, cb.y, rules=["ep-centered", "ep-positive"], reference="rbp",
                            beta=0.05, free_steps=400, nudge_steps=400, tol=1e-12, adjoint_steps=8000,
                            adjoint_tol=1e-13)
    assert abs(got["bias_cosine"] - ref.row("ep-centered")["cosine"]) < 1e-9
    assert abs(got["bias_rel_error"] - ref.row("ep-centered")["rel_error"]) < 1e-7
    assert abs(got["ep-positive/bias_rel_error"] - ref.row("ep-positive")["rel_error"]) < 1e-7
    # the study's argument, measured: centered nudging has the smaller bias at the same beta
    assert got["bias_rel_error"] < got["ep-positive/bias_rel_error"] < 1.0


def test_a_run_logs_the_trace_and_the_grid_plot_reads_it(tmp_path):
    torch.manual_seed(0)
    x, y = _data()
    model = HopfieldMLP([12, 16, 3])
    rule = EP(beta=0.5, free_steps=20, nudge_steps=8, variant="centered")
    out = tmp_path / "grid" / "toy" / "ep-centered" / "seed0"
    t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.05), (x, y), (x, y),
                callbacks=[GradientBias(probe=32)], epochs=2, batch_size=16, out=str(out), progress=False)
    t.fit()
    trace = read_bias(out)
    assert [r["epoch"] for r in trace] == [1, 2]
    assert all(-1.0 <= r["bias_cosine"] <= 1.0 and r["bias_rel_error"] >= 0 for r in trace)
    assert t.history[-1]["bias_cosine"] == trace[-1]["bias_cosine"]
    assert json.loads((out / "bias.jsonl").read_text().splitlines()[0])["rule"] == "ep"
    assert plot_bias_traces(tmp_path / "grid").exists()
    # the checkpoint stays plain data (weights_only): a longer run resumes from it
    model2 = HopfieldMLP([12, 16, 3])
    t2 = Trainer(model2, rule, torch.optim.SGD(model2.parameters(), lr=0.05), (x, y), (x, y),
                 callbacks=[GradientBias(probe=32)], epochs=3, batch_size=16, out=str(out), progress=False)
    t2.fit()
    assert [r["epoch"] for r in read_bias(out)] == [1, 2, 3] and len(t2.history) == 3


def test_watching_a_run_does_not_change_what_it_learns(tmp_path):
    """EP with a random nudge sign draws from the global generator; the probe's own EP estimate
    draws too. The probe forks the generator, so a watched run learns bit for bit what an unwatched
    one learns (``run.bias_probe`` is a setting of how a run is watched)."""
    x, y = _data()
    weights = []
    for probe in ([], [GradientBias(probe=32)]):
        torch.manual_seed(0)
        model = HopfieldMLP([12, 16, 3])
        rule = EP(beta=0.5, free_steps=10, nudge_steps=4, variant="random")
        t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.05), (x, y), (x, y),
                    callbacks=probe, epochs=2, batch_size=16, out=str(tmp_path / f"p{len(probe)}"), progress=False)
        t.fit()
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
