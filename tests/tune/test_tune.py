"""eqprop tune: equal budgets, resumable studies, shared workers, a validation split that never
reads the test set, and a tuned.yaml that eqprop compare runs."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

optuna = pytest.importorskip("optuna", reason="eqprop tune needs optuna (the dev extra installs it)")

from eqprop.config import ConfigError  # noqa: E402
from eqprop.training.compare import load_compare_config  # noqa: E402
from eqprop.training.data import load_data, split_validation  # noqa: E402
from eqprop.training.tune import load_tune_config, run_tune  # noqa: E402

HERE = Path(__file__).parent
SRC = str(HERE.parents[1] / "src")
OBJECTIVE = "tiny_objective:objective"


def spec(tmp_path, **kw) -> Path:
    data = {
        "rules": ["ep-centered", "rbp"], "datasets": ["fashion-mnist"], "out": str(tmp_path / "tune"),
        "trials": 3, "validation": 100, "objective": OBJECTIVE, "heartbeat_s": 1, "sampler_seed": 0,
        "space": {"rule.beta": {"low": 0.05, "high": 1.0}, "optim.lr": {"low": 0.001, "high": 0.1, "log": True}},
        "base": {"model": {"name": "hopfield-mlp", "hidden": [8]},
                 "optim": {"name": "sgd", "lr": [0.05, 0.02]}, "run": {"epochs": 1}},
        **kw,
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def importable_objective(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, str(HERE), os.environ.get("PYTHONPATH", "")]))


def trials(cfg, study="fashion-mnist/ep-centered", states=("COMPLETE",)):
    study = optuna.load_study(study_name=study, storage=cfg.storage_url)
    keep = tuple(getattr(optuna.trial.TrialState, s) for s in states)
    return study.get_trials(states=keep)


def test_search_space_per_rule_and_per_coupling(tmp_path):
    cfg = load_tune_config(spec(tmp_path))
    ep, rbp = [cfg.ranges(c) for _, _, c in cfg.studies()]
    assert set(ep) == {"rule.beta", "optim.lr.0", "optim.lr.1"}  # one rate per coupling
    assert set(rbp) == {"optim.lr.0", "optim.lr.1"}  # rbp has no beta: not searched for it


def test_equal_budget_and_resume_from_the_sqlite_file(tmp_path):
    path = spec(tmp_path)
    run_tune(load_tune_config(path), progress=False)
    cfg = load_tune_config(path)
    first = [t.params for t in trials(cfg)]
    assert len(first) == 3 and len(trials(cfg, "fashion-mnist/rbp")) == 3  # the same budget per rule
    run_tune(load_tune_config(path, ["trials=5"]), progress=False)  # rerun: continues the stored study
    again = trials(cfg)
    assert len(again) == 5 and [t.params for t in again[:3]] == first
    tuned = yaml.safe_load((cfg.out / "tuned.yaml").read_text())["rules"]["fashion-mnist"]
    best = max(again, key=lambda t: t.value)
    ep = next(e for e in tuned if e["label"] == "ep-centered")
    assert ep["beta"] == best.params["rule.beta"]
    assert ep["optim"]["lr"] == [best.params["optim.lr.0"], best.params["optim.lr.1"]]
    assert (cfg.out / "fashion-mnist" / "ep-centered" / "history.png").exists()


def _cli(path, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "eqprop", "tune", str(path), *extra],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_workers_trial_is_rerun_with_its_settings(tmp_path):
    path = spec(tmp_path, rules=["ep-centered"], trials=2)
    flag = tmp_path / "hanging"
    p = _cli(path, env={"TUNE_TEST_HANG": str(flag)})
    for _ in range(600):
        if flag.exists() or p.poll() is not None:
            break
        time.sleep(0.1)
    assert flag.exists(), p.communicate()[0].decode()[-2000:]
    p.send_signal(signal.SIGKILL)
    p.wait()
    cfg = load_tune_config(path)
    (stuck,) = trials(cfg, states=("RUNNING",))
    time.sleep(3.0)  # past the heartbeat's grace period (2 s)
    run_tune(cfg, progress=False)
    done = trials(cfg)
    assert len(done) == 2
    assert stuck.params in [t.params for t in done]  # the interrupted settings ran to the end
    assert trials(cfg, states=("FAIL",))[0].number == stuck.number


def test_two_workers_share_one_study(tmp_path):
    path = spec(tmp_path, rules=["ep-centered"], trials=6)
    procs = [_cli(path, env={"TUNE_TEST_SLEEP": "1.0"}) for _ in range(2)]  # 6 s of trials: room for a slow start
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    done = trials(load_tune_config(path))
    assert 6 <= len(done) <= 7  # each worker checks the budget before a trial: at most one over
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers ran trials of the one study


def test_validation_split_is_held_out_of_training_and_never_reads_the_test_set(monkeypatch):
    x, y = torch.arange(50.0).view(50, 1), torch.arange(50) % 5
    (xt, yt), (xv, yv) = split_validation(x, y, 10)
    assert len(yv) == 10 and len(yt) == 40 and not set(xv.flatten().tolist()) & set(xt.flatten().tolist())
    assert torch.equal(split_validation(x, y, 10)[1][0], xv)  # the same held-out samples every time
    with pytest.raises(ConfigError, match="holds out every training sample"):
        split_validation(x, y, 50)

    import eqprop.training.data as data_mod

    read = []
    real = data_mod.load_split
    monkeypatch.setattr(data_mod, "load_split", lambda cfg, split: read.append(split) or real(cfg, split))
    train, held, classes = load_data({"name": "fashion-mnist", "validation": 1000, "train_subset": 3000})
    assert read == ["train"] and len(train[1]) == 2000 and len(held[1]) == 1000 and classes == 10


def test_tuned_yaml_is_a_grid_rule_file(tmp_path):
    path = spec(tmp_path, trials=2)
    cfg = load_tune_config(path)
    run_tune(cfg, progress=False)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"rules": str(cfg.out / "tuned.yaml"), "datasets": ["fashion-mnist"],
                                    "seeds": [0], "out": str(tmp_path / "grid"),
                                    "base": {"model": {"name": "hopfield-mlp", "hidden": [8]},
                                             "optim": {"name": "sgd", "lr": [0.05, 0.02]}}}))
    cells = {c.label: c.config for c in load_compare_config(grid).cells()}
    tuned = yaml.safe_load((cfg.out / "tuned.yaml").read_text())["rules"]["fashion-mnist"]
    for entry in tuned:  # each rule's cell carries its own tuned rate and settings
        assert cells[entry["label"]].optim["lr"] == entry["optim"]["lr"]
        if "beta" in entry:
            assert cells[entry["label"]].rule["beta"] == entry["beta"]


def test_bad_specs_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown tune key"):
        load_tune_config(spec(tmp_path, trails=3))
    with pytest.raises(ConfigError, match="section.setting"):
        load_tune_config(spec(tmp_path, space={"beta": {"low": 0.1, "high": 0.5}}))
    with pytest.raises(ConfigError, match="low <= high"):
        load_tune_config(spec(tmp_path, space={"rule.beta": {"low": 0.5, "high": 0.1}}))
