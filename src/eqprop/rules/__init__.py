"""Learning rules: each writes ``p.grad`` for the model's parameters, nothing else.

String names (configs, CLI): ``cl, ep-positive, ep-negative, ep-centered, ep-random,
cpl-positive, cpl-negative, cpl-centered, bptt, rbp, rhel`` (``bptt`` also serves sequence
models, ``rhel`` trains Hamiltonian state-space models only), ``hep`` (holomorphic EP),
``cep`` (continual EP), ``ffebm`` / ``ffebm-implicit`` (chains of feedforward and energy blocks).
"""
from __future__ import annotations

import dataclasses

from .base import Rule, StepResult, energy_contrast
from .ep import CL, EP, CpL
from .reference import BPTT, RBP
from .rhel import RHEL
from .holomorphic import HolomorphicEP
from .continual import ContinualEP
from .ffebm import FFEBMEP, FFEBMImplicit

RULES: dict[str, tuple[type[Rule], dict]] = {
    "cl": (CL, {}),
    "ep-positive": (EP, {"variant": "positive"}),
    "ep-negative": (EP, {"variant": "negative"}),
    "ep-centered": (EP, {"variant": "centered"}),
    "ep-random": (EP, {"variant": "random"}),
    "cpl-positive": (CpL, {"variant": "positive"}),
    "cpl-negative": (CpL, {"variant": "negative"}),
    "cpl-centered": (CpL, {"variant": "centered"}),
    "bptt": (BPTT, {}),
    "rbp": (RBP, {}),
    "rhel": (RHEL, {}),
    "hep": (HolomorphicEP, {}),
    "cep": (ContinualEP, {}),
    "ffebm": (FFEBMEP, {}),
    "ffebm-implicit": (FFEBMImplicit, {}),
}


def rule_names() -> list[str]:
    return list(RULES)


def make_rule(name: str | Rule, **settings) -> Rule:
    """Build a rule from its string name; settings that only other rules take are ignored.

    ``bptt`` backpropagates through the last ``nudge_steps`` sweeps when ``nudge_steps`` is given
    (truncated BPTT, the training-time budget of the comparative study), unless
    ``backprop_steps`` is set. Unknown names, and settings no rule takes, raise ``ValueError``
    listing the valid ones.
    """
    if isinstance(name, Rule):
        return name
    try:
        cls, fixed = RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}; valid rules: {', '.join(RULES)}") from None
    known = {f.name for c, _ in RULES.values() for f in dataclasses.fields(c)} | {"nudge_steps"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown rule setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(known))}")
    settings = {k: v for k, v in settings.items() if v is not None}
    if cls is BPTT and "backprop_steps" not in settings and "nudge_steps" in settings:
        settings["backprop_steps"] = settings["nudge_steps"]
    for key, source in getattr(cls, "setting_aliases", {}).items():  # e.g. hep: radius <- beta
        if key not in settings and source in settings:
            settings[key] = settings[source]
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in settings.items() if k in fields}
    kwargs.update(fixed)
    return cls(**kwargs)


__all__ = ["BPTT", "CL", "CpL", "EP", "RBP", "RHEL", "ContinualEP", "FFEBMEP", "FFEBMImplicit", "HolomorphicEP", "RULES", "Rule", "StepResult", "energy_contrast", "make_rule", "rule_names"]
