"""Turn a ``TrainConfig`` into the objects it names: model, rule, optimizer, schedule."""
from __future__ import annotations

import math

import torch

from ..config import ConfigError, TrainConfig
from ..models import HSSM, HopfieldMLP
from ..models.conv import ConvHopfield
from ..models.ffebm import build_ffebm
from ..models.vector_field import VectorFieldMLP
from ..rules import make_rule

DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "none")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but torch sees no CUDA device; use device=cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; valid dtypes: {', '.join(DTYPES)}") from None


def _hopfield_mlp(cfg: TrainConfig, input_shape: tuple[int, ...], num_outputs: int):
    sizes = [math.prod(input_shape), *cfg.hidden, num_outputs]
    return HopfieldMLP(sizes, activation=cfg.activation, output=cfg.output, gains=cfg.gains)


def _hssm(cfg: TrainConfig, input_shape: tuple[int, ...], num_outputs: int):
    if len(input_shape) != 2:
        raise ConfigError(f"model=hssm needs sequence data (steps, channels) per sample; {cfg.dataset} has {input_shape}")
    if len(cfg.dt_range) != 2:
        raise ConfigError(f"dt_range must be [dt_min, dt_max], got {cfg.dt_range}")
    return HSSM(input_shape[-1], num_outputs, d_model=cfg.d_model, d_state=cfg.d_state, blocks=cfg.blocks,
                hru=cfg.hru, complex=cfg.complex_hru, pool=cfg.pool, dt_min=cfg.dt_range[0], dt_max=cfg.dt_range[1])


# How each model name is built from a config: (cfg, shape of one input sample, number of outputs).
MODEL_BUILDERS = {"hopfield-mlp": _hopfield_mlp}
MODEL_BUILDERS["hssm"] = _hssm


def _vector_field_mlp(cfg: TrainConfig, input_shape: tuple[int, ...], num_outputs: int):
    sizes = [math.prod(input_shape), *cfg.hidden, num_outputs]
    return VectorFieldMLP(sizes, activation=cfg.activation, output=cfg.output, gains=cfg.gains,
                          asymmetry=cfg.asymmetry, seed=cfg.seed)


def _ffebm(cfg: TrainConfig, input_shape: tuple[int, ...], num_outputs: int):
    try:
        return build_ffebm(input_shape, num_outputs, conv_channels=cfg.conv_channels, hidden=cfg.hidden,
                           blocks=cfg.ebm_blocks, activation=cfg.activation, output=cfg.output, gains=cfg.gains)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _conv_hopfield(cfg: TrainConfig, input_shape: tuple[int, ...], num_outputs: int):
    if len(input_shape) != 3:
        raise ConfigError(f"model=conv-hopfield needs images (C, H, W); {cfg.dataset} samples have shape {input_shape}")
    if not cfg.conv_channels:
        raise ConfigError("model=conv-hopfield needs conv_channels, e.g. conv_channels=[32,64] for 28x28 images")
    try:
        return ConvHopfield(input_shape, cfg.conv_channels, num_outputs, pool=cfg.conv_pool,
                            activation=cfg.activation, output=cfg.output, gains=cfg.gains)
    except ValueError as e:
        raise ConfigError(str(e)) from None


MODEL_BUILDERS["conv-hopfield"] = _conv_hopfield
MODEL_BUILDERS["vector-field-mlp"] = _vector_field_mlp
MODEL_BUILDERS["ffebm"] = _ffebm


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...] | int, num_outputs: int):
    """The model ``cfg.model`` for inputs of shape ``input_shape`` (one sample) and ``num_outputs``."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        builder = MODEL_BUILDERS[cfg.model]
    except KeyError:
        raise ConfigError(f"unknown model {cfg.model!r}; valid models: {', '.join(sorted(MODEL_BUILDERS))}") from None
    return builder(cfg, tuple(input_shape), num_outputs)


def build_rule(cfg: TrainConfig):
    return make_rule(
        cfg.rule, beta=cfg.beta, free_steps=cfg.free_steps, nudge_steps=cfg.nudge_steps, mode=cfg.mode, tol=cfg.tol,
        eps=cfg.eps, chunk=cfg.chunk, N=cfg.N, radius=cfg.radius, batched=cfg.batched,
        lr=cfg.cep_lr if cfg.cep_lr is not None else cfg.lr, relax_dtype=cfg.relax_dtype,
    )


def layer_groups(model) -> list[tuple[str, list[torch.nn.Parameter]]]:
    """Parameters grouped by coupling: ``layers.0.weight`` and ``layers.0.bias`` -> ``layers.0``."""
    groups: dict[str, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = name.rsplit(".", 1)[0]
            groups.setdefault(key, []).append(p)
    return list(groups.items())


def build_optimizer(cfg: TrainConfig, model) -> torch.optim.Optimizer:
    groups = layer_groups(model)
    lrs = list(cfg.lr)
    if len(lrs) == 1:
        lrs = lrs * len(groups)
    if len(lrs) != len(groups):
        raise ConfigError(
            f"lr has {len(cfg.lr)} values but the model has {len(groups)} couplings "
            f"({', '.join(k for k, _ in groups)}); give one lr for all or one per coupling"
        )
    params = [{"params": ps, "lr": lr, "name": key} for (key, ps), lr in zip(groups, lrs)]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")


def build_schedule(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """Per-batch cosine decay to zero over the run, or a constant rate."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    if cfg.schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)
    raise ConfigError(f"unknown schedule {cfg.schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
