"""Replay a diverged run from its last good checkpoint and look at the steps before it broke.

    PYTHONPATH=src python scripts/replay_divergence.py RUN_DIR [--keep 30] [--every 1] [--out DIR]
        [section.key=value ...]

The run is resumed in a copy (``OUT/run``; RUN_DIR is never written), the weights and the batch
before each of the last ``--keep`` steps are held in memory, and when the replay stops (a
divergence, or the end) they are saved to ``OUT/last_steps.pt`` (plain tensors) beside
``OUT/steps.jsonl`` (every replayed step's loss, gradient norm and the rule's step stats). Then,
for every ``--every``-th kept step of a relaxation model, the free phase is examined on that batch:

- ``residual``: the last sweep's change after the rule's ``free_steps``;
- ``distance``: how far that state is from the state after ``--settle`` sweeps (default 10x);
- ``radius``: the spectral radius of the sweep's Jacobian there (power iteration on ``J^T``):
  >= 1 means no stable fixed point, and an implicit gradient (RBP) whose adjoint grows;
- ``adjoint_growth``: the adjoint iteration's change after ``3 free_steps`` iterations over its
  first (> 1: growing).

A replay is deterministic (the checkpoint holds the generators' states), so it stops where the run
did, unless an override changes the run (``rule.resettle=0`` replays an RBP run as it was before
RBP resettled unsettled states). docs/compare.md shows what it found on the two-hidden-layer RBP run.
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
from pathlib import Path

import torch
import yaml


def replay(run: Path, out: Path, keep: int, overrides=()):
    from eqprop.callbacks import Callback
    from eqprop.config import config_from_dict, merge, parse_overrides
    from eqprop.training.trainer import Trainer

    copy = out / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.claim"))
    d = yaml.safe_load((copy / "config.yaml").read_text())
    d = merge(d, parse_overrides(list(overrides)))
    d["run"].update(out=str(copy), progress=False, resume=True)
    cfg = config_from_dict(d)

    class Keep(Callback):
        def __init__(self):
            self.last, self.rows = collections.deque(maxlen=keep), []

        def before_step(self, trainer, batch):
            weights = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
            self.last.append({"step": trainer.global_step, "model": weights, "x": batch.x.cpu().clone(),
                              "y": batch.y.cpu().clone()})

        def after_step(self, trainer, batch, result):
            grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
            stats = {k: (v.item() if torch.is_tensor(v) else v) for k, v in result.stats.items()
                     if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)}
            self.rows.append({"step": trainer.global_step, "loss": float(result.loss),
                              "grad_norm": float(torch.cat([g.flatten() for g in grads]).norm()), **stats})

    rec = Keep()
    trainer = Trainer.from_config(cfg, callbacks=[rec])
    try:
        trainer.fit()
        print("[replay] the run finished without diverging")
    except Exception as e:  # noqa: BLE001 -- the divergence is what we came for
        print(f"[replay] stopped: {type(e).__name__}: {e}")
    torch.save(list(rec.last), out / "last_steps.pt")
    (out / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rec.rows))
    return list(rec.last), trainer


def examine(kept: list[dict], trainer, every: int, settle: int | None) -> list[dict]:
    from eqprop.dynamics import change, relax, sweep
    from eqprop.rules.reference import _grads, adjoint

    model, rule = trainer.model, trainer.rule
    steps = getattr(rule, "free_steps", None)
    if steps is None or not hasattr(model, "cost"):
        print("[replay] not a relaxation rule: no free-phase examination")
        return []
    settle = settle or 10 * steps
    rows = []
    device = next(model.parameters()).device
    for rec in kept[::every]:
        model.load_state_dict(rec["model"])
        x, y = rec["x"].to(device), rec["y"].to(device)
        with torch.no_grad():
            short = relax(model, x, steps=steps, mode=rule.mode, tol=0.0, fused=False)
            long = relax(model, x, steps=settle, mode=rule.mode, tol=0.0, fused=False)
        with torch.enable_grad():
            s = [t.detach().requires_grad_(True) for t in short.state]
            fs = sweep(model, s, model.context(x), rule.mode)
            rhs = _grads(model.cost(s, y).mean(), s)
            changes = []
            adjoint(fs, s, rhs, 3 * steps, None, changes)  # RBP's own adjoint solve, every change kept
            first, last = (changes[0], changes[-1]) if changes else (None, None)
            v = [torch.randn_like(t) for t in s]
            radius = float("nan")
            for _ in range(100):
                w = _grads(fs, s, v)
                norm = float(torch.cat([t.flatten() for t in w]).norm())
                radius = norm / float(torch.cat([t.flatten() for t in v]).norm())
                if norm == 0:
                    break
                v = [t / norm for t in w]
        rows.append({"step": rec["step"], "residual": short.residual, "distance": change(short.state, long.state),
                     "settled_at": long.steps, "radius": radius,
                     "adjoint_growth": last / first if first else float("nan")})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run folder with checkpoint.pt and config.yaml")
    p.add_argument("--keep", type=int, default=30, help="steps kept before the stop (default 30)")
    p.add_argument("--every", type=int, default=1, help="examine every k-th kept step (default 1)")
    p.add_argument("--settle", type=int, default=None, help="sweeps of the long relaxation (default 10x free_steps)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_replay)")
    p.add_argument("overrides", nargs="*", help="section.key=value changes to the run's config")
    a = p.parse_intermixed_args(argv)
    if not (a.run / "checkpoint.pt").is_file() or not (a.run / "config.yaml").is_file():
        p.error(f"{a.run} holds no checkpoint.pt and config.yaml: give a run folder")
    out = a.out or a.run.with_name(a.run.name + "_replay")
    out.mkdir(parents=True, exist_ok=True)
    kept, trainer = replay(a.run, out, a.keep, a.overrides)
    rows = examine(kept, trainer, a.every, a.settle)
    (out / "examined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"[replay] wrote {out}/last_steps.pt, steps.jsonl, examined.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
