"""The Trainer on real MNIST: it learns, resumes exactly, and stops cleanly on divergence."""
import json

import pytest
import torch

from eqprop.config import load_config
from eqprop.registry import ConfigError
from eqprop.training import DivergenceError, Trainer, load_checkpoint

pytestmark = pytest.mark.requires_data("mnist")

SMALL = ["data.name=mnist", "model.hidden=[64]", "data.train_subset=4000", "data.test_subset=1000",
         "run.batch_size=50", "run.progress=false", "optim.lr=[0.1,0.05]", "optim.momentum=0.9",
         "rule.beta=0.5", "rule.free_steps=20", "rule.nudge_steps=8"]


def cfg(tmp_path, *extra):
    return load_config(None, SMALL + [f"run.out={tmp_path}/run", *extra])


def trainer(tmp_path, *extra):
    if "model.name=conv-hopfield" in extra:  # another model: its own settings
        return Trainer.from_config(load_config(None, [s for s in SMALL if not s.startswith("model.")] +
                                               [f"run.out={tmp_path}/run", *extra]))
    return Trainer.from_config(cfg(tmp_path, *extra))


def test_short_real_run_beats_chance_by_far(tmp_path):
    summary = trainer(tmp_path, "run.epochs=2").fit()
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
    extra = [] if rule in ("bptt", "rbp", "cl") else ["rule.beta=0.5"]
    c = load_config(None, [s for s in SMALL if not s.startswith("rule.")] +
                    [f"run.out={tmp_path}/run", f"rule.name={rule}", "rule.free_steps=20", "run.epochs=1",
                     "data.train_subset=2000", *extra])
    s = Trainer.from_config(c).fit()
    assert s["test_acc"] >= 0.5, (rule, s["test_acc"])


def test_resume_continues_exactly(tmp_path):
    """One epoch, stop, rerun asking for two: the weights equal those of two epochs straight."""
    common = ["data.train_subset=1000", "optim.schedule=none"]
    straight = trainer(tmp_path, *common, "run.epochs=2", f"run.out={tmp_path}/a")
    straight.fit()
    trainer(tmp_path, *common, "run.epochs=1", f"run.out={tmp_path}/b").fit()
    resumed = trainer(tmp_path, *common, "run.epochs=2", f"run.out={tmp_path}/b")
    resumed.fit()
    assert resumed.epoch == 2 and [h["epoch"] for h in resumed.history] == [1, 2]
    for (n, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2]


def test_resume_refuses_another_architecture(tmp_path):
    trainer(tmp_path, "run.epochs=1", "data.train_subset=500").fit()
    with pytest.raises(ConfigError, match=r"another model.*layers.0.weight \(64, 784\) \(now \(32, 784\)\)"):
        trainer(tmp_path, "run.epochs=2", "data.train_subset=500", "model.hidden=[32]").fit()


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    trainer(tmp_path, "run.epochs=1", "data.train_subset=500").fit()
    before = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    t = trainer(tmp_path, "run.epochs=2", "data.train_subset=500", "run.max_loss=1e-9")
    with pytest.raises(DivergenceError, match=r"diverged at epoch 2.*last good checkpoint \(epoch 1\).*Lower the learning rate"):
        t.fit()
    after = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert after["epoch"] == 1
    for k in before:
        assert torch.equal(before[k], after["model"][k])


def test_nan_is_caught_before_any_checkpoint(tmp_path):
    t = trainer(tmp_path, "run.epochs=1", "data.train_subset=500", "optim.lr=1e30", "optim.momentum=0")
    with pytest.raises(DivergenceError, match="no epoch had completed"):
        t.fit()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_lr_per_coupling_is_checked(tmp_path):
    with pytest.raises(ValueError, match="lr has 3 values but the model has 2 couplings"):
        trainer(tmp_path, "optim.lr=[0.1,0.1,0.1]")


def test_conv_hopfield_with_normalisation_and_augmentation_trains(tmp_path):
    """The DCHN path of the trainer: standardised, cropped and flipped MNIST, bf16 relaxations."""
    t = trainer(tmp_path, "model.name=conv-hopfield", "model.channels=[8,16]", "model.gains=[0.5,0.5,0.5]",
                "optim.lr=[0.05]", "rule.free_steps=10", "rule.nudge_steps=4", "rule.beta=0.2",
                "data.train_subset=3000", "data.test_subset=500", "data.normalize=true", "data.augment=true",
                "rule.relax_dtype=bfloat16", "run.epochs=2")
    x = t.train[0]
    assert x.shape[1:] == (1, 28, 28)
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05  # train statistics
    assert t.fit()["test_acc"] >= 0.7  # chance is 0.1


