"""The ``run`` section: what the Trainer itself is told (its own settings, its own defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field

# ``run`` settings of how a run is driven (shown, resumed, spread over processes), not of what it is:
# a run resumed or a grid cell compared with other values of these is the same run.
DRIVING = ("progress", "resume", "nproc")
# ``run`` settings of where a run computes and how it is watched: a change is recorded on resume,
# but it does not change what the run learns, so a finished run may be resumed with it.
WATCHING = ("device", "eval_batch_size", "loggers", "log_every", "max_loss", "max_weight", "bias_probe",
            "silent_units")


@dataclass
class RunConfig:
    """Settings of one training run.

    epochs: passes over the training set. batch_size: samples per rule step.
    seed: seeds torch, numpy and random (and the per-epoch shuffles).
    device: cpu | cuda | cuda:N | auto. dtype: float32 | float64 (parameters and data).
    out: the run folder; ``{data}``, ``{model}``, ``{rule}``, ``{seed}`` are filled in.
    resume: continue from ``out/checkpoint.pt`` when it exists.
    progress: tqdm progress bars. max_loss: a loss above this (or NaN) stops the run as diverged;
    max_weight: so does a weight of larger magnitude (a blow-up whose loss stays bounded).
    eval_batch_size: samples per evaluation batch.
    log_every: also log per-step metrics (``steps.jsonl``) every N batches (0: per epoch only).
    bias_probe: each epoch, compare the rule's gradient estimate with RBP's on this many fixed
        training samples (cosine, relative error; ``bias.jsonl``); 0 (default): off.
    silent_units: each epoch, log ``silent_units/<i>``, the fraction of hidden layer i's units that
        emitted 0 in the free state of every training sample (they get no update; see
        ``eqprop.diagnostics.silent_units``).
    loggers: any of jsonl (metrics.jsonl), csv (metrics.csv), tensorboard (needs the extra).
    nproc: data-parallel processes on this machine; ``eqprop train`` starts them with torchrun
        (``batch_size`` stays the global batch). See docs/distributed.md.
    """

    epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    out: str = "runs/{data}-{rule}-seed{seed}"
    resume: bool = True
    progress: bool = True
    max_loss: float = 1e6
    max_weight: float = 1e6
    eval_batch_size: int = 1000
    log_every: int = 0
    bias_probe: int = 0
    silent_units: bool = False
    loggers: list[str] = field(default_factory=lambda: ["jsonl"])
    nproc: int = 1
