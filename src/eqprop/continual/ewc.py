"""Elastic weight consolidation (Kirkpatrick et al. 2017), online variant (Schwarz et al. 2018).

After task t the diagonal Fisher information of the task's log-likelihood,

    F_t = E_(x, y) [ (d log p(y | x; theta) / d theta)^2 ]       (the *empirical* Fisher: true labels y),

is estimated as the mean of squared per-sample gradients, and folded into a running importance
``F* <- gamma F* + F_t`` with anchor ``theta* <- theta`` (``gamma = 1``: every task counts fully).
While training later tasks the penalty

    L_EWC = (lambda / 2) sum_i F*_i (theta_i - theta*_i)^2

is added through its gradient ``lambda F* (theta - theta*)``, written into ``.grad`` after the
task loss's backward pass (``add_penalty_grad``), so it works with any optimizer. On a binarized
network ``theta`` are the hidden weights (batch norm is left free, as in Laborieux et al. 2021).
"""
from __future__ import annotations

import torch

__all__ = ["EWC", "diagonal_fisher"]


def diagonal_fisher(model: torch.nn.Module, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    batch_size: int = 100) -> list[torch.Tensor]:
    """Mean over the samples of ``(d log p(y_n | x_n) / d theta)^2`` for each tensor in ``params``.

    x: (N, ...) inputs; y: (N,) class labels. The model runs in eval mode on batches of
    ``batch_size``; each sample's gradient is its own backward pass through the batch's graph
    (exact also where batch norm couples the samples of a batch).
    """
    if len(x) == 0:
        raise ValueError("diagonal_fisher needs at least one sample")
    was_training = model.training
    model.eval()
    fisher = [torch.zeros_like(p) for p in params]
    try:
        for i in range(0, len(x), batch_size):
            logp = torch.log_softmax(model(x[i:i + batch_size]), dim=1)
            ll = logp.gather(1, y[i:i + batch_size, None]).squeeze(1)
            for n in range(len(ll)):
                grads = torch.autograd.grad(ll[n], params, retain_graph=n + 1 < len(ll), allow_unused=True)
                for f, g in zip(fisher, grads):
                    if g is not None:
                        f.add_(g.detach() ** 2)
    finally:
        model.train(was_training)
    return [f / len(x) for f in fisher]


class EWC:
    """Online EWC on ``params`` (e.g. ``model.binary_parameters()``).

    lam: the penalty strength lambda; gamma: decay of earlier tasks' Fisher (online EWC);
    samples: how many training samples estimate each task's Fisher.
    """

    def __init__(self, params, lam: float = 5000.0, gamma: float = 1.0, samples: int = 1000):
        self.params = list(params)
        if not lam >= 0 or not 0 <= gamma <= 1 or samples < 1:
            raise ValueError(f"EWC needs lam >= 0, 0 <= gamma <= 1 and samples >= 1; got {lam}, {gamma}, {samples}")
        self.lam, self.gamma, self.samples = float(lam), float(gamma), int(samples)
        self.fisher: list[torch.Tensor] | None = None
        self.anchor: list[torch.Tensor] | None = None

    def penalty(self) -> torch.Tensor:
        """``(lambda / 2) sum F* (theta - theta*)^2`` (0 before the first task ends)."""
        if self.fisher is None:
            return torch.zeros(())
        return 0.5 * self.lam * sum((f * (p.detach() - a) ** 2).sum() for p, f, a in zip(self.params, self.fisher, self.anchor))

    def before_step(self) -> None:
        pass

    @torch.no_grad()
    def add_penalty_grad(self) -> None:
        if self.fisher is None:
            return
        for p, f, a in zip(self.params, self.fisher, self.anchor):
            g = self.lam * f * (p - a)
            p.grad = g if p.grad is None else p.grad.add_(g)

    def after_step(self) -> None:
        pass

    def after_task(self, model, x, y) -> None:
        """Estimate this task's Fisher on ``samples`` of its training data and consolidate."""
        idx = torch.randperm(len(x))[:self.samples]
        new = diagonal_fisher(model, self.params, x[idx], y[idx])
        self.fisher = new if self.fisher is None else [self.gamma * f + n for f, n in zip(self.fisher, new)]
        self.anchor = [p.detach().clone() for p in self.params]

    def state_dict(self) -> dict:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.fisher, self.anchor = state["fisher"], state["anchor"]
