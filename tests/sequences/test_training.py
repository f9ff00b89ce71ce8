"""Short real training runs and the CLI on sequence data."""
import json

import pytest

from eqprop.cli import main
from eqprop.config import load_config
from eqprop.training import Trainer


@pytest.mark.slow
@pytest.mark.requires_data("basicmotions")
@pytest.mark.parametrize("rule", ["rhel", "bptt"])
def test_hssm_learns_basicmotions(tmp_path, rule):
    cfg = load_config("configs/basicmotions_hssm_rhel.yaml", [
        f"rule.name={rule}", "run.epochs=10", "model.d_model=16", f"run.out={tmp_path}", "run.progress=false",
        "run.resume=false"])
    summary = Trainer.from_config(cfg).fit()
    assert summary["test_acc"] >= 0.7  # chance is 0.25


@pytest.mark.requires_data("japanesevowels")
def test_gradcheck_cli_on_sequence_model(capsys):
    code = main(["gradcheck", "configs/japanesevowels_hssm_rhel.yaml", "model.d_model=8", "--batch", "6", "--json"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["reference"] == "bptt" and res["settings"]["dtype"] == "float64"
    rows = {r["param"]: r for r in res["rows"] if r["rule"] == "rhel"}
    assert rows["all"]["rel_error"] <= 1e-6 and "blocks.1.hru.dt_raw" in rows
    assert all(abs(r["norm_ratio"] - 1) < 1e-6 for r in rows.values())


@pytest.mark.requires_data("basicmotions")
def test_cli_errors_for_wrong_model_data_pairing(capsys):
    assert main(["gradcheck", "data.name=basicmotions", "model.name=hopfield-mlp", "--rules", "rhel", "--batch", "2"]) == 2
    assert "Hamiltonian state-space" in capsys.readouterr().err
