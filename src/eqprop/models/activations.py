"""Activations of energy-based models, each given with the potential that makes it a minimiser.

A layer of state ``s`` driven by a field ``u`` (its pre-activation) minimises ``G(s) - u . s``;
the minimiser is ``s = sigma(u)`` where ``sigma = (G')^{-1}``. Writing the energy with ``G``
instead of ``1/2 |s|^2`` makes the layer-wise fixed-point update ``s <- sigma(u)`` *exact*
block-coordinate minimisation, for any activation (Scellier 2023, "box" Hopfield energies).

| name           | sigma(u)          | G(s)                                  | state range |
|----------------|-------------------|---------------------------------------|-------------|
| hard_sigmoid   | clamp(u, 0, 1)    | s^2 / 2 (+ indicator of [0, 1])       | [0, 1]      |
| sigmoid        | 1 / (1 + e^-u)    | s log s + (1 - s) log(1 - s)          | (0, 1)      |
| linear         | u                 | s^2 / 2                               | all reals   |

``linear`` is for output layers (the comparative study's MSE output, Scellier et al. 2023): a
clamped output unit driven below 0 for every input carries no gradient for any rule.

``holomorphic``: whether ``sigma`` and ``G`` extend to complex states as holomorphic functions
(needed by holomorphic EP, which relaxes with complex nudges). The sigmoid does, on a
neighbourhood of the real segment (0, 1) (principal logarithm); the hard sigmoid's clamp does not.
For complex inputs the sigmoid's ``inverse``/``potential`` skip the clamp that guards the real logs.
"""
from __future__ import annotations

import torch


class Activation:
    """``sigma`` (``__call__``), its inverse ``G'`` (``inverse``) and the potential ``G``."""

    name: str = ""
    holomorphic: bool = False

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def potential(self, s: torch.Tensor) -> torch.Tensor:
        """Elementwise ``G(s)``, same shape as ``s``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class HardSigmoid(Activation):
    name = "hard_sigmoid"

    def __call__(self, u):
        return u.clamp(0.0, 1.0)

    def inverse(self, s):
        return s

    def potential(self, s):
        return 0.5 * s * s


class Sigmoid(Activation):
    name = "sigmoid"
    eps = 1e-12
    holomorphic = True

    def __call__(self, u):
        return torch.sigmoid(u)

    def inverse(self, s):
        if not s.is_complex():
            s = s.clamp(self.eps, 1 - self.eps)
        return torch.log(s) - torch.log1p(-s)

    def potential(self, s):
        if not s.is_complex():
            s = s.clamp(self.eps, 1 - self.eps)
        return s * torch.log(s) + (1 - s) * torch.log1p(-s)


class Linear(Activation):
    name = "linear"
    holomorphic = True

    def __call__(self, u):
        return u

    def inverse(self, s):
        return s

    def potential(self, s):
        return 0.5 * s * s


ACTIVATIONS = {cls.name: cls for cls in (HardSigmoid, Sigmoid, Linear)}


def get_activation(name: str | Activation) -> Activation:
    """Return the activation called ``name``; raises ``ValueError`` listing the valid names."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid activations: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
