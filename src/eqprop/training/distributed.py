"""Data-parallel training on ``torch.distributed``: one mechanism for every rule.

    torchrun --nproc-per-node 2 -m eqprop train configs/fashion_mnist_mlp_ep.yaml
    eqprop train configs/fashion_mnist_mlp_ep.yaml run.nproc=2     # starts torchrun itself

Under ``torchrun`` (the ``WORLD_SIZE``/``RANK``/``MASTER_ADDR`` variables are set) the Trainer joins
the process group (NCCL when the run is on CUDA, each process on ``cuda:LOCAL_RANK``; gloo on the
CPU) and adds two callbacks:

* ``ShardBatch`` (the last ``before_step``): every process draws the same global batch of
  ``run.batch_size`` samples (the trainer's per-epoch shuffle, seeded alike everywhere; a
  DataLoader's shuffle likewise), lets the other callbacks see it whole (augmentation, warm-start
  lookups), then keeps its own contiguous slice ``rank`` of ``world_size`` -- of ``x``, ``y``, the
  sample indices and every per-sample tensor in ``step_kwargs`` (warm-start states).
* ``AllReduceGrads`` (the first ``after_step``): every rule writes ``.grad`` as a batch mean, so
  the sample-weighted mean of the processes' gradients is the gradient of the whole batch; one
  coalesced ``all_reduce`` per dtype replaces ``.grad`` (and ``result.loss``) on every process
  before any other callback or the optimizer sees them. Warm-start states are gathered back, so
  every process's bank holds every sample (the bank is sharded by sample during the step).

Weights start equal (broadcast from rank 0 at ``on_fit_start``, after a resume in which every
process read the same checkpoint); only rank 0 writes files (checkpoint, metrics, config, summary,
plot) and shows progress; the epoch's training accuracy is summed over processes. Evaluation runs
on every process (identical numbers), so the test loop is not sped up.

Outside ``torchrun`` nothing here is active and a run is the ordinary single-process one.
"""
from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

from ..callbacks import Callback
from ..registry import ConfigError


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (once); returns ``(rank, world_size)``.

    ``(0, 1)`` when not launched by torchrun (and no group was initialised by the caller).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if env_world_size() <= 1:
        return 0, 1
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    atexit.register(teardown)  # the group we made is destroyed before the interpreter tears its threads down
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    """Destroy the process group (once). Without this, gloo's threads can still be joinable when the
    interpreter exits and the process aborts ("terminate called without an active exception", about
    one run in six on two CPU processes)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def _shard(t, lo: int, hi: int, n: int):
    """Slice per-sample tensors (first dim ``n``), recursing into lists/tuples/dicts."""
    if isinstance(t, torch.Tensor):
        return t[lo:hi] if t.dim() and t.shape[0] == n else t
    if isinstance(t, (list, tuple)):
        return type(t)(_shard(u, lo, hi, n) for u in t)
    if isinstance(t, dict):
        return {k: _shard(u, lo, hi, n) for k, u in t.items()}
    return t


class DataParallel:
    """Shared state of the two callbacks of one process (see the module docstring)."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self.full_index = None
        self.local_n = 0
        self.gather_states = False
        self.correct = 0
        self.seen = 0
        self.loss_sum = 0.0
        self.loss_n = 0.0
        self.front, self.back = AllReduceGrads(self), ShardBatch(self)

    def bounds(self, n: int) -> tuple[int, int]:
        """Contiguous slice of a batch of ``n``; sizes differ by at most one (a DataLoader's last batch)."""
        base, extra = divmod(n, self.world_size)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (self.rank < extra)


class ShardBatch(Callback):
    """Keep this process's slice of the global batch (runs after every other ``before_step``)."""

    key = "DataParallelShard"

    def __init__(self, dp: DataParallel):
        self.dp = dp

    def before_step(self, trainer, batch):
        n = len(batch.y)
        if n < self.dp.world_size:
            raise ConfigError(f"a batch of {n} samples cannot be split over {self.dp.world_size} processes; "
                              f"raise run.batch_size (the global batch)")
        lo, hi = self.dp.bounds(n)
        self.dp.full_index = batch.index
        batch.x, batch.y = batch.x[lo:hi], batch.y[lo:hi]
        if batch.index is not None:
            batch.index = batch.index[lo:hi]
        batch.step_kwargs = _shard(batch.step_kwargs, lo, hi, n)
        self.dp.local_n = hi - lo


