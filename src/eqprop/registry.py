"""One registry per kind of component (models, rules, datasets, optimizers), and their settings.

A registered component is a callable (a class or a builder function) plus fixed keyword values
(e.g. ``ep-centered`` is ``EP`` with ``variant="centered"``). Its *settings* are read off its own
signature, or its dataclass fields, so defaults live in exactly one place: the component.

    @eqprop.register_model("skip-hopfield")
    class SkipHopfield(eqprop.models.EnergyModel):
        def __init__(self, input_shape, num_outputs, hidden: int = 256): ...

    @eqprop.register_rule("my-ep")
    @dataclass
    class MyEP(eqprop.rules.EP):
        damping: float = 0.0

A config may also name a component by import path, ``"mypkg.models:SkipHopfield"``, without
registering it. Unknown names raise ``ConfigError`` listing the valid ones.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable


class ConfigError(ValueError):
    """A setting, name or pairing in a configuration is not valid; the message says the fix."""


# keyword names a builder receives from the trainer rather than from the config
CONTEXT_ARGS = ("input_shape", "num_outputs", "params", "self", "cls")


@dataclass
class Setting:
    name: str
    type: Any = Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass
class Entry:
    """A registered component: ``obj`` called with ``fixed`` and the user's settings."""

    name: str
    obj: Callable
    fixed: dict = field(default_factory=dict)
    settings_from: Any = None  # where ``**kwargs`` of a builder end up (their settings count too)
    exclude: tuple = ()        # settings the builder fills in itself (e.g. ``sizes``)
    listed: bool = True        # False: a general name whose variants are registered too (``ep``)

    @property
    def builder(self) -> Callable:
        return getattr(self.obj, "from_data", self.obj)

    def settings(self) -> dict[str, Setting]:
        """Every setting a config may give, with its type and default (fixed ones excluded)."""
        out = _settings_of(self.builder)
        if self.settings_from is not None:
            for k, s in _settings_of(self.settings_from).items():
                out.setdefault(k, s)
        for k in list(out):
            if k in self.fixed or k in self.exclude or k in CONTEXT_ARGS:
                del out[k]
        return out

    def check(self, settings: dict, section: str, skip=()) -> dict:
        """``settings`` checked and coerced to the declared types, missing ones filled with defaults
        (``skip``: settings the caller owns, left out). A component's ``setting_aliases``
        (``{"radius": "beta"}``) fill an unset setting from another one given."""
        valid = {k: s for k, s in self.settings().items() if k not in skip}
        settings = dict(settings)
        for key, source in getattr(self.obj, "setting_aliases", {}).items():
            if key in valid and settings.get(key) is None and settings.get(source) is not None:
                settings[key] = settings[source]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(map(repr, unknown))} in section {section!r} for "
                f"{section} {self.name!r}; valid settings: {', '.join(valid) or '(none)'}"
            )
        out = {}
        for k, s in valid.items():
            if k in settings:
                out[k] = coerce(f"{section}.{k}", settings[k], s.type)
            elif not s.required:
                try:  # defaults in the declared form too (a tuple default of a list setting -> list)
                    out[k] = coerce(f"{section}.{k}", s.default, s.type) if s.default is not None else None
                except ConfigError:
                    out[k] = s.default
            else:
                raise ConfigError(f"{section} {self.name!r} needs the setting {section}.{k}")
        return out

    def build(self, settings: dict, **context):
        """Call the component with the fixed values, ``settings`` and the context arguments it takes."""
        fn = self.builder
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        ctx = {k: v for k, v in context.items() if k in params or takes_any}
        return fn(**ctx, **self.fixed, **settings)


def _settings_of(obj) -> dict[str, Setting]:
    if dataclasses.is_dataclass(obj) and isinstance(obj, type):
        hints = _hints(obj)
        out = {}
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = inspect.Parameter.empty
            out[f.name] = Setting(f.name, hints.get(f.name, Any), default)
        return out
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    hints = _hints(target)
    out = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in CONTEXT_ARGS:
            continue
        out[p.name] = Setting(p.name, hints.get(p.name, Any), p.default)
    return out


def _hints(obj) -> dict:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not resolve: accept any value
        return {}


def coerce(name: str, value, tp):
    """``value`` checked against the annotation ``tp``; scalars promoted where a list is expected."""
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce(name, value, a)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if errors else ConfigError(f"{name}: cannot be {value!r}")
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence) or tp in (list, tuple):
        item = args[0] if args else Any
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            value = [value]
        return [coerce(name, v, item) for v in value]
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} expects a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} expects a number, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name} expects an integer, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} expects true or false, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name} expects a string, got {value!r}")
    if tp is complex and isinstance(value, (int, float, complex)) and not isinstance(value, bool):
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{name} expects {tp.__name__}, got {value!r}")
    return value


class Registry:
    """Named components of one kind; ``register`` is a decorator (or a plain call)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, obj: Callable | None = None, *, settings_from=None, exclude=(), listed=True,
                 **fixed):
        def add(o):
            self._entries[name] = Entry(name, o, dict(fixed), settings_from, tuple(exclude), listed)
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> Entry:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            return self._entries[name]
        if ":" in name:
            return Entry(name, import_path(name, self.kind))
        raise ConfigError(
            f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())} "
            f"(or an import path 'package.module:Name')"
        )

    def names(self) -> list[str]:
        """Every registered name."""
        return list(self._entries)

    def __iter__(self):
        """The listed names (e.g. ``ep-positive``, ``ep-centered``, not the general ``ep``)."""
        return iter([n for n, e in self._entries.items() if e.listed])

    def __contains__(self, name) -> bool:
        return name in self._entries


def import_path(path: str, kind: str = "component"):
    """The object named ``"package.module:Name"`` (``Name`` may be dotted)."""
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"{kind} {path!r}: cannot import module {module!r} ({e}); is it on PYTHONPATH?") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{kind} {path!r}: module {module!r} has no attribute {attr!r}") from None
    return obj


MODELS = Registry("model")
RULES = Registry("rule")
DATASETS = Registry("dataset")
OPTIMIZERS = Registry("optimizer")


def register_model(name: str, obj=None, **kw):
    """Register a model class or builder ``(input_shape, num_outputs, **settings) -> nn.Module``."""
    return MODELS.register(name, obj, **kw)


def register_rule(name: str, obj=None, **fixed):
    """Register a rule class (a dataclass whose fields are its settings); ``fixed`` pins some."""
    return RULES.register(name, obj, **fixed)


def register_dataset(name: str, obj=None, **kw):
    """Register a dataset loader ``(split, root=None, **settings)`` returning an
    ``eqprop.data.Dataset``, a ``(x, y)`` pair of tensors or a ``TensorDataset``."""
    kw.setdefault("exclude", ("split", "root", "download"))
    return DATASETS.register(name, obj, **kw)


def register_optimizer(name: str, obj=None, **kw):
    """Register an optimizer class ``(params, **settings)`` (e.g. a physical, device-aware one)."""
    return OPTIMIZERS.register(name, obj, **kw)


# the flip optimizer of binary EP (Laydevant et al. 2021; eqprop.optim.binary)
from .optim.binary import FlipOptimizer as _FlipOptimizer  # noqa: E402

OPTIMIZERS.register("flip", _FlipOptimizer)
