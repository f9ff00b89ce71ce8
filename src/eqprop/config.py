"""Run configuration in sections, each checked against the component it names.

    data:  {name: fashion-mnist, train_subset: null, ...}    DataConfig + the dataset's own settings
    model: {name: hopfield-mlp, hidden: [500], ...}          the model builder's signature
    rule:  {name: ep, variant: centered, beta: 0.5, ...}     the rule dataclass's fields
    optim: {name: sgd, lr: [0.05, 0.02], momentum: 0.9}      OptimConfig + the optimizer's signature
    run:   {epochs: 8, batch_size: 64, seed: 0, out: ...}    eqprop.training.RunConfig

``load_config("configs/mnist_mlp_ep.yaml", ["rule.beta=0.2", "run.epochs=3"])`` reads the file,
applies ``section.key=value`` overrides (values parsed as YAML), then *resolves* every section:
unknown keys are errors naming the section, the component and its valid keys; missing keys take
the component's own defaults. A resolved config lists every setting, so it records a run fully.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .registry import DATASETS, MODELS, OPTIMIZERS, RULES, ConfigError, Entry, Registry, coerce

SECTIONS = ("data", "model", "rule", "optim", "run")


@dataclass
class DataConfig:
    """The ``data`` section's own settings (a registered dataset may add more).

    name: a registered dataset (``eqprop data list``) or ``"package.module:loader"``.
    root: a folder to search first (default: ``$EQPROP_DATA``, ``./data``, the per-user folder).
    train_subset / test_subset: N samples drawn at random (fixed seed) from the split.
    validation: hold out N samples of the training split (after ``train_subset``; fixed seed) and
        evaluate on them instead of the test set, which is then never read (``eqprop tune``).
    normalize: standardise image channels with the training set's mean and std.
    augment: random crop (padding 4) and horizontal flip of training images, per batch.
    download: fetch missing files first (needs internet; never in tests).
    """

    name: str = "fashion-mnist"
    root: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    validation: int | None = None
    normalize: bool = False
    augment: bool = False
    download: bool = False


@dataclass
class OptimConfig:
    """The ``optim`` section's own settings (the optimizer's keyword arguments come beside them).

    name: ``sgd``, ``adam``, ``adamw``, a registered optimizer or ``"package.module:Class"``.
    lr: one rate for all couplings, or one per coupling (a coupling = a module's parameters).
    schedule: ``cosine`` (per-batch decay to zero over the run) or ``none``.
    clip_grad_norm: None (no clipping) or the largest norm of the update direction the optimizer is
        given, all parameters together; a larger one is scaled down to it (``eqprop.training.clipping``):
        the usual guard against BPTT's exploding gradients.
    """

    name: str = "sgd"
    lr: list[float] = field(default_factory=lambda: [0.01])
    schedule: str = "cosine"
    clip_grad_norm: float | None = None


def _own(cls) -> dict:
    return {f.name: f for f in fields(cls)}


def _run_config_cls():
    from .training.run import RunConfig

    return RunConfig


@dataclass
class Config:
    """A resolved configuration: one dict per section, every setting present."""

    data: dict
    model: dict
    rule: dict
    optim: dict
    run: dict

    def to_dict(self) -> dict:
        return {s: copy.deepcopy(getattr(self, s)) for s in SECTIONS}

    def settings(self, section: str) -> dict:
        """A section's settings without its ``name``."""
        return {k: v for k, v in getattr(self, section).items() if k != "name"}

    def out_dir(self) -> Path:
        """``run.out`` with ``{data}``, ``{model}``, ``{rule}``, ``{seed}`` filled in."""
        name = lambda s: str(getattr(self, s)["name"]).replace(":", ".").replace("/", ".")  # noqa: E731
        try:
            return Path(str(self.run["out"]).format(data=name("data"), model=name("model"), rule=name("rule"),
                                                    seed=self.run["seed"]))
        except (KeyError, IndexError) as e:
            raise ConfigError(f"run.out {self.run['out']!r} names an unknown field {e}; "
                              f"valid: {{data}}, {{model}}, {{rule}}, {{seed}}") from None


DEFAULTS = {"data": {"name": "fashion-mnist"}, "model": {"name": "hopfield-mlp"}, "rule": {"name": "ep-centered"},
            "optim": {"name": "sgd"}, "run": {}}


def _registries() -> dict[str, Registry]:
    from . import models as _models  # noqa: F401  (each registers its built-in components)
    from . import rules as _rules  # noqa: F401
    from .training import data as _data  # noqa: F401
    from .training import optimizers as _optim  # noqa: F401

    return {"data": DATASETS, "model": MODELS, "rule": RULES, "optim": OPTIMIZERS}


def resolve_section(section: str, raw: dict) -> dict:
    """``raw`` checked against the component it names; missing settings filled with its defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"section {section!r} must be a mapping of settings, got {type(raw).__name__}")
    if section == "run":
        return _resolve_dataclass(section, _run_config_cls(), raw)
    name = raw.get("name", DEFAULTS[section]["name"])
    entry = _registries()[section].get(name)
    own = {"data": DataConfig, "optim": OptimConfig}.get(section)
    settings = {k: v for k, v in raw.items() if k != "name"}
    out = {"name": name}
    if own is not None:  # the section's own keys, then the component's
        mine = {k: v for k, v in settings.items() if k in _own(own) and k != "name"}
        out.update({k: v for k, v in _resolve_dataclass(section, own, {"name": name, **mine}).items() if k != "name"})
        settings = {k: v for k, v in settings.items() if k not in _own(own)}
        try:
            out.update(entry.check(settings, section, skip=tuple(_own(own))))
        except ConfigError as e:
            valid = [k for k in _own(own) if k != "name"] + [k for k in entry.settings() if k not in _own(own)]
            raise ConfigError(f"{e}".split("; valid settings:")[0] + f"; valid settings: {', '.join(valid)}") from None
        return out
    out.update(entry.check(settings, section))
    return out


def _resolve_dataclass(section: str, cls, raw: dict) -> dict:
    valid = _own(cls)
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(map(repr, unknown))} in section {section!r}; "
                          f"valid settings: {', '.join(valid)}")
    entry = Entry(section, cls)
    return entry.check(raw, section)


def entry(section: str, cfg_section: dict) -> Entry:
    """The registry entry a resolved section names."""
    return _registries()[section].get(cfg_section["name"])


def config_from_dict(data: dict) -> Config:
    """Resolve a nested dict (as read from YAML) into a ``Config``."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}")
    flat = [k for k in data if k not in SECTIONS]
    if flat:
        raise ConfigError(flat_config_message(data, flat))
    _check_sections(data)
    return Config(**{s: resolve_section(s, dict(data.get(s) or DEFAULTS[s])) for s in SECTIONS})