@pytest.mark.requires_data("basicmotions")
def test_image_options_on_sequences_are_refused(tmp_path):
    with pytest.raises(ValueError, match="augment=true crops and flips images"):
        Trainer.from_config(load_config(None, ["data.name=basicmotions", "model.name=hssm", "rule.name=rhel",
                                               "data.augment=true", f"run.out={tmp_path}/r"]))
    with pytest.raises(ValueError, match="needs images"):
        Trainer.from_config(load_config(None, ["data.name=basicmotions", "model.name=conv-hopfield",
                                               "model.channels=[4]", f"run.out={tmp_path}/r"]))


def test_warm_start_keeps_each_samples_free_state(tmp_path):
    t = trainer(tmp_path, "rule.warm_start=true", "rule.free_steps=5", "run.epochs=2", "data.train_subset=2000")
    s = t.fit()
    (bank,) = [cb.bank for cb in t.callbacks if type(cb).__name__ == "WarmStart"]
    assert bool(bank.seen.all()) and bank.layers[0].shape == (2000, 64)
    assert s["test_acc"] >= 0.8
    with pytest.raises(ConfigError, match=r"'warm_start' in section 'rule' for rule 'rbp'"):
        cfg(tmp_path, "rule.name=rbp", "rule.warm_start=true")


def test_loggers_csv_and_per_step_jsonl(tmp_path):
    trainer(tmp_path, "run.epochs=2", "data.train_subset=500", "run.loggers=[jsonl,csv]", "run.log_every=3").fit()
    out = tmp_path / "run"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_acc") and len(rows) == 3
    steps = [json.loads(s) for s in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 3, 6, 9, 12, 15, 18]  # 10 batches per epoch
    assert all(s["free_steps"] == 20 and s["beta"] in (0.5, -0.5) for s in steps), steps[0]  # the rule's stats


def test_a_run_without_test_data_still_writes_its_folder(tmp_path):
    """Tensors in, no test split: the run trains, and the curves show the training split only."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 12, generator=g), torch.randint(0, 3, (256,), generator=g)
    model = __import__("eqprop").models.HopfieldMLP([12, 8, 3])
    rule = __import__("eqprop").rules.EP(beta=0.5, free_steps=5, nudge_steps=2)
    t = Trainer(model, rule, torch.optim.SGD(model.parameters(), lr=0.05), (x, y), epochs=2, batch_size=32,
                out=str(tmp_path / "run"), progress=False)
    s = t.fit()
    assert s["test_acc"] is None and s["epochs"] == 2 and (tmp_path / "run" / "curves.png").exists()


@pytest.mark.parametrize("rule, names, not_named", [
    ("ep-centered", ["rule.beta, now 0.5", "rule.free_steps (now 6)"], ["gradcheck"]),
    ("rbp", ["rule.free_steps (now 6)", "--rules rbp --reference bptt"], ["rule.beta"]),
])
def test_the_divergence_message_names_only_the_rules_own_settings(tmp_path, rule, names, not_named):
    base = [a for a in SMALL if rule != "rbp" or not a.startswith(("rule.beta", "rule.nudge_steps"))]
    t = Trainer.from_config(load_config(None, [*base, f"run.out={tmp_path}/run", "run.epochs=1", "data.train_subset=200",
                                               "run.max_loss=1e-9", f"rule.name={rule}", "rule.free_steps=6"]))
    with pytest.raises(DivergenceError) as e:
        t.fit()
    msg = str(e.value)
    assert msg.startswith("training diverged at epoch 1") and "Lower the learning rate (optim.lr, now" in msg
    assert all(n in msg for n in names) and not any(n in msg for n in not_named), msg


@pytest.mark.parametrize("lr", ["1e30", "0.05"])
def test_deferred_checks_give_the_same_divergence_error_and_the_same_run(tmp_path, lr):
    # the GPU path (checks read at log points, no host sync per batch), forced on the CPU
    args = ("run.epochs=1", "data.train_subset=500", f"optim.lr={lr}", "optim.momentum=0")
    a, b = trainer(tmp_path, *args, f"run.out={tmp_path}/a"), trainer(tmp_path, *args, f"run.out={tmp_path}/b")
    b.defer_checks = True
    if lr == "1e30":
        for t in (a, b):
            with pytest.raises(DivergenceError, match=r"diverged at epoch 1.*no epoch had completed.*Lower the learning rate"):
                t.fit()
        b = trainer(tmp_path, *args[:2], "run.max_loss=1e-9", f"run.out={tmp_path}/c")
        b.defer_checks = True
        with pytest.raises(DivergenceError, match=r"batches 1-1: the loss or a gradient became NaN/inf, or the loss exceeded"):
            b.fit()
        return
    a.fit()
    b.fit()
    assert a.history[0]["train_loss"] == pytest.approx(b.history[0]["train_loss"], rel=1e-12)
    assert a.history[0]["train_acc"] == b.history[0]["train_acc"]
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