class AllReduceGrads(Callback):
    """Replace ``.grad`` and ``result.loss`` by their sample-weighted means over the processes."""

    key = "DataParallel"

    def __init__(self, dp: DataParallel):
        self.dp = dp

    def on_fit_start(self, trainer):
        # equal starting weights: rank 0's (after a resume every rank read the same checkpoint anyway)
        with torch.no_grad():
            for t in [*trainer.model.parameters(), *trainer.model.buffers()]:
                dist.broadcast(t.data, src=0)
        self.dp.gather_states = any(type(cb).__name__ == "WarmStart" for cb in trainer.callbacks)

    def after_step(self, trainer, batch, result):
        dp = self.dp
        n = float(dp.local_n)
        loss = torch.as_tensor(result.loss).detach()
        # the loss and the sample count first (float64), so that the gradient weights are known
        stats = torch.tensor([float(loss) * n, n], dtype=torch.float64, device=trainer.device)
        dist.all_reduce(stats)
        total = float(stats[1])
        result.loss = (stats[0] / total).to(dtype=loss.dtype, device=loss.device)
        dp.loss_sum += float(stats[0])  # the epoch's loss over every sample of every process
        dp.loss_n += total
        groups: dict = {}
        for p in trainer.model.parameters():
            if p.grad is not None:  # every process's rule leaves the same parameters without .grad
                groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
        for gs in groups.values():  # one coalesced all_reduce per dtype and device
            flat = torch.cat([g.reshape(-1) for g in gs]) * (n / total)
            dist.all_reduce(flat)
            offset = 0
            for g in gs:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
        if dp.gather_states and dp.full_index is not None and getattr(result, "state", None) is not None:
            result.state = [self._gather(s) for s in result.state]
            batch.index = dp.full_index

    def _gather(self, s: torch.Tensor) -> torch.Tensor:
        s = s.contiguous()
        sizes = [torch.zeros(1, dtype=torch.long, device=s.device) for _ in range(self.dp.world_size)]
        dist.all_gather(sizes, torch.tensor([s.shape[0]], device=s.device))
        biggest = int(max(int(z) for z in sizes))
        pad = torch.zeros(biggest, *s.shape[1:], dtype=s.dtype, device=s.device)
        pad[:s.shape[0]] = s
        out = [torch.empty_like(pad) for _ in range(self.dp.world_size)]
        dist.all_gather(out, pad)
        return torch.cat([o[:int(z)] for o, z in zip(out, sizes)])

    def on_batch_end(self, trainer, batch, result):
        if batch.y.dim() == 1:
            self.dp.correct += int((result.output.argmax(-1) == batch.y).sum())
        self.dp.seen += len(batch.y)

    def on_epoch_end(self, trainer, record):
        counts = torch.tensor([self.dp.correct, self.dp.seen], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            counts = counts.to(trainer.device)
        dist.all_reduce(counts)
        if record.get("train_acc") is not None and counts[1] > 0:
            record["train_acc"] = float(counts[0] / counts[1])
        if self.dp.loss_n:
            record["train_loss"] = self.dp.loss_sum / self.dp.loss_n
        record["world_size"] = self.dp.world_size
        self.dp.correct = self.dp.seen = 0
        self.dp.loss_sum = self.dp.loss_n = 0.0


def attach(trainer) -> None:
    """Make ``trainer`` data-parallel when it runs in a process group of more than one process."""
    if trainer.world_size <= 1:
        if trainer.run.nproc > 1:
            import warnings

            warnings.warn(f"run.nproc={trainer.run.nproc} is honoured by the eqprop command (it starts torchrun); "
                          f"this Trainer runs in one process. Launch the script with torchrun --nproc-per-node "
                          f"{trainer.run.nproc} instead.", stacklevel=3)
        return
    from .logging import LOGGERS

    if trainer.train is not None and trainer.run.batch_size % trainer.world_size:
        raise ConfigError(f"run.batch_size={trainer.run.batch_size} is the global batch and must be divisible by "
                          f"the number of processes ({trainer.world_size})")
    dp = DataParallel(trainer.rank, trainer.world_size)
    cbs = trainer.callbacks
    if trainer.rank != 0:  # only rank 0 logs
        cbs = [cb for cb in cbs if not isinstance(cb, tuple(LOGGERS.values()))]
        trainer.run.progress = False
    trainer.callbacks = [dp.front, *cbs, dp.back]


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run ``python -m eqprop ARGV`` in ``nproc`` processes on this machine (``torchrun --standalone``)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "eqprop", *argv]
    print(f"[eqprop] run.nproc={nproc}: starting {' '.join(cmd[2:])}", flush=True)
    return subprocess.call(cmd)
