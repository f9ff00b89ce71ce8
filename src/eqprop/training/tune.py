"""``eqprop tune``: each rule's own settings tuned on equal footing with Optuna.

    rules: [ep-centered, ep-negative, rbp]   # as in eqprop compare (names or entries)
    datasets: [fashion-mnist]
    out: runs/tune_fashion_mnist
    trials: 20            # the same budget for every rule (and dataset)
    validation: 10000     # training samples held out; trials are scored on them, never on the test set
    seed: 0               # training seed of every trial
    space:                # section.key: range; a rule.* key applies to the rules that take it
      rule.beta: {low: 0.05, high: 1.0, log: true}
      rule.nudge_steps: {low: 4, high: 16, int: true}
      optim.lr: {low: 0.003, high: 0.3, log: true}   # a list in the base: one value per coupling
    base: {...}           # a sectioned config shared by every trial

One Optuna study per (dataset, rule label), named ``DATASET/LABEL``, TPE sampler and median
pruner (on the per-epoch validation accuracy), stored in ``OUT/study.db`` (SQLite) unless
``storage`` gives a database URL. Rerunning the same command resumes every study: finished trials
are kept, the budget counts them, and a trial left running by a killed worker is failed after
``heartbeat_s`` and rerun with the same settings. Several workers (processes, or machines with a
shared database URL) may run the same command at once and share the trials.

Writes ``OUT/tuned.yaml`` (``rules: {dataset: [entry with the best settings]}``, which
``eqprop compare`` reads as ``rules: OUT/tuned.yaml``), ``OUT/tuned.md`` and per study
``OUT/DATASET/LABEL/history.png`` and ``importance.png``.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..callbacks import Callback
from ..config import SECTIONS, ConfigError, config_from_dict, merge, parse_overrides, read_yaml
from ..registry import RULES, import_path
from .compare import GRID_KEYS, CompareConfig, read_rules
from .logging import write_atomic

TUNE_KEYS = ("rules", "datasets", "out", "trials", "validation", "seed", "space", "storage",
             "heartbeat_s", "sampler_seed", "pruner_warmup", "objective")


@dataclass
class Range:
    """One searched setting: ``low..high`` (``log`` scale, ``int`` values) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    int: bool = False
    choices: list | None = None

    def __post_init__(self):
        if self.choices is None and (self.low is None or self.high is None or self.low > self.high):
            raise ConfigError(f"a tune range needs low <= high (or choices); got low={self.low}, high={self.high}")
        if self.log and self.choices is None and self.low <= 0:
            raise ConfigError(f"a log-scale range needs low > 0; got {self.low}")

    def suggest(self, trial, name: str):
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.int:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)


@dataclass
class TuneConfig:
    grid: CompareConfig
    trials: int = 20
    validation: int = 10000
    seed: int = 0
    space: dict = field(default_factory=dict)
    storage: str | None = None
    heartbeat_s: int = 60
    sampler_seed: int | None = None
    pruner_warmup: int = 1
    objective: str | None = None

    @property
    def out(self) -> Path:
        return Path(self.grid.out)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    def studies(self) -> list[tuple[str, str, dict]]:
        """``(dataset, label, base config dict)`` per study: the grid's cell for the tuning seed."""
        return [(c.dataset, c.label, c.config.to_dict()) for c in self.grid.cells()]

    def ranges(self, config: dict) -> dict[str, Range]:
        """The searched settings for one study's config: ``rule.*`` keys the rule takes, all others;
        a list-valued base setting (``optim.lr``) becomes one range per element (``optim.lr.0``, ...)."""
        takes = set(RULES.get(config["rule"]["name"]).settings())
        out = {}
        for key, spec in self.space.items():
            section, name = key.split(".", 1)
            if section == "rule" and name not in takes:
                continue
            current = config.get(section, {}).get(name)
            if isinstance(current, list) and (not isinstance(spec, dict) or "choices" not in spec):
                out.update({f"{key}.{i}": Range(**spec) for i in range(len(current))})
            else:
                out[key] = Range(**spec)
        return out


