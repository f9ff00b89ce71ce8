"""eqprop.diagnostics.check_model: the contract checks of a user's model, able to fail."""
import pytest
import torch

from eqprop.diagnostics import check_model
from eqprop.models import ConvHopfield, HopfieldMLP
from eqprop.rules import CL, EP

FAST = dict(steps=400, directions=2)


def _net(cls=HopfieldMLP, output="mse"):
    torch.manual_seed(0)
    return cls([12, 10, 8, 4], output=output, gains=[1.5] * (3 if output == "mse" else 3))


def _value(report, check):
    return next(r for r in report.rows if r["check"] == check)


def test_a_correct_model_passes_with_numbers_against_the_truth():
    report = check_model(_net(), rule=EP(beta=1e-3, free_steps=400, nudge_steps=400, tol=1e-13), **FAST)
    assert report.ok, report.table()
    assert _value(report, "update = autograd")["value"] <= 1e-12
    assert _value(report, "finite differences")["value"] <= 1e-6
    assert _value(report, "rbp")["value"] > 1e-2
    ep = _value(report, "ep vs rbp")
    assert ep["ok"] and ep["value"] <= 1e-4
    assert "FAIL" not in report.table()


def test_a_conv_model_passes():
    torch.manual_seed(0)
    assert check_model(ConvHopfield((1, 8, 8), [4, 4], 3), **FAST).ok


class WrongUpdate(HopfieldMLP):
    """Forgets the feedback from the layer above: no longer the energy's minimiser."""

    def layer_update(self, i, state, ctx, force=None):
        u = ctx.input_drive if i == 0 else self.layers[i](state[i - 1])
        return self.activation(u if force is None else u + force)


def test_a_wrong_fast_update_is_flagged_and_strict_raises():
    with pytest.warns(UserWarning, match="update = autograd"):
        report = check_model(_net(WrongUpdate), **FAST)
    assert not report.ok
    assert [r["check"] for r in report.failures()] == ["update = autograd"]
    assert _value(report, "update = autograd")["value"] > 1e-3
    with pytest.raises(ValueError, match="FAIL"):
        check_model(_net(WrongUpdate), strict=True, **FAST)


def test_a_rule_that_refuses_the_model_is_a_failure_naming_the_fix():
    with pytest.warns(UserWarning):
        report = check_model(_net(output="ce"), rule=CL(), **FAST)
    (fail,) = report.failures()
    assert fail["check"] == "cl: check_model" and "output='mse'" in fail["detail"]


class AutogradHopfield(HopfieldMLP):
    layer_update = HopfieldMLP.autograd_layer_update


def test_an_autograd_update_model_passes_every_check():
    report = check_model(_net(AutogradHopfield), steps=300, directions=1)
    assert report.ok, report.table()
    assert _value(report, "update = autograd")["value"] == 0.0
    assert _value(report, "bptt vs rbp")["value"] <= 1e-10
