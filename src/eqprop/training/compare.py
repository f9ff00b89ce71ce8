"""``eqprop compare``: a grid of rules x datasets x seeds from one YAML, resumable.

    rules: [cl, ep-positive, ...]      # default: the nine rules of the comparative study
    datasets: [mnist, fashion-mnist]
    seeds: [0, 1, 2]
    out: runs/compare
    base:                              # any TrainConfig keys, shared by every cell
      hidden: [500]
      epochs: 5

Each cell is an ordinary training run in ``OUT/DATASET/RULE/seed{SEED}`` — so an interrupted grid
resumes where it stopped (finished cells are read back, the cell in progress continues from its
checkpoint). The grid writes ``OUT/results.md`` (test accuracy mean +- std and wall time per rule
and dataset), ``OUT/results.json`` and ``OUT/results.png``.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import ConfigError, TrainConfig, config_from_dict, parse_overrides

# Scellier et al. 2023 compare these nine (ep-random is ours; bptt is their TBP).
COMPARATIVE_STUDY_RULES = [
    "cl", "ep-positive", "ep-negative", "ep-centered",
    "cpl-positive", "cpl-negative", "cpl-centered", "bptt", "rbp",
]


@dataclass
class CompareConfig:
    base: TrainConfig = field(default_factory=TrainConfig)
    rules: list[str] = field(default_factory=lambda: list(COMPARATIVE_STUDY_RULES))
    datasets: list[str] = field(default_factory=lambda: ["mnist"])
    seeds: list[int] = field(default_factory=lambda: [0])
    out: str = "runs/compare"

    def cells(self):
        for dataset in self.datasets:
            for rule in self.rules:
                for seed in self.seeds:
                    out = str(Path(self.out) / dataset / rule / f"seed{seed}")
                    yield dataclasses.replace(self.base, dataset=dataset, rule=rule, seed=seed, out=out)


GRID_KEYS = ("rules", "datasets", "seeds", "out")


def load_compare_config(path: str | Path | None, overrides: list[str] | None = None) -> CompareConfig:
    """Read the grid YAML; ``key=value`` overrides set grid keys or, otherwise, base TrainConfig keys."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"compare config {str(path)!r} not found")
        data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - set(GRID_KEYS) - {"base"}
    if unknown:
        raise ConfigError(f"unknown compare key(s) {', '.join(sorted(unknown))}; valid: base, {', '.join(GRID_KEYS)}")
    base = dict(data.get("base") or {})
    grid = {k: data[k] for k in GRID_KEYS if k in data}
    for key, value in parse_overrides(overrides or []).items():
        (grid if key in GRID_KEYS else base)[key] = value
    base = config_from_dict({"progress": False, **base})
    for key in ("rules", "datasets", "seeds"):
        if key in grid and not isinstance(grid[key], list):
            grid[key] = [grid[key]]
    return CompareConfig(base=base, **grid)


def _summary(cell: TrainConfig) -> dict | None:
    p = cell.out_dir() / "summary.json"
    if not p.exists():
        return None
    s = json.loads(p.read_text())
    return s if s.get("epochs") == cell.epochs else None


def run_compare(cfg: CompareConfig, train=None) -> dict:
    """Run (or resume) every cell, then write the table, JSON and plot. Returns the aggregate."""
    from tqdm.auto import tqdm

    from ..rules import make_rule
    from .trainer import train as train_fn

    for r in cfg.rules:
        make_rule(r)  # fail early on a misspelt rule
    train = train or train_fn
    cells = list(cfg.cells())
    results = []
    for cell in tqdm(cells, desc="compare", unit="run"):
        s = _summary(cell)
        if s is None:
            s = train(cell)
        results.append(s)
    agg = aggregate(results)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"cells": results, "aggregate": agg}, indent=2))
    (out / "results.md").write_text(markdown_table(agg, cfg))
    plot(agg, cfg, out / "results.png")
    return agg


def aggregate(results: list[dict]) -> dict:
    """{dataset: {rule: {mean, std, n, accs, time_s}}} over seeds (accuracies in %)."""
    agg: dict = {}
    for s in results:
        cell = agg.setdefault(s["dataset"], {}).setdefault(s["rule"], {"accs": [], "times": []})
        cell["accs"].append(100 * s["test_acc"])
        cell["times"].append(s["train_time_s"])
    for rules in agg.values():
        for c in rules.values():
            c["mean"] = statistics.fmean(c["accs"])
            c["std"] = statistics.stdev(c["accs"]) if len(c["accs"]) > 1 else 0.0
            c["n"] = len(c["accs"])
            c["time_s"] = statistics.fmean(c["times"])
    return agg


def markdown_table(agg: dict, cfg: CompareConfig) -> str:
    b = cfg.base
    lines = [
        f"Test accuracy (%) mean +- std over seeds {cfg.seeds}; mean training time per run. "
        f"Model {b.model} hidden={b.hidden}, {b.epochs} epochs, beta={b.beta}, "
        f"{b.free_steps}/{b.nudge_steps} sweeps ({b.mode}), train_subset={b.train_subset}.",
        "",
        "| rule | " + " | ".join(cfg.datasets) + " |",
        "|---|" + "---|" * len(cfg.datasets),
    ]
    for rule in cfg.rules:
        cells = []
        for d in cfg.datasets:
            c = agg.get(d, {}).get(rule)
            if c is None:
                cells.append("—")
            else:
                spread = f" ± {c['std']:.2f}" if c["n"] > 1 else ""
                cells.append(f"{c['mean']:.2f}{spread} ({c['time_s']:.0f} s)")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(agg: dict, cfg: CompareConfig, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cfg.rules)), 3.8))
    width = 0.8 / max(1, len(cfg.datasets))
    for j, d in enumerate(cfg.datasets):
        xs = [i + j * width for i in range(len(cfg.rules))]
        cells = [agg.get(d, {}).get(r, {"mean": 0.0, "std": 0.0}) for r in cfg.rules]
        ax.bar(xs, [c["mean"] for c in cells], width, yerr=[c["std"] for c in cells], label=d, capsize=3)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cfg.rules))], cfg.rules, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    lo = min((c["mean"] for r in agg.values() for c in r.values()), default=0)
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