def load_tune_config(path: str | Path | None, overrides: list[str] | None = None) -> TuneConfig:
    data = read_yaml(path) if path is not None else {}
    unknown = set(data) - set(TUNE_KEYS) - {"base"}
    if unknown:
        raise ConfigError(f"unknown tune key(s) {', '.join(sorted(unknown))}; valid: base, {', '.join(TUNE_KEYS)}")
    rest = []
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if key in TUNE_KEYS:
            data[key] = yaml.safe_load(item.split("=", 1)[1])
        else:
            rest.append(item)
    if isinstance(data.get("rules"), str):
        data["rules"] = read_rules(Path(path).parent if path else Path("."), data["rules"])
    own = {k: data[k] for k in TUNE_KEYS if k in data and k not in GRID_KEYS}
    seed = int(own.pop("seed", 0))
    base = merge(data.get("base") or {}, parse_overrides(rest))
    for key in own.get("space") or {}:
        section = key.split(".", 1)[0]
        if "." not in key or section not in SECTIONS:
            raise ConfigError(f"tune space key {key!r} must be section.setting (sections: {', '.join(SECTIONS)})")
    grid = CompareConfig(base=base, seeds=[seed],
                         **{k: data[k] for k in ("rules", "datasets", "out") if k in data})
    grid.out = str(data.get("out", "runs/tune"))
    cfg = TuneConfig(grid=grid, seed=seed, **own)
    if cfg.trials < 1 or cfg.validation < 1:
        raise ConfigError(f"trials and validation must be >= 1; got trials={cfg.trials}, validation={cfg.validation}")
    for _, _, config in cfg.studies():  # every study resolves and every range is valid, before any run
        cfg.ranges(config)
    return cfg


def trial_config(cfg: TuneConfig, config: dict, params: dict, out: Path) -> dict:
    """The study's base config with a trial's settings, scored on the validation split."""
    config = copy.deepcopy(config)
    for key, value in params.items():
        parts = key.split(".")
        section, name = parts[0], parts[1]
        if len(parts) == 3:  # one element of a list-valued setting
            config[section][name] = list(config[section][name])
            config[section][name][int(parts[2])] = value
        else:
            config.setdefault(section, {})[name] = value
    config["data"]["validation"] = cfg.validation
    config["run"].update(out=str(out), progress=False, resume=True, seed=cfg.seed)
    return config


