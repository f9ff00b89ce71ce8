"""The bias of a rule's gradient estimate during training, measured against recurrent backprop.

``GradientBias(probe=256)`` is a callback: at the start of the run it fixes ``probe`` training
samples; after every epoch it computes, on that batch and with the current weights,

- the run's own rule's estimate ``g`` at the run's budget and ``beta`` (exactly what a training
  step would use), and
- the exact gradient ``g*`` of the loss at the run's free state (RBP with the run's free budget,
  its adjoint iterated to convergence),

and logs ``cosine(g, g*)`` and ``|g - g*| / |g*|`` into the epoch record (``bias_cosine``,
``bias_rel_error``) and ``OUT/bias.jsonl``. ``others`` adds estimators built with the run rule's
relaxation settings (e.g. ``["ep-positive", "ep-negative"]``), each logged under its name.

The comparative study (Scellier et al. 2023) argues that positive nudging has a first-order bias
in beta and centered nudging a second-order one, and that negative nudging keeps the output
unsaturated; these traces measure those biases at the operating point of a real run.
``plot_bias_traces`` draws them for a whole ``eqprop compare`` grid.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import fields, replace
from pathlib import Path

import torch

from ..callbacks import Callback
from ..dynamics import UnsettledError
from .gradients import _metrics


SHARED = ("free_steps", "mode", "tol", "beta", "nudge_steps")  # the run's budget and nudge, given to ``others``


class GradientBias(Callback):
    """Per-epoch cosine and relative error of the rule's estimate against RBP on a fixed probe batch.

    Args:
        probe: samples in the probe batch (drawn once, with a fixed seed, from the training set).
        others: names of more rules to measure with the run rule's relaxation settings.
        adjoint_tol: RBP's adjoint stops when an iteration changes it by at most this.
    """

    def __init__(self, probe: int = 256, others=(), adjoint_tol: float = 1e-7):
        self.probe, self.others, self.adjoint_tol = int(probe), list(others), adjoint_tol
        self.x = self.y = None

    @property
    def key(self) -> str:
        return "gradient_bias"

    def on_fit_start(self, trainer) -> None:
        if trainer.train is None:
            raise ValueError("GradientBias needs in-memory training data (tensors or a dataset), not a DataLoader")
        x, y = trainer.train
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))[: self.probe].to(y.device)
        self.x, self.y = x[idx], y[idx]

    def estimators(self, rule) -> dict:
        """The run's rule and the ``others``, each with the run rule's relaxation settings."""
        from ..rules import make_rule

        out = {"": rule}
        shared = {k: getattr(rule, k) for k in SHARED if hasattr(rule, k)}  # never the variant: that is the rule
        for name in self.others:
            probe = make_rule(name)
            take = {k: v for k, v in shared.items() if k in {f.name for f in fields(probe)}}
            out[name] = replace(probe, **take)
        return out

    def reference(self, rule):
        from ..rules import RBP

        steps = getattr(rule, "free_steps", RBP.free_steps)
        return RBP(free_steps=steps, mode=getattr(rule, "mode", "async"), tol=getattr(rule, "tol", None),
                   adjoint_steps=20 * steps, adjoint_tol=self.adjoint_tol)

    def measure(self, model, rule) -> dict:
        """``{prefix + "bias_cosine": ..., prefix + "bias_rel_error": ...}`` on the probe batch."""
        was_training = model.training
        model.eval()
        # a random rule (a random nudge sign) draws from the global generator: the probe must not
        # shift the run's own draws, or watching a run would change what it learns
        devices = [self.x.device] if self.x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            try:
                return self._measure(model, rule)
            finally:
                model.train(was_training)

    def _measure(self, model, rule) -> dict:
        # a probe batch whose free state is no stable fixed point within the budget has no exact
        # gradient to compare with (or no estimate): NaN there, and the run goes on
        nan = {"cosine": math.nan, "rel_error": math.nan, "norm_ratio": math.nan}
        try:
            ref, _ = self.reference(rule).estimate(model, self.x, self.y)
            flat_ref = torch.cat([g.flatten() for g in ref.values()])
        except UnsettledError:
            flat_ref = None
        out = {}
        for name, est in self.estimators(rule).items():
            try:
                g, _ = est.estimate(model, self.x, self.y) if flat_ref is not None else (None, None)
            except UnsettledError:
                g = None
            m = nan if g is None else _metrics(torch.cat([g[n].flatten() for n in ref]), flat_ref)
            prefix = f"{name}/" if name else ""
            out[prefix + "bias_cosine"] = m["cosine"]
            out[prefix + "bias_rel_error"] = m["rel_error"]
            out[prefix + "bias_norm_ratio"] = m["norm_ratio"]
        return out

    def on_epoch_end(self, trainer, record: dict) -> None:
        metrics = self.measure(trainer.model, trainer.rule)
        record.update(metrics)
        if trainer.is_main:
            with open(trainer.out / "bias.jsonl", "a") as f:
                f.write(json.dumps({"epoch": record["epoch"], "rule": trainer.rule_name, **metrics}) + "\n")


def read_bias(run: str | Path) -> list[dict]:
    """The ``bias.jsonl`` records of one run, last record per epoch (a resumed run may repeat one)."""
    path = Path(run) / "bias.jsonl"
    if not path.exists():
        return []
    by_epoch = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            by_epoch[r["epoch"]] = r
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_bias_traces(grid_out: str | Path, path: str | Path | None = None) -> Path | None:
    """One figure for a grid folder (``OUT/DATASET/LABEL/seedN/bias.jsonl``): per dataset, the
    cosine with RBP and the relative error over epochs for every rule (mean over seeds, band =
    min..max). Returns the path,
    or None when no run of the grid logged a bias trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid_out = Path(grid_out)
    traces: dict = {}
    for f in sorted(grid_out.glob("*/*/seed*/bias.jsonl")):
        dataset, label = f.parts[-4], f.parts[-3]
        rec = read_bias(f.parent)
        if rec:
            traces.setdefault(dataset, {}).setdefault(label, []).append(rec)
    if not traces:
        return None
    fig, axes = plt.subplots(2, len(traces), figsize=(6 * len(traces), 7), squeeze=False)
    panels = (("bias_cosine", "cosine with the exact gradient", "linear"),
              ("bias_rel_error", "relative error |g - g*| / |g*|", "log"))
    for col, (dataset, rules) in enumerate(sorted(traces.items())):
        for row, (key, ylabel, scale) in enumerate(panels):
            ax = axes[row][col]
            for label, runs in rules.items():
                n = min(len(r) for r in runs)
                epochs = [runs[0][i]["epoch"] for i in range(n)]
                vals = torch.tensor([[r[i][key] for i in range(n)] for r in runs])
                line, = ax.plot(epochs, vals.mean(0), marker="o", label=label)
                if len(runs) > 1:
                    ax.fill_between(epochs, vals.min(0).values, vals.max(0).values, color=line.get_color(), alpha=0.15)
            ax.set_yscale(scale)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0][col].set_title(f"{dataset}: the rule's estimate vs RBP on a fixed probe batch")
        axes[0][col].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path) if path is not None else grid_out / "bias_traces.png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)
    return path
