"""eqprop: learning rules that physical systems can carry out, checked against exact gradients.

    model = eqprop.models.HopfieldMLP([784, 500, 10])
    rule = eqprop.rules.EP(variant="centered", beta=0.2, free_steps=30, nudge_steps=10)
    out = rule.step(model, x, y)      # relaxes, nudges, writes p.grad
    optimizer.step()
"""

__version__ = "0.1.0"

from . import diagnostics, dynamics, models, rules  # noqa: E402
from .callbacks import Batch, Callback  # noqa: E402
from .diagnostics.check import check_model  # noqa: E402
from .dynamics import Clamp, Nudge, relax  # noqa: E402
from .functional import equilibrium_loss, gradients  # noqa: E402
from .registry import ConfigError, register_dataset, register_model, register_optimizer, register_rule  # noqa: E402
from .training import RunConfig, Trainer  # noqa: E402

__all__ = ["Batch", "Callback", "Clamp", "check_model", "ConfigError", "Nudge", "RunConfig", "Trainer", "diagnostics", "dynamics",
           "equilibrium_loss", "gradients", "models", "register_dataset", "register_model", "register_optimizer",
           "register_rule", "relax", "rules"]
