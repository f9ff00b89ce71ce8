"""Run configuration: a dataclass that YAML files in ``configs/`` map onto one to one.

``load_config("configs/mnist_mlp_ep.yaml", ["epochs=3", "beta=0.2"])`` reads the file, then
applies ``key=value`` overrides (values parsed as YAML: ``hidden=[500,500]``, ``tol=null``).
Unknown keys raise an error that lists the valid ones.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"     # mnist | fashion-mnist | cifar10 | cifar100
    data_root: str | None = None       # default: $EQPROP_DATA, ./data, ../shared/data
    train_subset: int | None = None    # train on N training samples (a fixed random subset)
    test_subset: int | None = None     # evaluate on N test samples (a fixed random subset)
    # model
    model: str = "hopfield-mlp"
    hidden: list[int] = field(default_factory=lambda: [500])
    activation: str = "hard_sigmoid"
    output: str = "mse"                # mse | ce
    gains: list[float] | None = None
    # learning rule
    rule: str = "ep-centered"
    beta: float = 0.5
    free_steps: int = 20
    nudge_steps: int = 8
    mode: str = "async"                # async | sync
    tol: float | None = None
    eval_steps: int | None = None      # free sweeps at test time (default: free_steps)
    # optimisation
    optimizer: str = "sgd"             # sgd | adam
    lr: list[float] = field(default_factory=lambda: [0.05, 0.02])  # one per coupling, or one for all
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"           # cosine | none
    epochs: int = 5
    batch_size: int = 64
    # run
    seed: int = 0
    device: str = "cpu"                # cpu | cuda | auto
    dtype: str = "float32"             # float32 | float64
    out: str = "runs/{dataset}-{rule}-seed{seed}"
    resume: bool = True                # continue from OUT/checkpoint.pt when it exists
    progress: bool = True              # tqdm progress bars
    max_loss: float = 1e6              # a loss above this (or NaN) stops the run as diverged
    # sequence models (model=hssm) and RHEL (docs/rhel.md)
    d_model: int = 32                  # HSSM width
    d_state: int | None = None         # oscillators per HRU (default: d_model)
    blocks: int = 2                    # HSSM blocks [norm, HRU, GELU/GLU, residual]
    hru: str = "linear"                # linear | nonlinear
    complex_hru: bool = False          # complex B, C in the HRUs
    pool: str = "mean"                 # mean | last | none (sequence outputs)
    dt_range: list[float] = field(default_factory=lambda: [0.01, 0.5])  # initial HRU steps dt (log-uniform)
    eps: float = 0.01                  # RHEL error-kick size
    chunk: int | None = 1024           # RHEL time steps processed at once (memory O(chunk))
    # holomorphic EP, vector fields, C-EP, ff-EBMs (docs/holomorphic_ep.md, vector_field.md,
    # continual_ep.md, ffebm.md)
    N: int = 4                         # hep: points on the circle of nudges
    radius: float | None = None        # hep: |beta| of the complex nudges (default: beta)
    batched: bool = False              # hep: the N nudged phases as one batched relaxation
    asymmetry: float = 0.0             # vector-field-mlp: angle (deg) between feedback and forward weights
    homeostasis: float = 0.0           # coefficient of the Jacobian homeostasis loss ||J - J^T||_F^2
    homeostasis_probes: int = 1        # random probe pairs of its estimate, per batch
    cep_lr: list[float] | None = None  # cep: in-phase rates (default: lr), one per coupling or one for all
    conv_channels: list[int] = field(default_factory=list)  # ffebm: conv front (3x3 conv, ReLU, 2x2 max-pool each)
    ebm_blocks: list[int] | None = None  # ffebm: how many hidden layers each Hopfield block holds (default: one block)
    # convolutional Hopfield networks (model=conv-hopfield, docs/conv_hopfield.md) and fast paths
    conv_pool: str = "max"             # conv-hopfield: max | avg pooling (conv_channels: its layers)
    relax_dtype: str | None = None     # relax a bfloat16/float16 copy; float32 weights and gradients
    augment: bool = False              # images: random crop (padding 4) + horizontal flip per batch
    normalize: bool = False            # images: per-channel standardisation with train-set statistics
    warm_start: bool = False           # start each sample's free phase from its last free state

    def out_dir(self) -> Path:
        return Path(self.out.format(**dataclasses.asdict(self)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    pass


def _coerce(name: str, value, tp):
    """Check ``value`` against the field type ``tp``; promote scalars where the type is a list."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin is list:
        (item,) = args
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(name, v, item) for v in value]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp is str and isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"config key {name!r} expects {tp.__name__}, got {value!r}")
    return value


def config_from_dict(data: dict, base: TrainConfig | None = None) -> TrainConfig:
    base = base or TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    valid = [f.name for f in dataclasses.fields(TrainConfig)]
    updates = {}
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(valid)}")
        updates[key] = _coerce(key, value, hints[key])
    return dataclasses.replace(base, **updates)


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw) if raw != "" else None
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """TrainConfig from an optional YAML file, then ``key=value`` overrides."""
    cfg = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found (configs live in configs/)")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        cfg = config_from_dict(data, cfg)
    return config_from_dict(parse_overrides(overrides or []), cfg)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
