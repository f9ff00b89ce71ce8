"""eqprop compare: the nine-rule grid on a small MNIST subset, its table, and resuming."""
import json

from eqprop.cli import main
from eqprop.training.compare import COMPARATIVE_STUDY_RULES, load_compare_config, run_compare

GRID = ["datasets=[mnist]", "seeds=[0]", "hidden=[32]", "epochs=1", "train_subset=1500", "beta=0.2",
        "test_subset=1000", "batch_size=50", "lr=[0.1,0.05]"]


def test_nine_rule_grid_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["compare", *GRID, f"out={out}"]) == 0
    table = (out / "results.md").read_text()
    for rule in COMPARATIVE_STUDY_RULES:
        assert f"| {rule} |" in table
    agg = json.loads((out / "results.json").read_text())["aggregate"]["mnist"]
    assert set(agg) == set(COMPARATIVE_STUDY_RULES)
    assert agg["ep-centered"]["mean"] > 60 and agg["bptt"]["mean"] > 60  # chance is 10
    assert (out / "results.png").stat().st_size > 5000

    # a second invocation trains nothing: every cell is read back from its summary
    calls = []
    cfg = load_compare_config(None, [*GRID, f"out={out}"])
    run_compare(cfg, train=lambda c: calls.append(c))
    assert calls == []
    # one more seed: only the new cells run
    cfg = load_compare_config(None, [*GRID, f"out={out}", "seeds=[0,1]", "rules=[ep-centered]"])
    ran = []
    run_compare(cfg, train=lambda c: ran.append(c) or {"dataset": c.dataset, "rule": c.rule, "test_acc": 0.5,
                                                        "train_time_s": 1.0, "epochs": c.epochs})
    assert [(c.rule, c.seed) for c in ran] == [("ep-centered", 1)]


def test_grid_config_errors(tmp_path, capsys):
    p = tmp_path / "g.yaml"
    p.write_text("rulez: [cl]\n")
    assert main(["compare", str(p)]) == 2
    assert "unknown compare key(s) rulez" in capsys.readouterr().err
    assert main(["compare", "rules=[ep-sideways]", f"out={tmp_path}"]) == 2
    assert "valid rules" in capsys.readouterr().err
