"""Shared pieces of the reliability tests: the CLI run in-process, a tiny finished run to attack,
and a snapshot of a folder (file names and bytes) to prove nothing of it was deleted or changed."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "fashion_mnist_mlp_ep.yaml")
# a tiny Fashion-MNIST run: a few seconds on one core
TINY = ["data.train_subset=200", "data.test_subset=100", "model.hidden=[16]", "run.epochs=1",
        "rule.free_steps=5", "rule.nudge_steps=2", "run.batch_size=50", "run.progress=false"]


def cli(argv: list[str]) -> tuple[int, str]:
    """``eqprop.cli.main(argv)`` in-process: (exit code, stdout + stderr)."""
    from eqprop.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse errors
            rc = e.code if isinstance(e.code, int) else 1
    return rc, buf.getvalue()


def cli_subprocess(argv: list[str], env: dict | None = None, timeout: float = 120) -> tuple[int, str]:
    """The real ``eqprop`` command in a fresh interpreter: (exit code, stdout + stderr)."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), **(env or {})}
    full.pop("EQPROP_DEBUG", None)
    p = subprocess.run([sys.executable, "-m", "eqprop.cli", *argv], check=False, capture_output=True, text=True, env=full,
                       timeout=timeout, cwd=str(REPO))
    return p.returncode, p.stdout + p.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny training run (1 epoch), made once; tests copy it before attacking it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    rc, text = cli(["train", CONFIG, *TINY, f"run.out={out}"])
    assert rc == 0, text
    assert {"checkpoint.pt", "metrics.jsonl", "config.yaml", "summary.json"} <= set(os.listdir(out))
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of the finished run."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst
