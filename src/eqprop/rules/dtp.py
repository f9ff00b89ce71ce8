"""Difference target propagation (DTP) with layer-wise difference reconstruction (L-DRL).

Ernoult et al. 2022, "Towards scaling difference target propagation by learning backprop
targets" (REFERENCES §7). For a layered feedforward model with feedback (``h_i = F_i(h_{i-1})``,
``G_i: h_i -> h_{i-1}``, e.g. ``eqprop.models.FeedbackMLP``), one batch does:

1. **Feedback training** (per feedback module ``G_i``, i = N..2, ``feedback_steps`` iterations of
   SGD with momentum on that module alone, the forward activations held fixed):

   - ``l-drl`` (Ernoult et al. 2022), noise ``dx ~ sigma N(0, I)`` on ``h_{i-1}``, ``dy`` on ``h_i``::

         L = -2 <dx, G(F(h + dx)) - G(F(h))> + |G(F(h) + dy) - G(F(h))|^2     (/ sigma^2)

     whose expectation is, to second order in sigma, ``sigma^2 |J_G - J_F^T|_F^2 + const``:
     it makes ``J_G ~ J_F^T`` and DTP approximate backprop.
   - ``drl`` (difference reconstruction loss, Meulemans et al. 2020): the noisy ``h_{i-1} + dx`` is
     carried forward to the output and back with difference-corrected feedback to ``h_{i-1}``;
     ``L = |r_{i-1} - (h_{i-1} + dx)|^2 / sigma^2`` trains ``G_i`` (upper ``G`` s held fixed);
     it makes the feedback an inverse (``J_G J_F ~ I``: Gauss-Newton-like targets).
   - ``dtp`` (Lee et al. 2015): ``L = |G(F(h + dx)) - (h + dx)|^2`` (the plain reconstruction).

   Losses are summed over features and averaged over the batch.

2. **Targets** (no gradient): ``t_N = h_N - beta dl/dh_N`` with ``l`` the *per-sample* cross-
   entropy, and ``t_{i-1} = h_{i-1} + G_i(t_i) - G_i(h_i)``.

3. **Forward update**: layer ``i`` gets ``d/dtheta_i  1/2 |F_i(h_{i-1}) - t_i|^2`` (input
   ``h_{i-1}`` detached, batch mean) divided by ``beta``, so that the estimate is in the units
   of ``dL/dtheta`` (for a linear net with ``G_i = F_i^T`` it *equals* BP's gradient, whatever
   ``beta``) and the forward learning rate means what it means for ``bp``.

Feedback-optimizer state (momentum) is not kept by the rule (a rule is configuration only): the
``FeedbackOptimizerState`` callback the rule hands the trainer (``callbacks()``) carries it from
batch to batch and into checkpoints. Called directly, without it, momentum starts at zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..callbacks import Callback
from .backprop import feedforward_infer
from .base import Rule, StepResult, trainable

FEEDBACK_LOSSES = ("l-drl", "drl", "dtp")


def _per_layer(values, n: int, name: str) -> list:
    """One value for all ``n`` feedback modules, or exactly ``n`` (forward order G_2..G_N)."""
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"rule.{name} has {len(values)} values; give one for all feedback modules or one per "
                         f"module G_2..G_N ({n})")
    return values


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle between two tensors seen as vectors, in degrees (90 when one is zero)."""
    a, b = a.flatten().double(), b.flatten().double()
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return 90.0
    return math.degrees(math.acos(float((a @ b / (na * nb)).clamp(-1, 1))))


