"""Every rule against the exact gradient, per parameter: cosine, relative error, norm ratio."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from ..rules import RULES, make_rule
from .common import cast_copy


def applies(rule: str, model) -> bool:
    """Whether the named rule can run on ``model`` (its ``check_model`` accepts it)."""
    try:
        make_rule(rule).check_model(model)
    except ValueError:
        return False
    return True


def _metrics(g: torch.Tensor, ref: torch.Tensor) -> dict:
    g, ref = g.flatten().double(), ref.flatten().double()
    gn, rn = float(g.norm()), float(ref.norm())
    cos = float(g @ ref) / (gn * rn) if gn > 0 and rn > 0 else float("nan")
    rel = float((g - ref).norm()) / rn if rn > 0 else float("nan")
    return {"cosine": cos, "rel_error": rel, "norm_ratio": gn / rn if rn > 0 else float("nan")}


@dataclass
class GradientComparison:
    """Rows ``{rule, param, cosine, rel_error, norm_ratio}``; ``param == "all"`` is every
    parameter concatenated. ``reference`` names the exact gradient they were compared with."""

    reference: str
    settings: dict
    rows: list[dict] = field(default_factory=list)

    def row(self, rule: str, param: str = "all") -> dict:
        for r in self.rows:
            if r["rule"] == rule and r["param"] == param:
                return r
        raise KeyError((rule, param))

    def to_dict(self) -> dict:
        return {"reference": self.reference, "settings": self.settings, "rows": self.rows}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self, per_param: bool = True) -> str:
        rows = [r for r in self.rows if per_param or r["param"] == "all"]
        w_rule = max(len("rule"), *(len(r["rule"]) for r in rows))
        w_par = max(len("parameter"), *(len(r["param"]) for r in rows))
        head = f"{'rule':<{w_rule}}  {'parameter':<{w_par}}  {'cosine':>10}  {'rel. error':>11}  {'norm ratio':>10}"
        lines = [f"gradients against {self.reference} ({self.settings.get('dtype', '')})", head, "-" * len(head)]
        last = None
        for r in rows:
            if last is not None and r["rule"] != last and per_param:
                lines.append("")
            last = r["rule"]
            lines.append(
                f"{r['rule']:<{w_rule}}  {r['param']:<{w_par}}  {r['cosine']:>10.6f}  "
                f"{r['rel_error']:>11.3e}  {r['norm_ratio']:>10.4f}"
            )
        return "\n".join(lines)


def compare_gradients(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    rules=None,
    reference: str = "rbp",
    dtype: torch.dtype | None = torch.float64,
    **settings,
) -> GradientComparison:
    """Compare rules' gradient estimates with a reference rule's, on one batch.

    Args:
        model: any model the rules apply to; a copy is cast to ``dtype`` (None keeps it).
        x, y: one batch.
        rules: rule names or objects (default: every registered rule that applies to the model).
        reference: the exact gradient, ``"rbp"`` (implicit differentiation) or ``"bptt"``.
        settings: rule settings shared by every rule (``beta``, ``free_steps``, ``nudge_steps``,
            ``mode``, ``tol``, ``adjoint_steps``, ...). Give converged budgets (with ``tol``) for
            a comparison of estimators rather than of budgets. RBP differentiates at the state
            every rule reaches (``resettle=0`` unless given): where that state is no stable fixed
            point, its disagreement with BPTT is the finding.
    """
    settings.setdefault("resettle", 0)
    m, x = cast_copy(model, x, dtype)
    if rules is None:
        rules = [name for name in RULES if name != reference and applies(name, m)] + [reference]
    ref = make_rule(reference, **settings).estimate(m, x, y)[0]
    names = list(ref)
    result = GradientComparison(
        reference=reference, settings={**settings, "dtype": str(next(m.parameters()).dtype).replace("torch.", "")}
    )
    for rule in rules:
        rule_obj = make_rule(rule, **settings)
        label = rule if isinstance(rule, str) else type(rule).__name__
        grads = rule_obj.estimate(m, x, y)[0]
        for n in names:
            result.rows.append({"rule": label, "param": n, **_metrics(grads[n], ref[n])})
        flat = torch.cat([grads[n].flatten() for n in names])
        flat_ref = torch.cat([ref[n].flatten() for n in names])
        result.rows.append({"rule": label, "param": "all", **_metrics(flat, flat_ref)})
    return result
