"""Data-parallel training (2 gloo processes on the CPU) equals one process on the whole batch.

The processes are forked with ``torch.multiprocessing`` (the environment torchrun would set), so
they do not re-import torch; one test launches the real ``torchrun -m eqprop``.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world=2, **kwargs):
    """Run ``ddp_worker.run(**kwargs)`` in ``world`` forked processes; True when all finished cleanly."""
    try:
        mp.start_processes(ddp_worker.spawned, args=(world, free_port(), kwargs), nprocs=world, start_method="fork")
        return True
    except mp.ProcessExitedException:
        return False


def single(tmp_path, name, **kwargs):
    ddp_worker.run(tmp_path / name, record=tmp_path / f"{name}.pt", **kwargs)
    return torch.load(tmp_path / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("warm_start,loader", [(False, False), (True, False), (False, True)],
                         ids=["tensors", "warm-start", "dataloader-uneven-shards"])
def test_two_processes_equal_one_on_the_whole_batch(tmp_path, warm_start, loader):
    kw = dict(epochs=2, warm_start=warm_start, loader=loader)
    assert launch(out=tmp_path / "ddp", record=tmp_path / "ddp.pt", **kw)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    ref = single(tmp_path, "one", **kw)
    assert len(ddp["params"]) == len(ref["params"]) == (6 if loader else 8)  # 2 epochs x 64/25 or 64/16 batches
    worst = max(float((a - b).abs().max()) for s, t in zip(ddp["params"], ref["params"]) for a, b in zip(s, t))
    moved = float((ref["params"][-1][0] - ref["params"][0][0]).abs().max())
    print(f"max |ddp - single| over {len(ref['params'])} steps: {worst:.2e} (weights moved {moved:.2e})")
    assert worst < 1e-10 and moved > 1e-3, (worst, moved)
    for h, r in zip(ddp["history"], ref["history"]):  # metrics aggregated over the processes
        assert h["train_loss"] == pytest.approx(r["train_loss"], abs=1e-12)
        assert h["train_acc"] == pytest.approx(r["train_acc"]) and h["test_acc"] == r["test_acc"]
        assert h["world_size"] == 2


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    assert launch(out=tmp_path / "straight", epochs=3, record=tmp_path / "straight.pt")
    # rank 1 dies hard in the middle of epoch 2 (global step 6); the whole job goes down
    assert not launch(out=tmp_path / "killed", epochs=3, die_at=6)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert launch(out=tmp_path / "killed", epochs=3, record=tmp_path / "resumed.pt")
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert b["summary"]["epochs"] == 3 and [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for p, q in zip(a["final"], b["final"]):
        assert torch.equal(p, q)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # only rank 0 wrote, once per epoch


@pytest.mark.requires_data("fashion-mnist")
def test_torchrun_runs_the_cli(tmp_path):
    """``python -m eqprop train CONFIG ... run.nproc=2``: starts ``torchrun --nproc-per-node 2 -m eqprop train``."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root / "src")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "eqprop", "train", str(root / "configs" / "fashion_mnist_mlp_ep.yaml"), "run.nproc=2",
                        "data.train_subset=128", "data.test_subset=64", "model.hidden=[16]", "run.epochs=1",
                        "run.batch_size=32", "run.progress=false", "rule.free_steps=4", "rule.nudge_steps=2",
                        f"run.out={out}"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "torch.distributed.run --standalone --nproc-per-node=2 -m eqprop train" in r.stdout
    import json

    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["world_size"] == 2
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
