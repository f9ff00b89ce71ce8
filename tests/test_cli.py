"""The eqprop command as a user meets it: tables, results folders, and errors that list choices."""
import json

import pytest

from eqprop.cli import main
from eqprop.rules import rule_names

SMALL = ["dataset=mnist", "hidden=[16]", "beta=0.01"]


def test_gradcheck_prints_all_ten_rules(capsys):
    assert main(["gradcheck", *SMALL, "--batch", "4", "--steps", "300", "--tol", "1e-12"]) == 0
    out = capsys.readouterr().out
    for name in rule_names()[:10]:  # the EP family and its references (later rules need other models)
        assert f"\n{name} " in out
    assert "cosine" in out and "rel. error" in out and "norm ratio" in out


def test_gradcheck_json(capsys):
    assert main(["gradcheck", *SMALL, "--rules", "ep-centered,bptt", "--batch", "4", "--steps", "300", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["rule"], r["param"]): r for r in data["rows"]}
    assert rows[("ep-centered", "all")]["cosine"] > 0.999
    assert rows[("bptt", "all")]["rel_error"] < 1e-6


@pytest.mark.parametrize("args,expected", [
    (["gradcheck", "dataset=mnist", "--rules", "ep-sideways"], "valid rules: cl, ep-positive"),
    (["gradcheck", "dataset=imagenet"], "fashion-mnist, "),
    (["gradcheck", "dataset=mnist", "model=resnet"], "valid models: "),
    (["train", "dataset=mnist", "rule=backprop"], "valid rules: cl"),
    (["train", "epochz=3"], "unknown config key 'epochz'"),
    (["train", "configs/nope.yaml"], "not found"),
])
def test_unknown_names_list_the_valid_ones(args, expected, capsys):
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_missing_dataset_says_where_to_get_it(tmp_path, capsys):
    """CIFAR-100 is in no data root here: the error names the files, the places and the fix."""
    assert main(["train", "dataset=cifar100", f"data_root={tmp_path}", f"out={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert "cifar-100-python" in err and str(tmp_path) in err and "EQPROP_DATA" in err


def test_train_writes_a_results_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "beta=0.5", "epochs=1", "train_subset=1000", "test_subset=500",
                 "progress=false", f"out={out}"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and str(out) in text
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "curves.png", "summary.json"):
        assert (out / f).exists(), f


def test_gdu_command(tmp_path, capsys):
    assert main(["gdu", *SMALL, "--steps", "5", "--batch", "4", "--beta", "1e-6", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "gdu.json").read_text())
    assert data["min_cosine"] > 0.99 and (tmp_path / "gdu.png").exists()
