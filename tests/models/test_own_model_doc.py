"""The template of docs/own_model.md is a working model: it passes check_model and trains."""
import re
from pathlib import Path

import torch

import eqprop
from eqprop.diagnostics import check_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "own_model.md"


def _template():
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    return ns["TwoLayerHopfield"]


def test_the_template_passes_check_model_with_ep():
    cls = _template()
    torch.manual_seed(0)
    model = cls(12, 10, 4)
    rule = eqprop.rules.EP(beta=1e-3, free_steps=400, nudge_steps=400, tol=1e-13)
    report = check_model(model, rule=rule, steps=400, directions=2)
    assert report.ok, report.table()
    fd = next(r for r in report.rows if r["check"] == "finite differences")
    assert fd["value"] <= 1e-6


def test_the_template_learns_a_separable_task():
    cls = _template()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centers = torch.rand(3, 12, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    x = (centers[y] + 0.1 * torch.randn(300, 12, generator=g)).clamp(0, 1)
    model = cls(12, 32, 3)
    rule = eqprop.rules.EP(beta=0.5, free_steps=20, nudge_steps=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = float((rule.infer(model, x, y).output.argmax(1) == y).float().mean())
    for _ in range(30):
        for k in range(0, 300, 30):
            opt.zero_grad()
            rule.step(model, x[k:k + 30], y[k:k + 30])
            opt.step()
    after = float((rule.infer(model, x, y).output.argmax(1) == y).float().mean())
    assert after >= 0.95 and after > before + 0.3, (before, after)
