"""``eqprop compare``: a grid of rules x datasets x seeds from one YAML, resumable.

    rules: [cl, ep-positive, {name: bptt, backprop_steps: 8, label: tbptt, optim: {lr: [0.1, 0.05]}}]
    datasets: [mnist, fashion-mnist]
    seeds: [0, 1, 2]
    out: runs/compare
    base:                      # a sectioned config shared by every cell
      model: {name: hopfield-mlp, hidden: [500]}
      rule: {beta: 0.5, free_steps: 20, nudge_steps: 8}   # each rule takes the settings it has
      optim: {name: sgd, lr: [0.05, 0.02], momentum: 0.9}
      run: {epochs: 5}

A rule is a name or a mapping with ``name``, its own settings and an optional ``label`` (the
row name; default: the name); keys named after a section (``optim``, ``model``, ``data``, ``run``)
override the base for that rule only. ``rules`` may also map each dataset to its own list, or name
a YAML file holding such a ``rules:`` key (``eqprop tune`` writes ``OUT/tuned.yaml``). Shared ``base.rule`` settings go to every rule that takes them; one
that no rule of the grid takes is an error. Each cell is an ordinary training run in
``OUT/DATASET/LABEL/seed{SEED}``, so an interrupted grid resumes where it stopped. ``only: [LABEL, ...]``
runs (and tabulates) just those rows of the grid, e.g. the rows left when a grid is split between
sessions or machines (``eqprop compare GRID.yaml "only=[cl]"``); every other row's cells are left
as they are. A finished
cell is reused only if its recorded configuration equals the cell's full resolved configuration;
otherwise the old cell folder is moved aside (``seedN.old-TIMESTAMP``) and the cell runs again.
The grid writes ``OUT/results.md`` (test accuracy mean +- std and time per rule and dataset),
``OUT/results.json`` and ``OUT/results.png``.
"""
from __future__ import annotations

import copy
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import (SECTIONS, Config, ConfigError, config_from_dict, merge, parse_overrides, read_yaml,
                      resolve_recorded)
from .. import rules as _rules  # noqa: F401  (registers the built-in rules)
from ..registry import RULES
from .claims import try_claim
from .logging import write_atomic
from .run import DRIVING

# Scellier et al. 2023 compare these nine (bptt is their truncated BPTT, TBP).
COMPARATIVE_STUDY_RULES = [
    "cl", "ep-positive", "ep-negative", "ep-centered",
    "cpl-positive", "cpl-negative", "cpl-centered", "bptt", "rbp",
]
GRID_KEYS = ("rules", "datasets", "seeds", "out", "only")


@dataclass
class Cell:
    dataset: str
    label: str
    seed: int
    config: Config

    @property
    def out(self) -> Path:
        return Path(self.config.run["out"])


@dataclass
class CompareConfig:
    base: dict = field(default_factory=dict)
    rules: list = field(default_factory=lambda: list(COMPARATIVE_STUDY_RULES))
    datasets: list[str] = field(default_factory=lambda: ["mnist"])
    seeds: list[int] = field(default_factory=lambda: [0])
    out: str = "runs/compare"
    only: list[str] | None = None  # labels of the rows to run; None: every row

    def rules_for(self, dataset: str) -> list:
        """The grid's rule entries for ``dataset``: ``rules`` is a list (every dataset) or a mapping
        ``{dataset: [entries]}`` (per-dataset settings, e.g. the ``tuned.yaml`` of ``eqprop tune``)."""
        if isinstance(self.rules, dict):
            if dataset not in self.rules:
                raise ConfigError(f"the grid's rules name datasets {', '.join(self.rules)}; none for {dataset!r}")
            return list(self.rules[dataset])
        return list(self.rules)

    def rule_specs(self, dataset: str | None = None, every_row: bool = False) -> list[tuple[str, dict, dict]]:
        """``(label, rule section, other sections)`` per rule, shared settings filtered to those each
        rule takes. An entry's keys named after a section (``optim: {lr: [...]}``) override the
        base for that rule's cells only. Only the rows in ``only`` unless ``every_row``."""
        dataset = self.datasets[0] if dataset is None else dataset
        shared = {k: v for k, v in (self.base.get("rule") or {}).items() if k != "name"}
        specs, used = [], set()
        for r in self.rules_for(dataset):
            own = {"name": r} if isinstance(r, str) else dict(r)
            if "name" not in own:
                raise ConfigError(f"a grid rule needs a name: {r!r}")
            label = str(own.pop("label", own["name"]))
            sections = {k: own.pop(k) for k in list(own) if k in SECTIONS and k != "rule"}
            valid = RULES.get(own["name"]).settings()
            take = {k: v for k, v in shared.items() if k in valid}
            used |= set(take)
            specs.append((label, {**take, **own}, sections))
        unused = sorted(set(shared) - used)
        if unused:
            raise ConfigError(f"base.rule setting(s) {', '.join(unused)} are taken by no rule of the grid "
                              f"({', '.join(label for label, _, _ in specs)})")
        labels = [label for label, _, _ in specs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"two grid rules share a label ({labels}); give each a distinct 'label'")
        if self.only is not None and not every_row:
            specs = [spec for spec in specs if spec[0] in self.only]
        return specs

    def check_only(self) -> None:
        """Every label in ``only`` names a row of the grid (on some dataset)."""
        if self.only is None:
            return
        rows = list(dict.fromkeys(label for d in self.datasets for label, _, _ in self.rule_specs(d, every_row=True)))
        unknown = [label for label in self.only if label not in rows]
        if not self.only or unknown:
            raise ConfigError(f"only: {', '.join(unknown) or 'an empty list'} names no row of the grid; its rows "
                              f"are {', '.join(rows)} (give some of these labels, or drop 'only' to run every row)")

    def cells(self) -> list[Cell]:
        out = []
        for dataset in self.datasets:
            for label, rule, sections in self.rule_specs(dataset):
                for seed in self.seeds:
                    data = merge(copy.deepcopy(self.base), copy.deepcopy(sections))
                    data["data"] = {**(data.get("data") or {}), "name": dataset}
                    data["rule"] = rule
                    data["run"] = {"progress": False, **(data.get("run") or {}), "seed": seed,
                                   "out": str(Path(self.out) / dataset / label / f"seed{seed}")}
                    out.append(Cell(dataset, label, seed, config_from_dict(data)))
        return out