class ReportToTrial(Callback):
    """Reports each epoch's validation accuracy to the Optuna trial; prunes when the pruner says so."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, trainer, record: dict) -> None:
        import optuna

        acc = record.get("test_acc")
        if acc is None:
            return
        self.trial.report(float(acc), int(record["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {record['epoch']} at validation accuracy {acc:.4f}")


def train_objective(config: dict, trial) -> float:
    """Default objective: train the trial's config; the last epoch's validation accuracy.
    A run that diverges scores 0 (its message is kept in the trial's ``diverged`` attribute)."""
    from .trainer import DivergenceError, Trainer

    try:
        summary = Trainer.from_config(config_from_dict(config), callbacks=[ReportToTrial(trial)]).fit()
    except DivergenceError as e:
        trial.set_user_attr("diverged", str(e).splitlines()[0])
        return 0.0
    return float(summary["test_acc"])


def _study(cfg: TuneConfig, name: str):
    """Create or load one study. Workers starting together would race to create the database's
    tables: on the default SQLite file they take turns (a file lock); on a database URL a worker
    that loses the race tries again."""
    import fcntl

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy.exc import IntegrityError, OperationalError

    def create():
        storage = RDBStorage(cfg.storage_url, heartbeat_interval=cfg.heartbeat_s, grace_period=2 * cfg.heartbeat_s,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
        return optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            # TPE models the space after a few random trials: a third of the budget (3..10)
            sampler=optuna.samplers.TPESampler(seed=cfg.sampler_seed, n_startup_trials=min(10, max(3, cfg.trials // 3))),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=cfg.pruner_warmup),
        )

    with open(cfg.out / ".study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(5):
            try:
                return create()
            except (IntegrityError, OperationalError, optuna.exceptions.DuplicatedStudyError):
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))


def _counted(study) -> int:
    """Trials that used the budget: finished or pruned. Running ones are not counted (a worker
    killed before its first heartbeat would hold its trial RUNNING forever), so with several
    workers the budget is exceeded by at most one trial per extra worker."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_tune(cfg: TuneConfig, objective=None, progress: bool = True) -> dict:
    """Run (or resume, or join) every study to its budget; write the tuned rules and plots."""
    import optuna
    from tqdm.auto import tqdm

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats
    objective = objective or (import_path(cfg.objective, "objective") if cfg.objective else train_objective)
    cfg.out.mkdir(parents=True, exist_ok=True)
    studies = cfg.studies()
    bar = tqdm(total=cfg.trials * len(studies), desc="tune", unit="trial", disable=not progress)
    for k, (dataset, label, base) in enumerate(studies):
        study = _study(cfg, f"{dataset}/{label}")
        ranges = cfg.ranges(base)

        def run_trial(trial, base=base, ranges=ranges, dataset=dataset, label=label):
            params = {key: r.suggest(trial, key) for key, r in ranges.items()}
            trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
            out = cfg.out / dataset / label / f"trial{trial.number}"
            return objective(trial_config(cfg, base, params, out), trial)

        while True:
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, then retried
            done = _counted(study)
            bar.n = k * cfg.trials + min(done, cfg.trials)
            bar.set_postfix_str(f"{dataset}/{label}")
            if done >= cfg.trials:
                break
            study.optimize(run_trial, n_trials=1, catch=())  # a re-queued (retried) trial comes first
    bar.close()
    return write_results(cfg)


def write_results(cfg: TuneConfig) -> dict:
    """``tuned.yaml``/``tuned.md`` and the plots from the stored studies (also for a finished study)."""
    import optuna
    from optuna.trial import TrialState

    best: dict = {}
    rows = []
    for dataset, label, base in cfg.studies():
        study = optuna.load_study(study_name=f"{dataset}/{label}", storage=cfg.storage_url)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            continue
        t = max(done, key=lambda tr: tr.value)
        params = trial_config(cfg, base, t.params, Path("."))
        entry = {"name": base["rule"]["name"], "label": label}
        entry.update({k: params["rule"][k] for k in sorted({p.split(".")[1] for p in t.params if p.startswith("rule.")})})
        for section in sorted({p.split(".")[0] for p in t.params} - {"rule"}):
            entry[section] = {k: params[section][k] for k in sorted({p.split(".")[1] for p in t.params
                                                                     if p.startswith(section + ".")})}
        best.setdefault(dataset, []).append(entry)
        n_pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
        rows.append(f"| {dataset} | {label} | {100 * t.value:.2f} | {len(done)} + {n_pruned} pruned | "
                    f"{json.dumps({k: _short(v) for k, v in t.params.items()})} |")
        _plots(study, cfg.out / dataset / label)
    head = (f"# eqprop tune: best validation accuracy per rule\n\n{cfg.trials} trials per rule; validation: "
            f"{cfg.validation} training samples held out; training seed {cfg.seed}.\n\n"
            "| dataset | rule | best validation acc (%) | trials | settings |\n|---|---|---:|---|---|\n")
    write_atomic(cfg.out / "tuned.md", head + "\n".join(rows) + "\n")
    text = ("# best settings per dataset and rule from eqprop tune (validation accuracy);\n"
            f"# use in a grid as  rules: {cfg.out / 'tuned.yaml'}\n") + yaml.safe_dump({"rules": best}, sort_keys=False)
    write_atomic(cfg.out / "tuned.yaml", text)
    return best


def _short(v):
    return float(f"{v:.4g}") if isinstance(v, float) else v


def _plots(study, folder: Path) -> None:
    """Optuna's optimisation history and parameter importances as PNG (importance needs >= 2
    finished trials and more than one searched setting; skipped otherwise)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        for name, draw in (("history.png", ovm.plot_optimization_history), ("importance.png", ovm.plot_param_importances)):
            try:
                ax = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(7, 4)
            fig.tight_layout()
            tmp = folder / f".{name}.{os.getpid()}.png"
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, folder / name)
            plt.close(fig)