@dataclass
class DTP(Rule):
    """Difference target propagation; ``feedback`` picks how the feedback weights learn.

    beta: output nudge ``t_N = h_N - beta dl/dh_N`` (> 0); the update is divided by beta.
    feedback: ``l-drl`` | ``drl`` | ``dtp`` (see the module docstring).
    feedback_steps: feedback SGD iterations per batch, one value or one per G_2..G_N.
    feedback_lr: feedback SGD learning rate, one value or one per G_2..G_N.
    noise: noise scale sigma of the feedback loss, one value or one per G_2..G_N.
    feedback_momentum: momentum of the feedback SGD (kept across batches by the callback).
    diagnostics: hand the trainer the per-epoch angle / Jacobian-alignment callback.
    probe_size: samples in the diagnostics' probe batch.
    diagnostics_every: also measure every this many batches (0: once per epoch only); the
        within-epoch values go to the plot and the checkpoint, not to metrics.jsonl.
    """

    name: ClassVar[str] = "dtp"

    beta: float = 0.7
    feedback: str = "l-drl"
    feedback_steps: list[int] = (20,)
    feedback_lr: list[float] = (0.0005,)
    noise: list[float] = (0.1,)
    feedback_momentum: float = 0.9
    diagnostics: bool = True
    probe_size: int = 256
    diagnostics_every: int = 0

    def __post_init__(self):
        if self.feedback not in FEEDBACK_LOSSES:
            raise ValueError(f"unknown feedback loss {self.feedback!r}; valid: {', '.join(FEEDBACK_LOSSES)}")
        if not (math.isfinite(float(self.beta)) and self.beta > 0):
            raise ValueError(f"beta must be > 0 and finite, got {self.beta}")
        for name in ("feedback_steps", "feedback_lr", "noise"):
            vals = getattr(self, name)
            vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
            if any(not (math.isfinite(float(v)) and v >= 0) for v in vals):
                raise ValueError(f"rule.{name} must be >= 0, got {vals}")
            setattr(self, name, vals)
        if any(v <= 0 for v in self.noise):
            raise ValueError(f"rule.noise must be > 0 (the feedback losses need noise), got {self.noise}")
        if not 0 <= self.feedback_momentum < 1:
            raise ValueError(f"feedback_momentum must be in [0, 1), got {self.feedback_momentum}")

    def check_model(self, model) -> None:
        missing = [a for a in ("num_layers", "input_view", "layer", "feedback_layer", "feedback_modules", "forward_modules") if not hasattr(model, a)]
        if missing:
            raise ValueError(f"rule 'dtp' trains feedforward models with feedback modules (e.g. model 'dtp-mlp'); "
                             f"{type(model).__name__} lacks {', '.join(missing)}")

    def callbacks(self) -> list[Callback]:
        cbs: list[Callback] = [FeedbackOptimizerState()]
        if self.diagnostics:
            cbs.append(DTPDiagnostics(self, self.probe_size, self.diagnostics_every))
        return cbs

    # -- the pieces --------------------------------------------------------------------------
    @torch.no_grad()
    def activations(self, model, x) -> list[torch.Tensor]:
        """``[h_0, ..., h_N]``, detached."""
        hs = [model.input_view(x)]
        for i in range(1, model.num_layers + 1):
            hs.append(model.layer(i, hs[-1]))
        return hs

    @torch.no_grad()
    def targets(self, model, hs, y) -> list[torch.Tensor]:
        """``[None, t_1, ..., t_N]``; ``t_N = h_N - beta dl/dh_N`` (per-sample CE gradient)."""
        logits = hs[-1]
        dl = torch.softmax(logits, -1) - F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        ts = [None] * len(hs)
        ts[-1] = logits - self.beta * dl
        for i in range(model.num_layers, 1, -1):
            ts[i - 1] = hs[i - 1] + model.feedback_layer(i, ts[i]) - model.feedback_layer(i, hs[i])
        return ts

    def forward_update(self, model, x, y, hs=None) -> tuple[dict[str, torch.Tensor], torch.Tensor, list]:
        """``(grads, logits, per-layer losses)``: the DTP estimate for the forward parameters with the
        feedback as it is now (no feedback training); zeros for feedback parameters."""
        hs = self.activations(model, x) if hs is None else hs
        ts = self.targets(model, hs, y)
        named = trainable(model)
        params = [p for _, p in named]
        with torch.enable_grad():
            losses = []
            for i in range(1, model.num_layers + 1):
                out = model.layer(i, hs[i - 1])
                losses.append(0.5 * (out - ts[i]).pow(2).flatten(1).sum(1).mean())
            grads = torch.autograd.grad(torch.stack(losses).sum(), params, allow_unused=True)
        out = {n: (torch.zeros_like(p) if g is None else g.detach() / self.beta) for (n, p), g in zip(named, grads)}
        return out, hs[-1], [float(v.detach()) for v in losses]

    def feedback_loss(self, model, i: int, hs: list[torch.Tensor], sigma: float) -> torch.Tensor:
        """One sample of the feedback loss of ``G_i`` (graph to ``G_i``'s parameters)."""
        h_prev, h = hs[i - 1], hs[i]
        dx = sigma * torch.randn_like(h_prev)
        with torch.no_grad():
            h_noisy = model.layer(i, h_prev + dx)
        if self.feedback == "dtp":
            return (model.feedback_layer(i, h_noisy) - (h_prev + dx)).pow(2).flatten(1).sum(1).mean()
        if self.feedback == "l-drl":
            dy = sigma * torch.randn_like(h)
            r = model.feedback_layer(i, h)
            dr = model.feedback_layer(i, h_noisy) - r
            dr_y = model.feedback_layer(i, h + dy) - r
            loss = -2 * (dx * dr).flatten(1).sum(1) + dr_y.pow(2).flatten(1).sum(1)
            return loss.mean() / sigma ** 2
        # drl: carry the noise to the output and back with difference-corrected feedback
        with torch.no_grad():
            ups = [h_noisy]
            for k in range(i + 1, model.num_layers + 1):
                ups.append(model.layer(k, ups[-1]))
            r = ups[-1]
            for k in range(model.num_layers, i, -1):
                r = hs[k - 1] + model.feedback_layer(k, r) - model.feedback_layer(k, hs[k])
        rec = h_prev + model.feedback_layer(i, r) - model.feedback_layer(i, h)
        return (rec - (h_prev + dx)).pow(2).flatten(1).sum(1).mean() / sigma ** 2

    def train_feedback(self, model, hs, state: dict | None = None) -> dict[int, float]:
        """``feedback_steps`` SGD(momentum) iterations on each ``G_i`` (top down); returns the last
        loss per module. ``state``: ``{param name: momentum buffer}``, updated in place."""
        mods = model.feedback_modules()
        order = sorted(mods)  # forward order G_2..G_N for the per-layer settings
        steps = _per_layer(self.feedback_steps, len(order), "feedback_steps")
        lrs = _per_layer(self.feedback_lr, len(order), "feedback_lr")
        sigmas = _per_layer(self.noise, len(order), "noise")
        state = {} if state is None else state
        names = {p: n for n, p in model.named_parameters()}
        last = {}
        for idx in reversed(range(len(order))):
            i, mod = order[idx], mods[order[idx]]
            params = list(mod.parameters())
            if steps[idx] == 0 or not params:
                continue
            flags = [p.requires_grad for p in params]
            try:
                for p in params:
                    p.requires_grad_(True)
                for _ in range(int(steps[idx])):
                    with torch.enable_grad():
                        loss = self.feedback_loss(model, i, hs, float(sigmas[idx]))
                        grads = torch.autograd.grad(loss, params)
                    with torch.no_grad():
                        for p, g in zip(params, grads):
                            key = names[p]
                            buf = state.get(key)
                            if buf is None or buf.shape != p.shape:
                                buf = state[key] = g.clone()
                            else:
                                buf.mul_(self.feedback_momentum).add_(g)
                            p.sub_(lrs[idx] * buf)
                    last[i] = float(loss.detach())
            finally:
                for p, f in zip(params, flags):
                    p.requires_grad_(f)
        return last

    # -- the contract ------------------------------------------------------------------------
    def estimate(self, model, x, y, feedback_state: dict | None = None):
        """Train the feedback (``feedback_state``: momentum buffers, from the callback), then the
        DTP estimate of ``dL/dtheta`` for the forward parameters (zeros for feedback parameters,
        which the optimizer does not see: they have ``requires_grad=False``)."""
        model.train()
        hs = self.activations(model, x)
        fb = self.train_feedback(model, hs, feedback_state)
        grads, logits, losses = self.forward_update(model, x, y, hs)
        with torch.no_grad():
            loss = F.cross_entropy(logits, y)
        stats = {f"feedback_loss_{i}": v for i, v in fb.items()}
        stats.update({f"layer_loss_{i + 1}": v for i, v in enumerate(losses)})
        return grads, StepResult(loss=loss, output=logits.detach(), state=[], stats=stats)

    def infer(self, model, x, y, steps=None):
        return feedforward_infer(model, x, y)


