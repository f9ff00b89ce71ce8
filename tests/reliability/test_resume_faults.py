"""Faults around a run folder: SIGKILL mid-run then rerun (exact resume), a malicious checkpoint
(refused everywhere a checkpoint is read, its payload never runs), and resuming with changed
hyper-parameters (recorded with their epoch; a new optim.lr is really used)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIG, REPO, TINY, cli, snapshot

# Long enough per epoch (about 1 s on one core) to be killed in the middle of the run; four epochs, so
# that a poller starved on a loaded machine for a second or two still kills it before the end.
KILL_RUN = ["data.train_subset=1000", "data.test_subset=100", "model.hidden=[16]", "run.epochs=4", "run.batch_size=20",
            "rule.free_steps=8", "rule.nudge_steps=3", "run.progress=false", "optim.lr=[0.05,0.02]"]


def _train_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "eqprop.cli", "train", CONFIG, *KILL_RUN, f"run.out={out}"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def _metrics(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field ``epoch_time`` (the only thing that may differ)."""
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in rows]


def test_sigkill_mid_run_then_rerun_is_bit_identical(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    # the uninterrupted reference runs beside the run that is killed
    reference = subprocess.Popen(_train_cmd(ref), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen(_train_cmd(killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = killed / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # into epoch 2
    alive = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert alive, "the run finished before it could be killed; make KILL_RUN longer"
    assert proc.returncode == -signal.SIGKILL
    from eqprop.training import load_checkpoint
    at_kill = load_checkpoint(ckpt)["epoch"]
    assert 1 <= at_kill < 4, at_kill
    assert len(_metrics(killed)) <= at_kill  # metrics never run ahead of the checkpoint
    assert not (killed / "summary.json").exists()

    p = subprocess.run(_train_cmd(killed), check=False, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    text, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, text
    assert f"resuming {killed} after epoch {at_kill}" in p.stdout

    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(killed / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 4
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k  # bit-identical final weights
    assert _metrics(ref) == _metrics(killed)  # losses, accuracies, rates: identical
    assert [r["epoch"] for r in _metrics(killed)] == [1, 2, 3, 4]
    assert not list(killed.glob("*.tmp"))


# -- a malicious checkpoint ----------------------------------------------------------------------

class Payload:
    """Unpickling this calls open(marker, "w"): it creates a file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil_run(run_copy, tmp_path):
    """The finished run whose checkpoint.pt now also holds a payload that creates ``marker``."""
    from eqprop.training import load_checkpoint

    marker = tmp_path / "pwned"
    ckpt = load_checkpoint(run_copy / "checkpoint.pt")
    ckpt["callbacks"] = {"evil": Payload(marker)}
    torch.save(ckpt, run_copy / "checkpoint.pt")
    return run_copy, marker


@pytest.mark.parametrize("command", [
    ["train", CONFIG, *TINY, "run.epochs=2", "run.out={run}"],
    ["gradcheck", CONFIG, *TINY, "--steps", "20", "--batch", "2", "--checkpoint", "{run}/checkpoint.pt"],
    ["gdu", CONFIG, *TINY, "--steps", "3", "--batch", "2", "--checkpoint", "{run}/checkpoint.pt", "--out", "{tmp}/gdu"],
], ids=["resume", "gradcheck", "gdu"])
def test_malicious_checkpoint_is_refused(evil_run, tmp_path, command):
    run, marker = evil_run
    before = snapshot(run)
    rc, out = cli([a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in command])
    assert rc == 2, out
    assert "Traceback" not in out
    assert "holds objects other than tensors, numbers, strings, lists and dicts, and was refused" in out, out
    assert not marker.exists(), "the payload ran"
    assert snapshot(run) == before
    assert not (tmp_path / "gdu").exists()


def test_the_payload_is_real(evil_run):
    """The same file, loaded unsafely, does create the marker: the test above can fail."""
    run, marker = evil_run
    torch.load(run / "checkpoint.pt", weights_only=False)
    assert marker.exists()


# -- resuming with other hyper-parameters ---------------------------------------------------------

def test_resume_with_changed_settings_is_recorded_and_the_new_lr_is_used(finished_run, tmp_path):
    """A run at optim.lr=[0.05, 0.02] diverges on resume at lr=1e30 (the last good checkpoint kept),
    the advised rerun at optim.lr=0.01 resumes from epoch 1, the change is recorded with its epoch,
    and the optimizer really steps with 0.01: its rates are 0.2x and 0.5x those of an unchanged resume."""
    import shutil

    from eqprop.training import load_checkpoint

    changed, same = tmp_path / "changed", tmp_path / "same"
    shutil.copytree(finished_run, changed)
    shutil.copytree(finished_run, same)
    good = (changed / "checkpoint.pt").read_bytes()

    rc, out = cli(["train", CONFIG, *TINY, "run.epochs=3", "optim.lr=1e30", f"run.out={changed}"])
    assert rc == 2 and "training diverged" in out and "Lower the learning rate" in out, out
    assert (changed / "checkpoint.pt").read_bytes() == good  # never overwritten by a diverged epoch

    rc, out = cli(["train", CONFIG, *TINY, "run.epochs=3", "optim.lr=0.01", "rule.beta=0.3", f"run.out={changed}"])
    assert rc == 0, out
    assert "resuming" in out and "after epoch 1" in out
    rc, out = cli(["train", CONFIG, *TINY, "run.epochs=3", f"run.out={same}"])
    assert rc == 0, out

    history = [json.loads(s) for s in (changed / "config_history.jsonl").read_text().splitlines()]
    assert history == [{"epoch": 1, "changes": {"optim.lr": [[0.05, 0.02], [0.01]], "rule.beta": [0.5, 0.3]}}]
    assert load_checkpoint(changed / "checkpoint.pt")["config_changes"] == history
    assert not (same / "config_history.jsonl").exists()

    rows_c = [json.loads(s) for s in (changed / "metrics.jsonl").read_text().splitlines()]
    rows_s = [json.loads(s) for s in (same / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_c] == [1, 2, 3]
    assert rows_c[0] == rows_s[0]  # epoch 1 is the old run's, untouched
    ratios = [c / s for c, s in zip(rows_c[1]["lr"], rows_s[1]["lr"])]  # same cosine factor: the ratio of base rates
    assert ratios == pytest.approx([0.01 / 0.05, 0.01 / 0.02], rel=1e-9)
    groups = load_checkpoint(changed / "checkpoint.pt")["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == [0.01, 0.01]
    w_c = load_checkpoint(changed / "checkpoint.pt")["model"]
    w_s = load_checkpoint(same / "checkpoint.pt")["model"]
    assert any(not torch.equal(w_c[k], w_s[k]) for k in w_c)  # the weights did move differently


def test_a_finished_run_refuses_new_settings_that_would_train_nothing(run_copy):
    """Rerunning a finished run with another rule setting and the same epochs would report the old
    result as if the new setting had been tried: refused, naming the change and the three fixes; the
    folder is untouched. A rerun with the same settings, or another device, still just reports it."""
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    rc, out = cli(["train", CONFIG, *TINY, "rule.beta=0.3", f"run.out={run_copy}"])
    assert rc != 0, out
    assert "finished run of 1 epochs" in out and "rule.beta 0.5 -> 0.3" in out, out
    assert "another run.out" in out and "run.resume=false" in out and "raise run.epochs above 1" in out, out
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
    rc, out = cli(["train", CONFIG, *TINY, "run.device=cpu", f"run.out={run_copy}"])
    assert rc == 0, out


def test_a_checkpoint_from_before_a_model_gained_a_setting_resumes(run_copy):
    """Runs made before ``hopfield-mlp`` had ``expand_output`` recorded a model section without it.
    Such a checkpoint is the same run at the setting's default (which keeps the old behaviour): it
    resumes, with no change recorded. A recorded setting the model does not know is another model."""
    from eqprop.training import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(run_copy / "checkpoint.pt")
    assert ckpt["config"]["model"].pop("expand_output") == 1  # the record as an older version wrote it
    save_checkpoint(ckpt, run_copy / "checkpoint.pt")
    rc, out = cli(["train", CONFIG, *TINY, "run.epochs=2", f"run.out={run_copy}"])
    assert rc == 0 and "after epoch 1" in out, out
    assert "changed settings" not in out and not (run_copy / "config_history.jsonl").exists(), out
    assert load_checkpoint(run_copy / "checkpoint.pt")["epoch"] == 2

    ckpt = load_checkpoint(run_copy / "checkpoint.pt")
    ckpt["config"]["model"]["retired_setting"] = 3
    save_checkpoint(ckpt, run_copy / "checkpoint.pt")
    rc, out = cli(["train", CONFIG, *TINY, "run.epochs=3", f"run.out={run_copy}"])
    assert rc != 0 and "was made for another model or dataset" in out and "retired_setting" in out, out