def load_compare_config(path: str | Path | None, overrides: list[str] | None = None) -> CompareConfig:
    """Read the grid YAML; ``key=value`` overrides set grid keys (``seeds=[0,1]``) or base settings
    (``rule.beta=0.2``, ``run.epochs=1``)."""
    data = read_yaml(path) if path is not None else {}
    unknown = set(data) - set(GRID_KEYS) - {"base"}
    if unknown:
        raise ConfigError(f"unknown compare key(s) {', '.join(sorted(unknown))}; valid: base, {', '.join(GRID_KEYS)}")
    base = data.get("base") or {}
    flat = [k for k in base if k not in SECTIONS]
    if flat:
        raise ConfigError(f"compare base: unknown section(s) {', '.join(flat)}; the base is a sectioned config "
                          f"({', '.join(SECTIONS)}), e.g. base.rule.beta instead of base.beta")
    grid = {k: data[k] for k in GRID_KEYS if k in data}
    if isinstance(grid.get("rules"), str):  # a file of rule entries, e.g. eqprop tune's tuned.yaml
        grid["rules"] = read_rules(Path(path).parent if path else Path("."), grid["rules"])
    rest = []
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if key in GRID_KEYS:
            grid.update({key: v for key, v in _grid_override(item).items()})
        else:
            rest.append(item)
    base = merge(base, parse_overrides(rest))
    for key in ("rules", "datasets", "seeds", "only"):
        if key in grid and not isinstance(grid[key], (list, dict) if key == "rules" else list):
            grid[key] = [grid[key]]
    if grid.get("only") is not None:
        grid["only"] = [str(label) for label in grid["only"]]
    cfg = CompareConfig(base=base, **grid)
    cfg.check_only()
    cfg.cells()  # every cell resolves, or the error names the setting
    return cfg


def read_rules(here: Path, name: str):
    """The ``rules`` of a YAML file (a list, or ``{dataset: [entries]}``); a relative path is tried
    from the current folder, then from the grid file's folder."""
    path = Path(name) if Path(name).exists() else here / name
    if not path.exists():
        raise ConfigError(f"rules: {name!r} is neither a rule list nor a file (looked in . and {here}); "
                          f"write the rules inline or give the tuned.yaml that eqprop tune wrote")
    rules = (read_yaml(path) or {}).get("rules")
    if not isinstance(rules, (list, dict)):
        raise ConfigError(f"{path}: expected a 'rules:' list or a mapping from dataset to list")
    return rules


def _grid_override(item: str) -> dict:
    key, raw = item.split("=", 1)
    return {key.strip(): yaml.safe_load(raw)}


def _comparable(d: dict) -> dict:
    d = copy.deepcopy(d)
    for key in DRIVING:  # settings that do not change a cell's result
        d.get("run", {}).pop(key, None)
    return d


def _same_config(recorded, cell: Cell) -> bool:
    """Whether a cell's recorded ``config.yaml`` is the cell's configuration. The record is resolved
    as the cell's was, so a setting a component gained after the run (at its default, which keeps
    the old behaviour) does not make a finished cell run again; a record the current components
    reject (a setting since removed) is another configuration."""
    resolved = resolve_recorded(recorded)
    return resolved is not None and _comparable(resolved) == _comparable(cell.config.to_dict())


