"""The two published codes as the anchor drivers load and step them (cloned by ``fetch.sh`` into
``published/``, git-ignored; nothing of them is copied into eqprop)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

PUBLISHED = Path(__file__).resolve().parent / "published"


def need(name: str) -> Path:
    """The clone ``published/NAME``; exits naming ``fetch.sh`` when it is missing."""
    path = PUBLISHED / name
    if not path.is_dir():
        raise SystemExit(f"{path} is missing: run benchmarks/anchors/fetch.sh first (it clones the published code there)")
    return path


def laborieux_utils():
    """Laborieux et al. 2021's ``model_utils``. It imports torchvision at the top and never uses it
    for the models timed here; a stub module stands in, as eqprop does not depend on torchvision."""
    root = need("Equilibrium-Propagation")
    sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import model_utils

    return model_utils


def laborieux_step(mu, model, opt, criterion, free: int, nudge: int, beta: float):
    """Their per-batch steps of ``model_utils.train`` with symmetric nudging ("thirdphase"): the free
    phase, ``+beta`` and ``-beta`` phases from the free state, ``compute_syn_grads``, ``opt.step``."""

    def step(x, y):
        neurons = model.init_neurons(x.size(0), x.device)
        neurons = model(x, y, neurons, free, beta=0.0, criterion=criterion)
        free_state = mu.copy(neurons)
        plus = mu.copy(model(x, y, neurons, nudge, beta=beta, criterion=criterion))
        minus = mu.copy(model(x, y, mu.copy(free_state), nudge, beta=-beta, criterion=criterion))
        model.compute_syn_grads(x, y, plus, minus, (beta, -beta), criterion)
        opt.step()

    return step
