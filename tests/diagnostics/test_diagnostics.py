"""compare_gradients and the GDU check on small float64 nets."""
import json

import pytest

from eqprop.diagnostics import compare_gradients, gdu_check
from eqprop.rules import rule_names
from tests.conftest import make_net

CONVERGED = dict(free_steps=2000, nudge_steps=2000, tol=1e-13, adjoint_steps=4000)


def test_compare_gradients_covers_every_rule(tiny_batch):
    x, y = tiny_batch
    res = compare_gradients(make_net().float(), x.float(), y, beta=1e-3, **CONVERGED)
    assert res.settings["dtype"] == "float64"  # cast up from float32
    ten = rule_names()[:10]
    names = [r["rule"] for r in res.rows if r["param"] == "all"]
    assert set(ten) <= set(names) and names[-1] == "rbp"  # the reference comes last
    assert "rhel" not in names  # rules for other models are left out
    assert res.row("rbp")["rel_error"] == 0.0
    assert res.row("bptt")["rel_error"] < 1e-8
    assert res.row("ep-centered")["cosine"] > 0.99999
    assert res.row("ep-centered")["rel_error"] < res.row("ep-positive")["rel_error"] / 50
    assert res.row("cl")["cosine"] < 0.99  # contrastive learning follows another objective
    table = res.table()
    for name in ten:
        assert name in table
    assert json.loads(res.to_json())["reference"] == "rbp"


def test_compare_gradients_against_bptt_reference(tiny_batch):
    x, y = tiny_batch
    res = compare_gradients(make_net(output="ce"), x, y, rules=["rbp", "ep-centered"], reference="bptt",
                            beta=1e-3, **CONVERGED)
    assert res.row("rbp")["rel_error"] < 1e-8


@pytest.mark.parametrize("output", ["mse", "ce"])
def test_gdu_property(output, tiny_batch):
    """Per-step EP updates equal per-step BPTT gradients as beta -> 0 (Ernoult et al. 2019)."""
    x, y = tiny_batch
    model = make_net(output=output, gain=1.2)
    res = gdu_check(model, x, y, beta=1e-6, steps=12)
    assert min(res.cosine) >= 0.99
    assert max(res.rel_error) < 1e-3
    # the property is about beta -> 0: a large nudge breaks it measurably
    coarse = gdu_check(model, x, y, beta=0.5, steps=12)
    assert max(coarse.rel_error) > 10 * max(res.rel_error)


def test_gdu_plot_is_written(tiny_batch, tmp_path):
    x, y = tiny_batch
    res = gdu_check(make_net(), x, y, beta=1e-5, steps=5)
    res.plot(tmp_path / "gdu.png")
    assert (tmp_path / "gdu.png").stat().st_size > 5000
    assert res.ep.shape == res.bptt.shape == (5, sum(p.numel() for p in make_net().parameters()))