def _done(cell: Cell) -> dict | None:
    """The cell's summary if it finished with exactly this configuration (reads only)."""
    summary, saved = cell.out / "summary.json", cell.out / "config.yaml"
    if not summary.exists() or not saved.exists():
        return None
    try:
        recorded, s = yaml.safe_load(saved.read_text()), json.loads(summary.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if _same_config(recorded, cell) and s.get("epochs") == cell.config.run["epochs"]:
        return s
    return None


def _finished(cell: Cell) -> dict | None:
    """The cell's summary if it finished with exactly this configuration; else None (an old run
    with another configuration is moved aside first, never deleted)."""
    summary, saved = cell.out / "summary.json", cell.out / "config.yaml"
    if not cell.out.exists():
        return None
    recorded = yaml.safe_load(saved.read_text()) if saved.exists() else None
    if _same_config(recorded, cell):
        if summary.exists():
            s = json.loads(summary.read_text())
            if s.get("epochs") == cell.config.run["epochs"]:
                return s
        return None  # same configuration, unfinished: the trainer resumes it
    aside = cell.out.with_name(f"{cell.out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    cell.out.rename(aside)
    print(f"[eqprop] {cell.out} was run with another configuration; moved it to {aside}", flush=True)
    return None


def run_compare(cfg: CompareConfig, train=None, poll_s: float = 10.0) -> dict:
    """Run (or resume) every cell, then write the table, JSON and plot. Returns the aggregate.

    Several workers (processes, or machines sharing the folder) may run the same grid at once: each
    cell is claimed before it runs (``claims.py``), so it runs once; a worker whose cells are done
    waits (polling every ``poll_s`` s) for the cells others hold, or takes over a stale claim.
    Every worker then writes the same table.
    """
    from tqdm.auto import tqdm

    from .trainer import train as train_fn

    train = train or train_fn
    cells = cfg.cells()
    found: dict[int, dict] = {}
    waiting = list(range(len(cells)))
    bar = tqdm(total=len(cells), desc="compare", unit="run")
    first = True
    while waiting:  # several workers may share the grid: each cell is claimed, run once, read by all
        if not first:
            time.sleep(poll_s)
        left = []
        for i in waiting:
            cell = cells[i]
            s = _done(cell)
            if s is None:
                claim = try_claim(cell.out)
                if claim is None:  # another worker runs it; come back to it later
                    left.append(i)
                    continue
                with claim:
                    s = _finished(cell) or train(cell.config)
            found[i] = {**s, "label": cell.label}
            bar.update(1)
        if left and first:
            print(f"[eqprop] {len(left)} cell(s) are being run by other workers; waiting for them", flush=True)
        waiting, first = left, False
    bar.close()
    results = [found[i] for i in range(len(cells))]
    agg = aggregate(results)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps({"cells": results, "aggregate": agg}, indent=2))
    write_atomic(out / "results.md", markdown_table(agg, cfg))
    plot(agg, cfg, out / "results.png")
    from ..diagnostics.bias_trace import plot_bias_traces

    plot_bias_traces(out)  # bias_traces.png when the cells logged run.bias_probe traces
    return agg


def aggregate(results: list[dict]) -> dict:
    """{dataset: {label: {mean, std, n, accs, time_s}}} over seeds (accuracies in %)."""
    agg: dict = {}
    for s in results:
        cell = agg.setdefault(s["dataset"], {}).setdefault(s.get("label", s["rule"]), {"accs": [], "times": []})
        cell["accs"].append(100 * s["test_acc"])
        cell["times"].append(s["train_time_s"])
    for rules in agg.values():
        for c in rules.values():
            c["mean"] = statistics.fmean(c["accs"])
            c["std"] = statistics.stdev(c["accs"]) if len(c["accs"]) > 1 else 0.0
            c["n"] = len(c["accs"])
            c["time_s"] = statistics.fmean(c["times"])
    return agg


def _labels(cfg: CompareConfig) -> list[str]:
    labels = [label for d in cfg.datasets for label, _, _ in cfg.rule_specs(d)]
    return list(dict.fromkeys(labels))


def markdown_table(agg: dict, cfg: CompareConfig) -> str:
    b = cfg.base
    describe = "; ".join(f"{s}: {json.dumps(b[s])}" for s in SECTIONS if b.get(s))
    lines = [
        f"Test accuracy (%) mean +- std over seeds {cfg.seeds}; mean training time per run. Base config: {describe}.",
        "",
        "| rule | " + " | ".join(cfg.datasets) + " |",
        "|---|" + "---|" * len(cfg.datasets),
    ]
    for rule in _labels(cfg):
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

    labels = _labels(cfg)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 3.8))
    width = 0.8 / max(1, len(cfg.datasets))
    for j, d in enumerate(cfg.datasets):
        xs = [i + j * width for i in range(len(labels))]
        cells = [agg.get(d, {}).get(r, {"mean": 0.0, "std": 0.0}) for r in labels]
        ax.bar(xs, [c["mean"] for c in cells], width, yerr=[c["std"] for c in cells], label=d, capsize=3)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    lo = min((c["mean"] for r in agg.values() for c in r.values()), default=0)
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)  # then renamed: concurrent workers never leave a half-written plot
    os.replace(tmp, path)
    plt.close(fig)
