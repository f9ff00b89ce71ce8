"""Bringing your own model, data and rule: nothing in eqprop is edited."""
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import eqprop
from eqprop.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_own_data_example_reaches_95_percent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write into the current directory
    s = load_example("own_data").main(out=str(tmp_path / "run"), epochs=3)
    assert s["test_acc"] >= 0.95
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_own_model_gradient_is_rbps_and_fast_update_is_exact():
    mod = load_example("own_model")
    torch.manual_seed(0)
    model = mod.SkipHopfield((1, 6, 6), 10, hidden=[12, 8])
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 1, 6, 6, generator=g), torch.randint(0, 10, (8,), generator=g)
    assert mod.check_gradient(model, x, y) <= 1e-4
    # the skip coupling really carries gradient (a model without it would not need one)
    grads = eqprop.gradients(model.double(), x.double(), y, "rbp", free_steps=500, tol=1e-12)
    assert float(grads["skip.weight"].abs().max()) > 0


def test_own_model_trains_from_yaml_by_import_path(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    out = tmp_path / "run"
    assert main(["train", str(EXAMPLES / "own_model.yaml"), "data.train_subset=2000", "data.test_subset=1000",
                 f"run.out={out}", "run.progress=false"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == "own_model:SkipHopfield" and s["test_acc"] >= 0.6  # chance is 0.1


MY_RULE = '''
from dataclasses import dataclass
from typing import ClassVar

import eqprop
from eqprop.rules import EP


@eqprop.register_rule("scaled-ep")
@dataclass
class ScaledEP(EP):
    """Centered EP whose estimate is multiplied by ``gain`` (a new setting)."""

    name: ClassVar[str] = "scaled-ep"
    gain: float = 1.0

    def estimate(self, model, x, y, state=None):
        grads, result = super().estimate(model, x, y, state)
        return {k: self.gain * g for k, g in grads.items()}, result
'''


@pytest.mark.parametrize("name", ["myrules:ScaledEP", "scaled-ep"])
def test_a_new_estimator_with_a_new_setting_runs_from_yaml(tmp_path, monkeypatch, name):
    (tmp_path / "myrules.py").write_text(textwrap.dedent(MY_RULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import myrules  # noqa: F401  (the decorator registers "scaled-ep"; the import path needs no registration)

    cfg = tmp_path / "mine.yaml"
    cfg.write_text(f"data: {{name: fashion-mnist, train_subset: 2000, test_subset: 500}}\n"
                   f"model: {{name: hopfield-mlp, hidden: [32], output: ce}}\n"
                   f"rule: {{name: '{name}', gain: 0.5, beta: 0.5, free_steps: 10, nudge_steps: 4}}\n"
                   f"optim: {{name: sgd, lr: [0.1, 0.05], momentum: 0.9}}\n"
                   f"run: {{epochs: 1, out: {tmp_path / 'run'}, progress: false}}\n")
    assert main(["train", str(cfg)]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test_acc"] > 0.3
    # the new setting does what it says: half of centered EP's estimate
    from eqprop.config import load_config, entry

    c = load_config(cfg)
    rule = entry("rule", c.rule).build(c.settings("rule"))
    torch.manual_seed(0)
    model = eqprop.models.HopfieldMLP([784, 16, 10], output="ce").double()
    x, y = torch.rand(4, 784, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    ref = eqprop.rules.EP(variant="centered", beta=0.5, free_steps=10, nudge_steps=4).estimate(model, x, y)[0]
    mine = rule.estimate(model, x, y)[0]
    for k in ref:
        torch.testing.assert_close(mine[k], 0.5 * ref[k])
    # and an unknown setting lists it among the valid ones
    with pytest.raises(eqprop.ConfigError, match="valid settings: .*gain"):
        load_config(cfg, ["rule.gane=1"])