# -- diagnostics ----------------------------------------------------------------------------------
def bp_gradients(model, x, y) -> dict[str, torch.Tensor]:
    """Autograd of the mean cross-entropy of ``model(x)`` (the ``bp`` rule's estimate)."""
    named = trainable(model)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return {n: (torch.zeros_like(p) if g is None else g) for (n, p), g in zip(named, grads)}


def layer_angles(rule: DTP, model, x, y) -> dict[int, float]:
    """Per forward layer i: angle (degrees) between the DTP update of ``F_i``'s parameters (weights
    and bias together, current feedback, no feedback training) and BP's gradient."""
    dtp, _, _ = rule.forward_update(model, x, y)
    bp = bp_gradients(model, x, y)
    names = {p: n for n, p in model.named_parameters()}
    out = {}
    for i, mod in model.forward_modules().items():
        keys = [names[p] for p in mod.parameters() if p.requires_grad]
        a = torch.cat([dtp[k].flatten() for k in keys])
        b = torch.cat([bp[k].flatten() for k in keys])
        out[i] = angle_degrees(a, b)
    return out


def jacobian_distance(model, i: int, hs: list[torch.Tensor], probes: int = 8, exact: bool = False,
                      generator: torch.Generator | None = None) -> float:
    """``mean_b |J_G(h_i) - J_F(h_{i-1})^T|_F^2 / mean_b |J_F|_F^2``, square-rooted: the relative
    Frobenius distance of the feedback Jacobian to the forward Jacobian's transpose on a batch.

    ``exact``: full per-sample Jacobians (small layers, tests); otherwise the squared norms are
    estimated with ``probes`` Gaussian vectors per sample (``E|A u|^2 = |A|_F^2``), using one JVP
    of G and one VJP of F per probe, so it also serves conv layers.
    """
    h_prev, h = hs[i - 1].detach(), hs[i].detach()
    f = lambda v: model.layer(i, v)
    g = lambda v: model.feedback_layer(i, v)
    if exact:
        diff, ref = 0.0, 0.0
        for b in range(h.shape[0]):
            jf = torch.autograd.functional.jacobian(f, h_prev[b:b + 1]).reshape(h[b].numel(), h_prev[b].numel())
            jg = torch.autograd.functional.jacobian(g, h[b:b + 1]).reshape(h_prev[b].numel(), h[b].numel())
            diff += float((jg - jf.t()).pow(2).sum())
            ref += float(jf.pow(2).sum())
        return math.sqrt(diff / ref)
    diff, ref = 0.0, 0.0
    for _ in range(probes):
        u = torch.randn(h.shape, generator=generator, dtype=h.dtype).to(h.device)
        _, jg_u = torch.func.jvp(g, (h,), (u,))
        _, vjp = torch.func.vjp(f, h_prev)
        (jft_u,) = vjp(u)
        diff += float((jg_u - jft_u).detach().pow(2).sum())
        ref += float(jft_u.detach().pow(2).sum())
    return math.sqrt(diff / ref)


