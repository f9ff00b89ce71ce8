"""SilentUnits: the logged fraction of hidden units that never emitted anything in an epoch equals
the fraction counted directly from the free states of every training sample, for hard-sigmoid
units (state 0) and for binary neurons (bit 0); and ``run.silent_units`` switches it on."""
import pytest
import torch

from eqprop.config import load_config
from eqprop.diagnostics.silent_units import SilentUnits
from eqprop.dynamics import relax
from eqprop.models import HopfieldMLP
from eqprop.models.binary import StepHopfieldMLP, binarize
from eqprop.registry import ConfigError
from eqprop.rules import EP
from eqprop.training import Trainer
from tests.conftest import float64_one_thread as _f64

float64_one_thread = pytest.fixture(_f64)


def _data(n=96, d=12, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2 * torch.rand(k, d, generator=g)
    y = torch.arange(n) % k
    return (centers[y] + 0.3 * torch.randn(n, d, generator=g)).clamp(0, 1).double(), y


def _silence(model, layer: int, units: list[int]):
    """Drive some units of hidden ``layer`` far below 0 from their input side."""
    with torch.no_grad():
        model.layers[layer].bias[units] = -100.0


def _counted(model, x, steps, mode, emit):
    """Per hidden layer, the fraction of units whose emitted value is 0 for every sample."""
    state = relax(model, x, steps=steps, mode=mode).state
    return [float(emit(s).eq(0).all(0).double().mean()) for s in state[:-1]]


@pytest.mark.parametrize("kind", ["hard-sigmoid", "binary"])
def test_logged_fraction_equals_the_direct_count(kind, float64_one_thread, tmp_path):
    torch.manual_seed(0)
    x, y = _data()
    if kind == "hard-sigmoid":
        model, mode, emit = HopfieldMLP([12, 16, 8, 3]).double(), "async", (lambda s: s)
    else:
        model = binarize(StepHopfieldMLP([12, 16, 8, 3], expand_output=2)).double()
        mode, emit = "sync", model.rho
    _silence(model, 0, [0, 1, 2])
    _silence(model, 1, [5])
    rule = EP(beta=0.5, free_steps=20, nudge_steps=5, mode=mode, variant="positive")
    # lr 0: the weights stay those the direct count sees
    t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.0), (x, y), None,
                callbacks=[SilentUnits()], epochs=1, batch_size=16, out=str(tmp_path / kind), progress=False,
                dtype="float64")
    t.fit()
    want = _counted(model, x, 20, mode, emit)
    got = [t.history[-1][f"silent_units/{i}"] for i in range(2)]
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] >= 3 / 16 and got[1] >= 1 / 8  # the silenced units at least
    assert "silent_units/2" not in t.history[-1]  # the output layer is not hidden


def test_a_model_without_layers_of_units_is_refused_before_training(tmp_path):
    class NoLayers(torch.nn.Module):
        pass

    class Tr:
        model = NoLayers()

    with pytest.raises(ConfigError, match="run.silent_units=false"):
        SilentUnits().on_fit_start(Tr())


@pytest.mark.requires_data("fashion-mnist")
def test_run_setting_switches_it_on(tmp_path):
    cfg = load_config(None, ["data.name=fashion-mnist", "data.train_subset=256", "data.test_subset=100",
                             "model.hidden=[16]", "rule.free_steps=5", "rule.nudge_steps=2", "run.epochs=1",
                             "run.batch_size=64", "run.progress=false", "run.silent_units=true",
                             f"run.out={tmp_path}/run"])
    t = Trainer.from_config(cfg)
    t.fit()
    assert 0.0 <= t.history[-1]["silent_units/0"] <= 1.0
