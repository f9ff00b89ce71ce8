"""Learning rules: each writes ``p.grad`` for the model's parameters, nothing else.

String names (configs, CLI): ``cl, ep-positive, ep-negative, ep-centered, ep-random,
cpl-positive, cpl-negative, cpl-centered, bptt, rbp, rhel`` (``bptt`` also serves sequence
models, ``rhel`` trains Hamiltonian state-space models only), ``hep`` (holomorphic EP),
``cep`` (continual EP), ``ffebm`` / ``ffebm-implicit`` (chains of feedforward and energy blocks), ``bp`` (feedforward
backprop), ``dtp`` (difference target propagation, feedback by L-DRL, DRL or DTP).
"""
from __future__ import annotations

from .base import RelaxationRule, Rule, StepResult, energy_contrast
from .ep import CL, EP, CpL
from .reference import BPTT, RBP
from .rhel import RHEL
from .holomorphic import HolomorphicEP
from .continual import ContinualEP
from .ffebm import FFEBMEP, FFEBMImplicit
from .backprop import Backprop
from .dtp import DTP

from ..registry import RULES, ConfigError  # noqa: E402

# Config names. ``ep``/``cpl`` take ``variant``; the hyphenated names pin it.
for _name, _cls, _fixed in [
    ("cl", CL, {}), ("ep", EP, {}), ("ep-positive", EP, {"variant": "positive"}), ("ep-negative", EP, {"variant": "negative"}),
    ("ep-centered", EP, {"variant": "centered"}), ("ep-random", EP, {"variant": "random"}),
    ("cpl", CpL, {}), ("cpl-positive", CpL, {"variant": "positive"}), ("cpl-negative", CpL, {"variant": "negative"}),
    ("cpl-centered", CpL, {"variant": "centered"}), ("bptt", BPTT, {}), ("rbp", RBP, {}),
    ("rhel", RHEL, {}), ("hep", HolomorphicEP, {}), ("cep", ContinualEP, {}), ("ffebm", FFEBMEP, {}),
    ("ffebm-implicit", FFEBMImplicit, {}), ("bp", Backprop, {}), ("dtp", DTP, {}),
]:
    RULES.register(_name, _cls, listed=_name not in ("ep", "cpl"), **_fixed)


def rule_names() -> list[str]:
    """The registered rules by their listed names (``ep-centered``, ...; ``ep`` and ``cpl``, which
    take ``variant``, are accepted too)."""
    return list(RULES)


def make_rule(name: str | Rule, strict: bool = False, **settings) -> Rule:
    """Build a rule from its registered name (or ``"pkg.module:Class"``).

    ``strict=False`` (diagnostics, grids): settings the rule does not take are ignored, so one
    set of settings can serve several rules; a setting *no* registered rule takes is still an
    error. ``strict=True`` (configs): any setting the rule does not take is an error.
    Unknown names raise ``ValueError`` listing the valid ones. ``None`` values mean "default".
    """
    if isinstance(name, Rule):
        return name
    try:
        entry = RULES.get(name)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    settings = {k: v for k, v in settings.items() if v is not None}
    for key, source in getattr(entry.obj, "setting_aliases", {}).items():  # e.g. hep: radius <- beta
        if key not in settings and source in settings:
            settings[key] = settings[source]
    valid = entry.settings()
    if not strict:
        known = {k for n in RULES.names() for k in RULES.get(n).settings()}
        unknown = sorted(set(settings) - known - set(valid))
        if unknown:
            raise ValueError(f"unknown rule setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(known))}")
        settings = {k: v for k, v in settings.items() if k in valid}
    return entry.build(entry.check(settings, "rule"))


__all__ = ["BPTT", "Backprop", "CL", "DTP", "CpL", "EP", "RBP", "RHEL", "ContinualEP", "FFEBMEP", "FFEBMImplicit", "HolomorphicEP", "RULES", "RelaxationRule", "Rule", "StepResult", "energy_contrast", "make_rule", "rule_names"]

# EqSpike (spiking EP, Martin et al. 2021): coding="spikes" (default) or "rates" (rate-based EP twin)
from .eqspike import EqSpike  # noqa: E402

RULES.register("eqspike", EqSpike)
__all__ += ["EqSpike"]
