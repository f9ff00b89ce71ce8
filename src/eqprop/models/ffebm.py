"""Feedforward-tied energy-based models, ff-EBMs (Nest & Ernoult 2024; REFERENCES §4).

A chain of blocks ``x_{k+1} = B_k(x_k)``: a *feedforward* block is any ``nn.Module`` (conv,
batch norm, pooling, linear, ...); an *energy-based* block is an ``EnergyModel`` driven by its
input ``u = x_k``, whose output is the equilibrium of its last layer, ``x_{k+1} = s*_out(u)``.
The chain's loss is ``C(x_K, y)`` (cross-entropy of logits or squared error of one-hot targets).

``HopfieldBlock`` is the dense energy block: a ``HopfieldMLP`` whose input ``x`` is the drive
``u`` (``layers[0]`` couples ``u`` to the first free layer) and whose "cost" is the linear probe
``C_k(s, delta) = delta . s_out``: nudging it with ``beta`` is nudging with the error ``delta``
that arrives from above, ``E_k(s) + beta delta . s_out``.

This module only describes the chain; ``eqprop.rules.ffebm`` settles and trains it.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import EnergyModel, one_hot_targets
from .hopfield import HopfieldMLP

COSTS = ("ce", "mse")


class HopfieldBlock(HopfieldMLP):
    """Energy block of an ff-EBM: ``sizes = [d_in, d_1, ..., d_out]``; output = last free layer.

    Inputs ``u`` of shape (B, d_in) or (B, ...) with ``d_in`` values (flattened). ``cost`` and
    ``cost_grad`` take the incoming error ``delta`` (B, d_out) in place of a target.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "hard_sigmoid", gains: Sequence[float] | None = None):
        super().__init__(sizes, activation=activation, output="mse", gains=gains)

    def cost(self, state, delta):
        s = state[self.output_index]
        return (s * delta.to(s.dtype)).sum(-1)

    def cost_grad(self, state, delta):
        s = state[self.output_index]
        return delta.to(s.dtype).expand_as(s)


def is_energy_block(block: nn.Module) -> bool:
    return isinstance(block, EnergyModel)


class FFEBM(nn.Module):
    """A chain of feedforward and energy-based blocks, trained by the ``ffebm`` rule.

    Args:
        blocks: the modules in order; ``EnergyModel`` instances (e.g. ``HopfieldBlock``) are
            settled to equilibrium, every other module is applied as a function.
        cost: ``"ce"`` (the last block gives logits) or ``"mse"`` (squared error to one-hot).
    """

    def __init__(self, blocks: Sequence[nn.Module], cost: str = "ce"):
        super().__init__()
        if cost not in COSTS:
            raise ValueError(f"unknown ff-EBM cost {cost!r}; valid: {', '.join(COSTS)}")
        if not any(is_energy_block(b) for b in blocks):
            raise ValueError("an ff-EBM needs at least one energy block (e.g. HopfieldBlock)")
        self.blocks = nn.ModuleList(blocks)
        self.cost_kind = cost

    @property
    def energy_blocks(self) -> list[int]:
        return [k for k, b in enumerate(self.blocks) if is_energy_block(b)]

    @property
    def holomorphic(self) -> bool:
        return False

    def cost(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (B,) of the chain's output ``out`` (B, num_outputs)."""
        t = one_hot_targets(y, out.shape[-1], out)
        if self.cost_kind == "mse":
            return 0.5 * ((out - t) ** 2).sum(-1)
        return -(t * F.log_softmax(out, dim=-1)).sum(-1)

    @property
    def param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def build_ffebm(
    input_shape: Sequence[int],
    num_outputs: int,
    conv_channels: Sequence[int] = (),
    hidden: Sequence[int] = (500,),
    blocks: Sequence[int] | None = None,
    activation: str = "hard_sigmoid",
    output: str = "ce",
    gains: Sequence[float] | None = None,
) -> FFEBM:
    """A conv front (``[3x3 conv, ReLU, 2x2 max-pool]`` per entry of ``conv_channels``) followed
    by Hopfield blocks holding the ``hidden`` layers, ``blocks[j]`` layers in block ``j``.

    ``output="ce"``: a linear readout (a feedforward block) gives the logits; ``output="mse"``:
    the last Hopfield block also holds the ``num_outputs`` output layer. ``gains``: one initial
    weight gain per Hopfield coupling, over all blocks in order.
    """
    input_shape = tuple(int(d) for d in input_shape)
    hidden = [int(h) for h in hidden]
    blocks = [len(hidden)] if blocks is None else [int(b) for b in blocks]
    if sum(blocks) != len(hidden) or min(blocks, default=0) < 1:
        raise ValueError(f"ebm_blocks {blocks} must split the {len(hidden)} hidden layers {hidden} into blocks of >= 1")
    mods: list[nn.Module] = []
    if conv_channels:
        if len(input_shape) != 3:
            raise ValueError(f"a conv front needs image inputs (C, H, W); got samples of shape {input_shape}")
        c, h, w = input_shape
        for ch in conv_channels:
            mods += [nn.Conv2d(c, int(ch), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = int(ch), h // 2, w // 2
        mods.append(nn.Flatten())
        d_in = c * h * w
    else:
        d_in = math.prod(input_shape)
    layers = [d_in] + hidden + ([num_outputs] if output == "mse" else [])
    counts = list(blocks)
    if output == "mse":
        counts[-1] += 1
    n_coupling = sum(counts)
    if gains is not None and len(gains) != n_coupling:
        raise ValueError(f"gains needs one value per Hopfield coupling ({n_coupling}), got {len(gains)}")
    start = 0
    for n in counts:
        g = None if gains is None else list(gains[start:start + n])
        mods.append(HopfieldBlock(layers[start:start + n + 1], activation=activation, gains=g))
        start += n
    if output == "ce":
        mods.append(nn.Linear(hidden[-1], num_outputs))
    elif output != "mse":
        raise ValueError(f"unknown output {output!r}; valid outputs: ce, mse")
    return FFEBM(mods, cost=output)
