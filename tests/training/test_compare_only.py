"""eqprop compare's ``only``: run (and tabulate) some rows of a grid, leave the others alone."""
import json

import pytest

from eqprop.cli import main
from eqprop.training.compare import load_compare_config, run_compare

GRID = ["rules=[ep-centered,{name: bptt, label: full-bptt},cl]", "datasets=[mnist]", "seeds=[0,1]",
        "model.hidden=[8]", "run.epochs=1"]


def fake(ran):
    return lambda c: ran.append(c) or {"dataset": "mnist", "rule": c.rule["name"], "test_acc": 0.5,
                                       "train_time_s": 1.0, "epochs": c.run["epochs"]}


def test_only_runs_the_named_rows_and_tabulates_them(tmp_path):
    out = tmp_path / "grid"
    ran = []
    run_compare(load_compare_config(None, [*GRID, f"out={out}", "only=[full-bptt, cl]"]), train=fake(ran))
    assert [(c.rule["name"], c.run["seed"]) for c in ran] == [("bptt", 0), ("bptt", 1), ("cl", 0), ("cl", 1)]
    assert not (out / "mnist" / "ep-centered").exists()
    table = (out / "results.md").read_text()
    assert "| full-bptt |" in table and "| cl |" in table and "ep-centered" not in table
    assert set(json.loads((out / "results.json").read_text())["aggregate"]["mnist"]) == {"full-bptt", "cl"}

    # a single label may be given bare; the other rows' settings still resolve (and are checked)
    cfg = load_compare_config(None, [*GRID, f"out={out}", "only=ep-centered"])
    assert [(c.label, c.seed) for c in cfg.cells()] == [("ep-centered", 0), ("ep-centered", 1)]


def test_only_with_a_label_the_grid_lacks_is_an_error(tmp_path, capsys):
    assert main(["compare", *GRID, f"out={tmp_path}", "only=[bptt]"]) == 2  # the row's label is full-bptt
    err = capsys.readouterr().err
    assert "only: bptt names no row of the grid" in err and "ep-centered, full-bptt, cl" in err
    with pytest.raises(Exception, match="an empty list"):
        load_compare_config(None, [*GRID, f"out={tmp_path}", "only=[]"])
