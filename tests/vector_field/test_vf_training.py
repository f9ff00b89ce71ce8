"""The trainer with a vector-field model and the homeostasis term; gradcheck lists the new rules."""
import json

import pytest

from eqprop.cli import main
from eqprop.config import load_config
from eqprop.training import train


@pytest.mark.requires_data("mnist")
def test_trainer_homeostasis_lowers_the_logged_asymmetry(tmp_path):
    asym = {}
    for lam in (0.0, 0.03):
        cfg = load_config("configs/mnist_vf_homeostasis.yaml", [
            f"run.out={tmp_path}/h{lam}", "data.train_subset=1000", "data.test_subset=200", "run.epochs=1",
            "run.progress=false", "model.hidden=[32]", f"model.homeostasis={lam}"])
        s = train(cfg)
        assert s["test_acc"] > 0.3  # chance is 0.1
        rec = [json.loads(line) for line in open(f"{tmp_path}/h{lam}/metrics.jsonl")][-1]
        asym[lam] = rec["jacobian_asymmetry"]
    assert asym[0.03] < 0.8 * asym[0.0], asym


@pytest.mark.requires_data("mnist", "fashion-mnist")
def test_gradcheck_lists_the_new_rules(capsys):
    assert main(["gradcheck", "configs/mnist_vf_homeostasis.yaml", "model.activation=sigmoid", "model.hidden=[16]",
                 "--batch", "4", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    for rule in ("hep", "cep", "ep-centered", "rbp"):
        assert f"\n{rule} " in out, rule
    assert "ffebm" not in out  # a chain-only rule does not apply to a single network
    assert main(["gradcheck", "configs/fashion_mnist_ffebm.yaml", "model.conv_channels=[2]", "model.hidden=[8, 6]",
                 "--batch", "2", "--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "\nffebm " in out and "ffebm-implicit" in out
