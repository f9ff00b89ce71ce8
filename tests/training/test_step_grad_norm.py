"""Per-step records (``run.log_every``) carry the norm of the update direction each rule wrote."""
import json
import math

import torch

from eqprop.models import HopfieldMLP
from eqprop.rules import EP
from eqprop.training import Trainer


def test_step_records_hold_the_gradient_norms_of_that_step(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 12, generator=g), torch.randint(0, 3, (256,), generator=g)
    model = HopfieldMLP([12, 8, 3])
    t = Trainer(model, EP(beta=0.5, free_steps=5, nudge_steps=2), torch.optim.SGD(model.parameters(), lr=0.05),
                (x, y), epochs=1, batch_size=32, out=str(tmp_path / "run"), progress=False, log_every=1)
    t.fit()
    steps = [json.loads(s) for s in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(8))
    last = steps[-1]  # the model's .grad still holds the last step's estimate
    names = [n for n, p in model.named_parameters()]
    assert {k for k in last if k.startswith("grad_norm/")} == {f"grad_norm/{n}" for n in names}
    for n, p in model.named_parameters():
        assert math.isclose(last[f"grad_norm/{n}"], float(p.grad.double().norm()), rel_tol=1e-12)
    total = math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in model.parameters()))
    assert math.isclose(last["grad_norm"], total, rel_tol=1e-12) and total > 0
    assert len({s["grad_norm"] for s in steps}) == len(steps)  # a new value each step
