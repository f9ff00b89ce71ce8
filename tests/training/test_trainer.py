"""The Trainer on real MNIST: it learns, resumes exactly, and stops cleanly on divergence."""
import json

import pytest
import torch

from eqprop.config import load_config
from eqprop.training import DivergenceError, Trainer, load_checkpoint

SMALL = ["dataset=mnist", "hidden=[64]", "train_subset=4000", "test_subset=1000", "batch_size=50",
         "progress=false", "lr=[0.1,0.05]"]


def cfg(tmp_path, *extra):
    return load_config(None, SMALL + [f"out={tmp_path}/run", *extra])


def test_short_real_run_beats_chance_by_far(tmp_path):
    summary = Trainer(cfg(tmp_path, "epochs=2")).fit()
    assert summary["test_acc"] >= 0.80  # chance is 0.10
    out = tmp_path / "run"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2]
    assert json.loads((out / "summary.json").read_text())["test_acc"] == summary["test_acc"]
    assert (out / "curves.png").stat().st_size > 5000
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("rule", ["bptt", "rbp", "cl", "cpl-centered", "ep-positive"])
def test_every_rule_family_trains(rule, tmp_path):
    s = Trainer(cfg(tmp_path, f"rule={rule}", "epochs=1", "train_subset=2000", "beta=0.5")).fit()
    assert s["test_acc"] >= 0.5, (rule, s["test_acc"])


def test_resume_continues_exactly(tmp_path):
    """One epoch, stop, rerun asking for two: the weights equal those of two epochs straight."""
    common = ["epochs=2", "train_subset=1000", "schedule=none"]
    straight = Trainer(cfg(tmp_path, *common, f"out={tmp_path}/a"))
    straight.fit()
    Trainer(cfg(tmp_path, *common, "epochs=1", f"out={tmp_path}/b")).fit()
    resumed = Trainer(cfg(tmp_path, *common, f"out={tmp_path}/b"))
    resumed.fit()
    assert resumed.epoch == 2 and [h["epoch"] for h in resumed.history] == [1, 2]
    for (n, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)


def test_resume_refuses_another_architecture(tmp_path):
    Trainer(cfg(tmp_path, "epochs=1", "train_subset=500")).fit()
    with pytest.raises(ValueError, match=r"another model.*layers.0.weight \(64, 784\) \(now \(32, 784\)\)"):
        Trainer(cfg(tmp_path, "epochs=2", "train_subset=500", "hidden=[32]")).fit()


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    Trainer(cfg(tmp_path, "epochs=1", "train_subset=500")).fit()
    before = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    # resuming restores the optimizer (and its lr); a loss ceiling below any loss trips the check
    t = Trainer(cfg(tmp_path, "epochs=2", "train_subset=500", "max_loss=1e-9"))
    with pytest.raises(DivergenceError, match="diverged at epoch 2.*last good checkpoint \\(epoch 1\\).*Lower lr"):
        t.fit()
    after = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert after["epoch"] == 1
    for k in before:
        assert torch.equal(before[k], after["model"][k])


def test_nan_is_caught_before_any_checkpoint(tmp_path):
    t = Trainer(cfg(tmp_path, "epochs=1", "train_subset=500", "lr=inf"))
    with pytest.raises(DivergenceError, match="loss=nan.*no epoch had completed"):
        t.fit()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_lr_per_coupling_is_checked(tmp_path):
    with pytest.raises(ValueError, match="lr has 3 values but the model has 2 couplings"):
        Trainer(cfg(tmp_path, "lr=[0.1,0.1,0.1]"))


def test_conv_hopfield_with_normalisation_and_augmentation_trains(tmp_path):
    """The DCHN path of the trainer: standardised, cropped and flipped MNIST, bf16 relaxations."""
    t = Trainer(cfg(tmp_path, "model=conv-hopfield", "conv_channels=[8,16]", "gains=[0.5,0.5,0.5]", "lr=[0.05]",
                    "free_steps=10", "nudge_steps=4", "beta=0.2", "train_subset=3000", "test_subset=500",
                    "normalize=true", "augment=true", "relax_dtype=bfloat16", "epochs=2"))
    x = t.train.x
    assert x.shape[1:] == (1, 28, 28)
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05  # train statistics
    assert t.fit()["test_acc"] >= 0.7  # chance is 0.1


def test_image_options_on_sequences_are_refused(tmp_path):
    with pytest.raises(ValueError, match="augment=true crops and flips images"):
        Trainer(cfg(tmp_path, "dataset=basicmotions", "model=hssm", "rule=rhel", "augment=true"))
    with pytest.raises(ValueError, match="needs images"):
        Trainer(cfg(tmp_path, "dataset=basicmotions", "model=conv-hopfield", "conv_channels=[4]"))


def test_warm_start_keeps_each_samples_free_state(tmp_path):
    t = Trainer(cfg(tmp_path, "warm_start=true", "free_steps=5", "epochs=2", "train_subset=2000"))
    s = t.fit()
    assert bool(t.bank.seen.all()) and t.bank.layers[0].shape == (2000, 64)
    assert s["test_acc"] >= 0.8
    with pytest.raises(ValueError, match="warm_start=true needs a rule"):
        Trainer(cfg(tmp_path, "warm_start=true", "rule=rbp"))
