"""The eqprop command as a user meets it: tables, results folders, and errors that list choices."""
import json

import pytest

from eqprop.cli import main
from eqprop.rules import rule_names

SMALL = ["data.name=mnist", "model.hidden=[16]", "rule.beta=0.01"]
pytestmark = pytest.mark.requires_data("mnist")


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
    (["gradcheck", "data.name=mnist", "--rules", "ep-sideways"], "valid rules: cl, ep, ep-positive"),
    (["gradcheck", "data.name=imagenet"], "fashion-mnist, "),
    (["gradcheck", "data.name=mnist", "model.name=resnet"], "valid models: "),
    (["train", "data.name=mnist", "rule.name=backprop"], "valid rules: cl, ep"),
    (["train", "run.epochz=3"], "unknown setting(s) 'epochz' in section 'run'"),
    (["train", "configs/nope.yaml"], "not found"),
])
def test_unknown_names_list_the_valid_ones(args, expected, capsys):
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_missing_dataset_says_where_to_get_it(tmp_path, capsys, monkeypatch):
    """CIFAR-100 is in no data root here: the error names the files, the places and the fix."""
    monkeypatch.setenv("EQPROP_DATA", str(tmp_path))
    assert main(["train", "data.name=cifar100", f"data.root={tmp_path}", f"run.out={tmp_path}/run"]) == 2
    err = capsys.readouterr().err
    assert "cifar-100-python" in err and str(tmp_path) in err and "EQPROP_DATA" in err


def test_train_writes_a_results_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "rule.beta=0.5", "run.epochs=1", "data.train_subset=1000", "data.test_subset=500",
                 "run.progress=false", f"run.out={out}"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and str(out) in text
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "curves.png", "summary.json"):
        assert (out / f).exists(), f


def test_gdu_command(tmp_path, capsys):
    assert main(["gdu", *SMALL, "--steps", "5", "--batch", "4", "--beta", "1e-6", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "gdu.json").read_text())
    assert data["min_cosine"] > 0.99 and (tmp_path / "gdu.png").exists()


def test_list_shows_components_with_their_defaults(capsys):
    assert main(["list", "rules"]) == 0
    out = capsys.readouterr().out
    assert "ep-centered" in out and "beta=0.2" in out and "backprop_steps=None" in out


def test_config_convert_prints_sections(tmp_path, capsys):
    p = tmp_path / "old.yaml"
    p.write_text("dataset: mnist\nrule: ep-centered\nbeta: 0.3\n")
    assert main(["config", "convert", str(p)]) == 0
    out = capsys.readouterr().out
    assert "data:" in out and "name: mnist" in out and "beta: 0.3" in out