class FeedbackOptimizerState(Callback):
    """Carries the feedback SGD's momentum buffers from batch to batch (``feedback_state=``) and
    into checkpoints."""

    def __init__(self):
        self.state: dict[str, torch.Tensor] = {}

    def before_step(self, trainer, batch) -> None:
        batch.step_kwargs["feedback_state"] = self.state

    def state_dict(self) -> dict:
        return {"momentum": dict(self.state)}

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state.get("momentum", {}))


class DTPDiagnostics(Callback):
    """Each epoch, on a fixed probe batch of training samples: per forward layer ``i`` the angle
    between the DTP update and BP's gradient (``dtp_angle_i``, degrees) and, per feedback module,
    the relative Frobenius distance of ``J_G`` to ``J_F^T`` (``dtp_jac_dist_i``). They go into the
    epoch's record (``metrics.jsonl``); the fit's end plots them to ``dtp_diagnostics.png``. The
    values before the first epoch (epoch 0) are kept in ``self.history`` too."""

    def __init__(self, rule: DTP, probe_size: int = 256, every: int = 0):
        self.rule, self.probe_size, self.every = rule, probe_size, every
        self.probe = None
        self.history: list[dict] = []

    def _probe(self, trainer):
        if self.probe is None:
            if getattr(trainer, "train", None) is not None:
                x, y = trainer.train
                self.probe = (x[:self.probe_size], y[:self.probe_size])
            else:
                x, y = next(iter(trainer.train_loader))
                self.probe = (x[:self.probe_size].to(device=trainer.device, dtype=trainer.dtype),
                              y[:self.probe_size].to(trainer.device))
        return self.probe

    def measure(self, model) -> dict:
        x, y = self.probe
        was = model.training
        model.eval()
        try:
            out = {f"dtp_angle_{i}": a for i, a in layer_angles(self.rule, model, x, y).items()}
            hs = self.rule.activations(model, x)
            gen = torch.Generator().manual_seed(0)
            for i in sorted(model.feedback_modules()):
                out[f"dtp_jac_dist_{i}"] = jacobian_distance(model, i, hs, generator=gen)
        finally:
            model.train(was)
        return out

    def on_fit_start(self, trainer) -> None:
        self._probe(trainer)
        if not self.history:
            self.history.append({"epoch": trainer.epoch, **self.measure(trainer.model)})

    def on_batch_end(self, trainer, batch, result) -> None:
        if self.every and (batch.step + 1) % self.every == 0:
            epoch = batch.step / max(trainer.steps_per_epoch, 1) + 1 / max(trainer.steps_per_epoch, 1)
            self.history.append({"epoch": epoch, "step": batch.step + 1, **self.measure(trainer.model)})

    def on_epoch_end(self, trainer, record: dict) -> None:
        m = self.measure(trainer.model)
        record.update(m)
        if not (self.history and self.history[-1]["epoch"] == record["epoch"]):
            self.history.append({"epoch": record["epoch"], **m})

    def on_fit_end(self, trainer, summary: dict) -> None:
        if not getattr(trainer, "is_main", True) or not self.history:
            return
        try:
            plot_diagnostics(self.history, trainer.out / "dtp_diagnostics.png")
        except (OSError, ValueError, RuntimeError, ImportError) as e:  # a plot must never fail a finished run
            print(f"[eqprop] dtp diagnostics plot skipped: {e}")

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))


def plot_diagnostics(history: list[dict], path, title: str = "") -> None:
    """Angles (left) and Jacobian distances (right) per layer against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [h["epoch"] for h in history]
    for key in sorted({k for h in history for k in h if k.startswith("dtp_angle_")}):
        a1.plot(epochs, [h.get(key) for h in history], marker="o" if len(history) < 30 else None, label=f"layer {key.rsplit('_', 1)[1]}")
    a1.axhline(30, color="grey", ls="--", lw=0.8)
    a1.set(xlabel="epoch", ylabel="angle to BP gradient (deg)", title="DTP update vs BP")
    a1.legend()
    for key in sorted({k for h in history for k in h if k.startswith("dtp_jac_dist_")}):
        a2.plot(epochs, [h.get(key) for h in history], marker="o" if len(history) < 30 else None, label=f"G_{key.rsplit('_', 1)[1]}")
    a2.set(xlabel="epoch", ylabel="|J_G - J_F^T|_F / |J_F|_F", title="feedback Jacobian alignment")
    a2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
