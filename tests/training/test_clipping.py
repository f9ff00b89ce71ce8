"""optim.clip_grad_norm: the rule's update direction scaled down to a norm, direction kept (float64)."""
import json
import math

import pytest
import torch

from eqprop.config import load_config
from eqprop.models import HopfieldMLP
from eqprop.registry import ConfigError
from eqprop.rules import EP
from eqprop.training import Trainer
from eqprop.training.clipping import ClipGradNorm
from eqprop.training.optimizers import build_optimizer


def data(n=256):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 12, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_a_longer_direction_is_scaled_to_the_bound_and_a_shorter_one_left_alone():
    torch.manual_seed(0)
    model = HopfieldMLP([12, 8, 3]).double()
    x, y = data(32)
    EP(beta=0.5, free_steps=10, nudge_steps=4).step(model, x, y)
    raw = [p.grad.clone() for p in model.parameters()]
    norm = math.sqrt(sum(float(g.norm()) ** 2 for g in raw))
    stub = type("T", (), {"model": model})()

    clip = ClipGradNorm(2 * norm)
    clip.after_step(stub, None, None)
    for p, g in zip(model.parameters(), raw):
        assert torch.equal(p.grad, g)
    clip = ClipGradNorm(0.25 * norm)
    clip.after_step(stub, None, None)
    for p, g in zip(model.parameters(), raw):
        torch.testing.assert_close(p.grad, 0.25 * g, rtol=1e-9, atol=0)
    record = {}
    clip.on_epoch_end(stub, record)
    assert record["clipped_steps"] == 1 and math.isclose(record["grad_norm_max"], norm, rel_tol=1e-12)


def test_the_trainer_steps_with_the_clipped_direction(tmp_path):
    x, y = data()
    model = HopfieldMLP([12, 8, 3]).double()
    bound = 1e-3  # far below an EP estimate's norm here: every step is clipped
    t = Trainer(model, EP(beta=0.5, free_steps=5, nudge_steps=2), torch.optim.SGD(model.parameters(), lr=0.05),
                (x, y), epochs=1, batch_size=32, out=str(tmp_path / "run"), progress=False, log_every=1,
                callbacks=[ClipGradNorm(bound)])
    t.fit()
    steps = [json.loads(s) for s in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 8 and all(math.isclose(s["grad_norm"], bound, rel_tol=1e-6) for s in steps)
    (epoch,) = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epoch["clipped_steps"] == 8 and epoch["grad_norm_max"] > 10 * bound


def test_the_setting_is_the_sections_own_and_checked():
    cfg = load_config(None, ["optim.clip_grad_norm=2.0", "optim.momentum=0.9"])
    assert cfg.optim["clip_grad_norm"] == 2.0
    opt = build_optimizer(HopfieldMLP([12, 8, 3]), cfg.optim)  # not handed to torch.optim.SGD
    assert isinstance(opt, torch.optim.SGD) and "clip_grad_norm" not in opt.defaults
    assert load_config(None, []).optim["clip_grad_norm"] is None
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ConfigError, match=r"optim\.clip_grad_norm must be a number > 0"):
            ClipGradNorm(bad)
