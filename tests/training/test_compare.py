"""eqprop compare: the nine-rule grid on a small MNIST subset, its table, and resuming."""
import json

import pytest
import yaml

from eqprop.cli import main
from eqprop.training.compare import load_compare_config, run_compare

pytestmark = pytest.mark.requires_data("mnist")

RULES = "rules=[cl,ep-positive,ep-negative,ep-centered,cpl-positive,cpl-negative,cpl-centered," \
        "{name: bptt, backprop_steps: 8, label: tbptt},rbp]"
GRID = [RULES, "datasets=[mnist]", "seeds=[0]", "model.hidden=[32]", "run.epochs=1", "data.train_subset=1500",
        "rule.beta=0.2", "rule.free_steps=20", "rule.nudge_steps=8", "data.test_subset=1000", "run.batch_size=50",
        "optim.lr=[0.1,0.05]", "optim.momentum=0.9"]
LABELS = ["cl", "ep-positive", "ep-negative", "ep-centered", "cpl-positive", "cpl-negative", "cpl-centered",
          "tbptt", "rbp"]


def test_nine_rule_grid_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["compare", *GRID, f"out={out}"]) == 0
    table = (out / "results.md").read_text()
    for rule in LABELS:
        assert f"| {rule} |" in table
    agg = json.loads((out / "results.json").read_text())["aggregate"]["mnist"]
    assert set(agg) == set(LABELS)
    assert agg["ep-centered"]["mean"] > 60 and agg["tbptt"]["mean"] > 60  # chance is 10
    assert (out / "results.png").stat().st_size > 5000
    saved = json.loads((out / "mnist" / "tbptt" / "seed0" / "summary.json").read_text())
    assert saved["rule"] == "bptt"

    # a second invocation trains nothing: every cell is read back from its summary
    calls = []
    cfg = load_compare_config(None, [*GRID, f"out={out}"])
    run_compare(cfg, train=lambda c: calls.append(c))
    assert calls == []
    # one more seed: only the new cells run
    cfg = load_compare_config(None, [*GRID, f"out={out}", "seeds=[0,1]", "rules=[ep-centered]"])
    ran = []
    run_compare(cfg, train=lambda c: ran.append(c) or {"dataset": "mnist", "rule": c.rule["name"], "test_acc": 0.5,
                                                        "train_time_s": 1.0, "epochs": c.run["epochs"]})
    assert [(c.rule["name"], c.run["seed"]) for c in ran] == [("ep-centered", 1)]


def test_a_cell_with_another_configuration_is_rerun_and_the_old_one_kept(tmp_path):
    out = tmp_path / "grid"
    small = [f"out={out}", "rules=[ep-centered]", "datasets=[mnist]", "model.hidden=[16]", "run.epochs=1",
             "data.train_subset=200", "data.test_subset=100", "rule.free_steps=5", "rule.nudge_steps=2"]
    run_compare(load_compare_config(None, small))
    ran = []
    fake = lambda c: ran.append(c) or {"dataset": "mnist", "rule": "ep-centered", "test_acc": 0.5,  # noqa: E731
                                       "train_time_s": 1.0, "epochs": 1}
    run_compare(load_compare_config(None, [*small, "rule.beta=0.3"]), train=fake)
    assert len(ran) == 1  # the beta changed: the cell runs again...
    assert list((out / "mnist" / "ep-centered").glob("seed0.old-*"))  # ...and the old run is moved aside


def test_a_setting_added_since_a_cell_ran_does_not_rerun_it(tmp_path):
    """A record without a setting a component gained later (at its default) is the same configuration;
    a record with a setting the components no longer take is another one."""
    out = tmp_path / "grid"
    small = [f"out={out}", "rules=[ep-centered]", "datasets=[mnist]", "model.hidden=[16]", "run.epochs=1",
             "data.train_subset=200", "data.test_subset=100", "rule.free_steps=5", "rule.nudge_steps=2"]
    run_compare(load_compare_config(None, small))
    saved = out / "mnist" / "ep-centered" / "seed0" / "config.yaml"
    recorded = yaml.safe_load(saved.read_text())
    assert recorded["model"].pop("expand_output") == 1  # as written before hopfield-mlp had the setting
    saved.write_text(yaml.safe_dump(recorded))
    ran = []
    fake = lambda c: ran.append(c) or {"dataset": "mnist", "rule": "ep-centered", "test_acc": 0.5,  # noqa: E731
                                       "train_time_s": 1.0, "epochs": 1}
    run_compare(load_compare_config(None, small), train=fake)
    assert ran == [] and not list(saved.parent.parent.glob("seed0.old-*"))

    recorded["model"]["retired_setting"] = 3  # a setting since removed: not this configuration
    saved.write_text(yaml.safe_dump(recorded))
    run_compare(load_compare_config(None, small), train=fake)
    assert len(ran) == 1 and list(saved.parent.parent.glob("seed0.old-*"))


def test_grid_config_errors(tmp_path, capsys):
    p = tmp_path / "g.yaml"
    p.write_text("rulez: [cl]\n")
    assert main(["compare", str(p)]) == 2
    assert "unknown compare key(s) rulez" in capsys.readouterr().err
    assert main(["compare", "rules=[ep-sideways]", f"out={tmp_path}"]) == 2
    assert "valid rules" in capsys.readouterr().err
    assert main(["compare", "rules=[rbp]", "rule.beta=0.1", f"out={tmp_path}"]) == 2
    assert "taken by no rule of the grid" in capsys.readouterr().err