def resolve_recorded(recorded) -> dict | None:
    """A configuration an earlier run recorded (its ``config.yaml``, its checkpoint's ``config``) as
    the current components resolve it. A setting a component gained since is filled in with the
    value that reproduces the recorded run: the component's ``absent_means[setting]`` where the new
    default changes behaviour (RBP's ``resettle``: a run recorded without it never resettled), else
    the default, which then keeps the old behaviour. So the record equals today's configuration of
    the same run, and differs from one that would now run differently. ``None`` when the current
    components reject it (a setting since removed, a malformed record): another configuration."""
    if not isinstance(recorded, dict):
        return None
    try:
        filled = {k: dict(v) if isinstance(v, dict) else v for k, v in recorded.items()}
        for section, registry in _registries().items():
            raw = filled.get(section)
            if isinstance(raw, dict):
                obj = registry.get(raw.get("name", DEFAULTS[section]["name"])).obj
                for k, v in getattr(obj, "absent_means", {}).items():
                    raw.setdefault(k, v)
        return config_from_dict(filled).to_dict()
    except ConfigError:
        return None


def parse_overrides(items: list[str]) -> dict:
    """``["rule.beta=0.1", "model.hidden=[256,128]"]`` -> ``{"rule": {"beta": 0.1}, "model": {...}}``."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. rule.beta=0.1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
        section, dot, name = key.partition(".")
        if not dot or section not in SECTIONS or not name:
            hint = FLAT_KEYS.get(key)
            fix = f"; did you mean {hint[0]}.{hint[1]}={raw}?" if hint else f"; sections: {', '.join(SECTIONS)}"
            raise ConfigError(f"override {item!r} must name a section, as section.key=value{fix}")
        out.setdefault(section, {})[name] = value
    return out


def _check_sections(data: dict) -> None:
    for s in SECTIONS:
        v = data.get(s)
        if v is not None and not isinstance(v, dict):
            raise ConfigError(f"section {s!r} must be a mapping of settings (e.g. '{s}: {{name: ...}}'), "
                              f"got {type(v).__name__} {v!r}")


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied section by section. Changing a section's ``name``
    starts that section afresh (another component has other settings) unless settings come too."""
    _check_sections(base)
    out = {s: dict(base.get(s) or {}) for s in SECTIONS}
    for section, values in overrides.items():
        if "name" in values and values["name"] != out[section].get("name"):
            out[section] = {}
        out[section].update(values)
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (configs live in configs/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A resolved ``Config`` from an optional YAML file, then ``section.key=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    flat = [k for k in data if k not in SECTIONS]
    if flat:
        raise ConfigError(flat_config_message(data, flat, path))
    return config_from_dict(merge(data, parse_overrides(overrides or [])))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# -- the flat configs of eqprop 0.1 --------------------------------------------------------------
# old key -> (section, new key)
FLAT_KEYS = {
    "dataset": ("data", "name"), "data_root": ("data", "root"), "train_subset": ("data", "train_subset"),
    "test_subset": ("data", "test_subset"), "augment": ("data", "augment"), "normalize": ("data", "normalize"),
    "model": ("model", "name"), "hidden": ("model", "hidden"), "activation": ("model", "activation"),
    "output": ("model", "output"), "gains": ("model", "gains"), "d_model": ("model", "d_model"),
    "d_state": ("model", "d_state"), "blocks": ("model", "blocks"), "hru": ("model", "hru"),
    "complex_hru": ("model", "complex"), "pool": ("model", "pool"), "asymmetry": ("model", "asymmetry"),
    "homeostasis": ("model", "homeostasis"), "homeostasis_probes": ("model", "homeostasis_probes"),
    "conv_channels": ("model", "channels"), "ebm_blocks": ("model", "blocks"), "conv_pool": ("model", "pool"),
    "rule": ("rule", "name"), "beta": ("rule", "beta"), "free_steps": ("rule", "free_steps"),
    "nudge_steps": ("rule", "nudge_steps"), "mode": ("rule", "mode"), "tol": ("rule", "tol"),
    "eval_steps": ("rule", "eval_steps"), "eps": ("rule", "eps"), "chunk": ("rule", "chunk"), "N": ("rule", "N"),
    "radius": ("rule", "radius"), "batched": ("rule", "batched"), "cep_lr": ("rule", "lr"),
    "relax_dtype": ("rule", "relax_dtype"), "warm_start": ("rule", "warm_start"),
    "optimizer": ("optim", "name"), "lr": ("optim", "lr"), "momentum": ("optim", "momentum"),
    "weight_decay": ("optim", "weight_decay"), "schedule": ("optim", "schedule"),
    "epochs": ("run", "epochs"), "batch_size": ("run", "batch_size"), "seed": ("run", "seed"),
    "device": ("run", "device"), "dtype": ("run", "dtype"), "out": ("run", "out"), "resume": ("run", "resume"),
    "progress": ("run", "progress"), "max_loss": ("run", "max_loss"),
}


def flat_config_message(data: dict, keys: list[str], path=None) -> str:
    where = f"{path}: " if path else ""
    known = [k for k in keys if k in FLAT_KEYS]
    if not known:
        return (f"{where}unknown top-level key(s) {', '.join(map(repr, keys))}; a config has the sections "
                f"{', '.join(SECTIONS)}")
    moves = ", ".join(f"{k} -> {'.'.join(FLAT_KEYS[k])}" for k in known[:12])
    return (f"{where}this is a flat config of eqprop 0.1 (top-level {', '.join(known[:5])}...); settings now "
            f"live in sections {', '.join(SECTIONS)}: {moves}. Convert it with "
            f"'eqprop config convert {path or 'OLD.yaml'}' (prints the new YAML).")


# the defaults of eqprop 0.1's flat TrainConfig: a converted file keeps meaning what it meant
FLAT_DEFAULTS = {
    "dataset": "fashion-mnist", "model": "hopfield-mlp", "hidden": [500], "activation": "hard_sigmoid",
    "output": "mse", "rule": "ep-centered", "beta": 0.5, "free_steps": 20, "nudge_steps": 8, "mode": "async",
    "optimizer": "sgd", "lr": [0.05, 0.02], "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine",
    "epochs": 5, "batch_size": 64, "seed": 0, "d_model": 32, "blocks": 2, "hru": "linear", "pool": "mean",
    "dt_range": [0.01, 0.5], "eps": 0.01, "chunk": 1024, "N": 4, "conv_pool": "max",
}


def convert_flat(data: dict) -> dict:
    """A flat eqprop-0.1 config as sections, with the same meaning: the old defaults are written
    out where the new components' defaults differ, ``bptt`` on a relaxing model keeps its
    truncation (``backprop_steps = nudge_steps``), ``cep`` its in-phase rates (``lr``), and
    settings the named components do not take are dropped (flat files carried every rule's)."""
    unknown = [k for k in data if k not in FLAT_KEYS and k != "dt_range"]
    if unknown:
        raise ConfigError(f"cannot convert unknown flat key(s) {', '.join(unknown)}")
    data = {**FLAT_DEFAULTS, **data}
    out: dict = {s: {} for s in SECTIONS}
    for k, v in data.items():
        if k == "dt_range":
            out["model"]["dt_min"], out["model"]["dt_max"] = v
            continue
        section, key = FLAT_KEYS[k]
        if data["model"] == "ffebm" and k in ("conv_channels", "ebm_blocks"):
            key = {"conv_channels": "conv_channels", "ebm_blocks": "blocks"}[k]
        if data["model"] == "ffebm" and k == "blocks":
            continue
        if (k == "conv_pool") != (data["model"] in ("conv-hopfield", "vector-field-conv")) and k in ("pool", "conv_pool"):
            continue  # conv_pool is the conv nets' pool; pool the HSSM's
        out[section][key] = v
    if data["optimizer"] != "sgd":
        out["optim"].pop("momentum", None)
    if data["rule"] == "cep" and data.get("cep_lr") is None:
        out["rule"]["lr"] = data["lr"]
    if data["rule"] == "bptt" and data["model"] != "hssm":
        out["rule"]["backprop_steps"] = data["nudge_steps"]
    if data["model"] == "hssm":  # sequence models do not relax: no relaxation settings
        out["rule"] = {k: v for k, v in out["rule"].items() if k not in ("free_steps", "mode", "nudge_steps", "beta")}
    reg = _registries()
    for section in ("data", "model", "rule", "optim"):
        name = out[section].get("name", DEFAULTS[section]["name"])
        valid = set(reg[section].get(name).settings()) | ({"lr", "schedule"} if section == "optim" else set()) \
            | (set(_own(DataConfig)) if section == "data" else set())
        out[section] = {"name": name, **{k: v for k, v in out[section].items() if k in valid and v is not None}}
    out["run"] = {k: v for k, v in out["run"].items() if v is not None}
    return {s: v for s, v in out.items() if v}


__all__ = ["Config", "ConfigError", "DataConfig", "OptimConfig", "SECTIONS", "config_from_dict", "convert_flat",
           "load_config", "merge", "parse_overrides", "resolve_section", "save_config", "coerce"]


def save_config_dict(data: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
