"""Two ``eqprop compare`` workers on one grid: every cell runs once, the table equals one worker's."""
import json
import os
import socket
import time
import zlib

import torch.multiprocessing as mp

from eqprop.config import save_config_dict
from eqprop.training import claims
from eqprop.training.compare import load_compare_config, run_compare

GRID = ["rules=[ep-centered,cl]", "datasets=[mnist]", "seeds=[0,1,2]", "model.hidden=[8]", "run.epochs=1"]


def fake_train(log):
    """Stands in for a training run: writes the files a finished run has, logs who ran which cell."""
    def train(cfg):
        out = cfg.out_dir()
        out.mkdir(parents=True, exist_ok=True)
        time.sleep(1.0)  # long enough that a worker delayed on a loaded machine still gets a cell
        acc = (zlib.crc32(f"{cfg.rule['name']}{cfg.run['seed']}".encode()) % 1000) / 1000  # depends on the cell only
        s = {"dataset": "mnist", "rule": cfg.rule["name"], "test_acc": acc, "train_time_s": 1.0, "epochs": 1}
        save_config_dict(cfg.to_dict(), out / "config.yaml")
        (out / "summary.json").write_text(json.dumps(s))
        with open(log, "a") as f:
            f.write(f"{cfg.rule['name']} {cfg.run['seed']} {os.getpid()}\n")
        return s
    return train


def worker(rank, out, log):
    run_compare(load_compare_config(None, [*GRID, f"out={out}"]), train=fake_train(log), poll_s=0.2)


def test_two_workers_run_each_cell_once(tmp_path):
    log = tmp_path / "ran.log"
    mp.start_processes(worker, args=(tmp_path / "grid", log), nprocs=2, start_method="fork")
    ran = [line.split() for line in log.read_text().splitlines()]
    cells = sorted((r, s) for r, s, _ in ran)
    assert cells == sorted((r, str(s)) for r in ("ep-centered", "cl") for s in range(3))  # each once
    assert len({pid for *_, pid in ran}) == 2  # both workers did some
    assert not list((tmp_path / "grid").rglob("*.claim"))
    worker(0, tmp_path / "single", tmp_path / "single.log")
    assert (tmp_path / "grid" / "results.md").read_text() == (tmp_path / "single" / "results.md").read_text()
    a = json.loads((tmp_path / "grid" / "results.json").read_text())["aggregate"]
    assert a == json.loads((tmp_path / "single" / "results.json").read_text())["aggregate"]


def test_stale_claims_are_taken_over(tmp_path, monkeypatch):
    out = tmp_path / "grid"
    cfg = load_compare_config(None, [*GRID, f"out={out}", "seeds=[0]"])
    dead = mp.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join()
    first, second = [c.out for c in cfg.cells()]
    # a worker on this host that died, and a worker on another host whose heartbeat stopped long ago
    for path, host, pid in [(claims.claim_path(first), socket.gethostname(), dead.pid),
                            (claims.claim_path(second), "elsewhere", 1)]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"host": host, "pid": pid, "since": 0}))
    old = time.time() - 2 * claims.STALE_S
    os.utime(claims.claim_path(second), (old, old))
    assert claims.is_stale(claims.claim_path(first)) and claims.is_stale(claims.claim_path(second))
    os.utime(claims.claim_path(second))  # a fresh heartbeat from another host: a live claim
    assert not claims.is_stale(claims.claim_path(second)) and claims.try_claim(second) is None
    os.utime(claims.claim_path(second), (old, old))
    run_compare(cfg, train=fake_train(tmp_path / "ran.log"), poll_s=0.1)
    assert len((tmp_path / "ran.log").read_text().splitlines()) == 2
    assert not list(out.rglob("*.claim"))
