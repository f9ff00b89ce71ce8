"""The ``eqprop continual`` config: sections ``stream``, ``model``, ``method``, ``optim``, ``run``,
each a dataclass below (unknown keys are errors naming the valid ones; missing keys take these
defaults, which follow Laborieux et al. 2021's code unless marked)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..registry import ConfigError, coerce

__all__ = ["ContinualConfig", "load_continual_config"]


@dataclass
class StreamSection:
    """name: permuted-mnist | mnist-fashion | fashion-mnist | fashion-stream. n_tasks: permutations or
    stream subsets. seed: permutations and subsets. train_subset/test_subset: per split, for quick runs."""

    name: str = "permuted-mnist"
    n_tasks: int = 6
    seed: int = 0
    root: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None


@dataclass
class ModelSection:
    """bnn-mlp (hidden) or bnn-conv (channels); sign activations, identity weight STE and batch-norm
    with batch statistics, as in the paper."""

    name: str = "bnn-mlp"
    hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    channels: list[int] = field(default_factory=lambda: [32, 64])
    activation: str = "sign"
    weight_ste: str = "identity"
    track_running_stats: bool = False


@dataclass
class MethodSection:
    """name: plain (m = 0) | metaplastic | ewc | si | cascade.
    m: metaplasticity, one value or one per binary layer. ewc_lambda, ewc_gamma (online decay),
    fisher_samples. si_c, si_xi. cascade_areas, cascade_couplings (Benna-Fusi beakers)."""

    name: str = "metaplastic"
    m: list[float] = field(default_factory=lambda: [1.35])
    ewc_lambda: float = 5000.0
    ewc_gamma: float = 1.0
    fisher_samples: int = 1000
    si_c: float = 0.1
    si_xi: float = 0.1
    cascade_areas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    cascade_couplings: list[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4, 1e-5])


@dataclass
class OptimSection:
    """Adam on the hidden weights; reset_per_task: fresh Adam moments at each task (the paper's
    code; the cascade keeps its beakers regardless)."""

    lr: float = 0.005
    weight_decay: float = 1e-7
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    reset_per_task: bool = True


@dataclass
class RunSection:
    """epochs_per_task; batch_size; seed (init and shuffles); bn_per_task: score each task with the
    batch-norm state saved at its end (the paper's "task" scenario); out: run folder ({stream},
    {method}, {seed} filled in); resume from out/checkpoint.pt after the last finished task."""

    epochs_per_task: int = 1
    batch_size: int = 100
    seed: int = 0
    bn_per_task: bool = True
    eval_batch_size: int = 1000
    out: str = "runs/continual/{stream}-{method}-seed{seed}"
    resume: bool = True
    progress: bool = True


SECTIONS = {"stream": StreamSection, "model": ModelSection, "method": MethodSection, "optim": OptimSection,
            "run": RunSection}


@dataclass
class ContinualConfig:
    stream: StreamSection
    model: ModelSection
    method: MethodSection
    optim: OptimSection
    run: RunSection

    def to_dict(self) -> dict:
        return {k: dataclasses.asdict(getattr(self, k)) for k in SECTIONS}

    def out_dir(self) -> Path:
        m = self.method.name + (f"-m{'_'.join(f'{v:g}' for v in self.method.m)}" if self.method.name == "metaplastic" else "")
        return Path(self.run.out.format(stream=self.stream.name, method=m, seed=self.run.seed))


def _section(name: str, raw) -> object:
    cls = SECTIONS[name]
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section {name!r} must be a mapping of settings, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"{name}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**{k: coerce(f"{name}.{k}", v, hints[k]) for k, v in raw.items()})


def config_from_dict(data: dict) -> ContinualConfig:
    bad = sorted(set(data) - set(SECTIONS))
    if bad:
        raise ConfigError(f"unknown section(s) {', '.join(bad)}; an eqprop continual config has {', '.join(SECTIONS)}")
    return ContinualConfig(**{k: _section(k, data.get(k)) for k in SECTIONS})


def load_continual_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ContinualConfig:
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{str(p)!r} must hold a mapping of sections ({', '.join(SECTIONS)})")
    for item in overrides or []:
        key, eq, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not eq or not dot or section not in SECTIONS or not name:
            raise ConfigError(f"override {item!r} must be section.key=value with a section among {', '.join(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
        sec = data.setdefault(section, {}) or {}
        data[section] = sec
        sec[name] = value
    cfg = config_from_dict(data)
    _check(cfg)
    return cfg


def _check(cfg: ContinualConfig) -> None:
    methods = ("plain", "metaplastic", "ewc", "si", "cascade")
    if cfg.method.name not in methods:
        raise ConfigError(f"method.name {cfg.method.name!r} is unknown; valid: {', '.join(methods)}")
    if cfg.model.name not in ("bnn-mlp", "bnn-conv"):
        raise ConfigError(f"model.name {cfg.model.name!r} is unknown; valid: bnn-mlp, bnn-conv")
    if cfg.run.epochs_per_task < 1 or cfg.run.batch_size < 1:
        raise ConfigError("run.epochs_per_task and run.batch_size must be >= 1")
    mc = cfg.method
    if not all(0 <= v < float("inf") for v in mc.m):
        raise ConfigError(f"method.m must be finite and >= 0 (0: plain BNN training), got {mc.m}")
    if mc.ewc_lambda < 0 or not 0 <= mc.ewc_gamma <= 1 or mc.fisher_samples < 1 or mc.si_c < 0 or mc.si_xi <= 0:
        raise ConfigError("method: need ewc_lambda >= 0, 0 <= ewc_gamma <= 1, fisher_samples >= 1, si_c >= 0, si_xi > 0")
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"optim.betas needs two values, got {cfg.optim.betas}")
