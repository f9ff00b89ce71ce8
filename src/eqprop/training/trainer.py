"""The Trainer: epochs, evaluation, progress, checkpoints and resume. It assembles; it builds nothing.

    trainer = Trainer(model, rule, optimizer, (x_train, y_train), (x_test, y_test),
                      epochs=5, batch_size=64, out="runs/mine")
    summary = trainer.fit()

The rule writes ``.grad`` (``rule.step``), the optimizer steps; what is specific to a model or a
rule (warm starts, homeostasis, asymmetry logging) comes as callbacks from the component itself
(``eqprop.callbacks``). ``Trainer.from_config(cfg)`` builds everything a config names (the CLI).

A run folder holds ``config.yaml`` (when built from a config), ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (written atomically after every epoch; a rerun resumes from it),
``curves.png`` and ``summary.json``.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..callbacks import Batch, Callback, component_callbacks
from ..data import check_inputs
from ..dynamics import UnsettledError
from ..registry import ConfigError
from .checkpoint import load_checkpoint, save_checkpoint
from . import distributed
from .data import as_tensors
from .logging import make_loggers, plot_curves
from .optimizers import build_schedule
from .run import DRIVING, WATCHING, RunConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DivergenceError(RuntimeError):
    """The loss, a gradient or the weights became NaN/inf or exploded; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda was asked for but torch sees no CUDA device; use cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; valid dtypes: {', '.join(DTYPES)}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.out {str(out)!r} is a file, not a folder; choose another run.out")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK):
        raise ConfigError(f"run.out {str(out)!r} is not writable (no write permission on {str(parent)!r}); "
                          f"choose another run.out")


def _callback_key(cb) -> str:
    """A callback's checkpoint entry name; anything but a string would not load back (weights_only)."""
    key = cb.key
    if not isinstance(key, str):
        raise TypeError(f"{type(cb).__name__}.key must be a string (define it as a property, like Callback.key); "
                        f"got {key!r}")
    return key


def check_run(run: RunConfig) -> None:
    """Refuse settings that cannot make a run, with the valid range."""
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(run, key) < 1:
            raise ConfigError(f"run.{key} must be >= 1, got {getattr(run, key)}")
    if run.log_every < 0:
        raise ConfigError(f"run.log_every must be >= 0 (0: per epoch only), got {run.log_every}")
    if not run.max_loss > 0:
        raise ConfigError(f"run.max_loss must be > 0, got {run.max_loss}")
    if run.nproc < 1:
        raise ConfigError(f"run.nproc must be >= 1, got {run.nproc}")
    if run.bias_probe < 0:
        raise ConfigError(f"run.bias_probe must be >= 0 (0: off), got {run.bias_probe}")


class Trainer:
    """Train ``model`` with ``rule`` and ``optimizer`` on ``train_data``; ``fit()`` returns the summary.

    Args:
        model: any ``nn.Module`` the rule applies to (``rule.check_model`` is asked first).
        rule: a rule (``rule.step(model, x, y)`` writes ``.grad``; ``rule.infer`` evaluates).
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        train_data, test_data: ``(x, y)`` tensors, a ``TensorDataset``, an ``eqprop.data.Dataset``,
            any map-style ``Dataset`` or a ``DataLoader``. x: (N, ...) float (uint8 images are
            scaled to [0, 1]); y: (N,) int64 classes or (N, k) float targets.
        callbacks: extra callbacks; the model's and rule's own (``callbacks()``) are added.
        schedule: ``"cosine"``, ``"none"``, or a function ``(optimizer, total_steps) -> scheduler``.
        run: a ``RunConfig`` (or its fields as keywords: ``epochs=5, out="runs/x"``, ...).
        config: the resolved configuration dict to record in ``config.yaml`` and the checkpoint.
    """

    def __init__(self, model, rule, optimizer, train_data, test_data=None, *, callbacks=(),
                 schedule="cosine", run: RunConfig | None = None, config: dict | None = None, **run_settings):
        if run is None:
            valid = {f.name for f in fields(RunConfig)}
            unknown = sorted(set(run_settings) - valid)
            if unknown:
                raise TypeError(f"unknown Trainer setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
            run = RunConfig(**run_settings)
        elif run_settings:
            raise TypeError("give either run=RunConfig(...) or its settings as keywords, not both")
        check_run(run)
        self.run, self.config = run, config
        self.rank, self.world_size = distributed.setup(run.device)  # (0, 1) unless under torchrun
        self.is_main = self.rank == 0  # only rank 0 writes files
        self.device, self.dtype = resolve_device(run.device), resolve_dtype(run.dtype)
        seed_everything(run.seed)
        self.model = model.to(device=self.device, dtype=self.dtype)
        if hasattr(rule, "check_model"):  # after the cast: some checks depend on the dtype (beta's resolution)
            rule.check_model(self.model)
        self.rule, self.optimizer = rule, optimizer
        self.train_loader, self.train = self._data(train_data, "train")
        self.test_loader, self.test = (None, None) if test_data is None else self._data(test_data, "test")
        if self.train is not None:
            self.num_train = len(self.train[1])
            self.steps_per_epoch = self.num_train // run.batch_size
            if self.steps_per_epoch == 0:
                raise ConfigError(f"run.batch_size={run.batch_size} is larger than the training set "
                                  f"({self.num_train} samples); lower it")
        else:
            self.num_train = len(self.train_loader.dataset) if hasattr(self.train_loader, "dataset") else None
            self.steps_per_epoch = len(self.train_loader)
        total = run.epochs * self.steps_per_epoch
        if isinstance(schedule, str):
            self.schedule = build_schedule(optimizer, schedule, total)
        elif callable(schedule):
            self.schedule = schedule(optimizer, total)
        else:
            self.schedule = schedule
        self.out = Path(run.out.format(data="data", model=type(model).__name__, rule=self.rule_name, seed=run.seed))
        check_out(self.out)
        self.callbacks: list[Callback] = [*callbacks, *component_callbacks(model, rule, optimizer),
                                          *make_loggers(run.loggers, run.log_every)]
        distributed.attach(self)  # data-parallel callbacks when world_size > 1
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.history: list[dict] = []
        self.config_changes: list[dict] = []
        self.generator = torch.Generator()
        y = self.train[1] if self.train is not None else None
        self.num_classes = int(y.max()) + 1 if y is not None and y.dim() == 1 and len(y) else None

    def say(self, *args, **kw) -> None:
        """Print on the main process only (under torchrun every rank runs this code)."""
        if self.is_main:
            print(*args, **kw)

    @property
    def rule_name(self) -> str:
        return str(getattr(self.rule, "name", type(self.rule).__name__))

    def _data(self, data, split):
        pair = as_tensors(data)
        if pair is None:
            return data, None
        x, y = pair
        check_inputs(x, what=f"{split} inputs")  # warns on raw 0..255 pixel values
        if len(y) == 0:
            raise ConfigError(f"the {split} data is empty")
        return None, (x.to(device=self.device, dtype=self.dtype), y.to(self.device))

    # -- building from a config -----------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, callbacks=()) -> "Trainer":
        """Build the data, model, rule and optimizer a resolved ``eqprop.config.Config`` names."""
        from ..config import entry
        from .augment import Augment
        from .data import load_data
        from .optimizers import build_optimizer

        run = RunConfig(**cfg.run)
        run.out = str(cfg.out_dir())
        check_run(run)
        resolve_device(run.device)
        check_out(Path(run.out))  # before any data is loaded
        rule_entry = entry("rule", cfg.rule)
        rule = rule_entry.build(cfg.settings("rule"))
        train, test, num_classes = load_data(cfg.data)
        if cfg.data.get("augment") and train[0].dim() != 4:
            raise ConfigError(f"data.augment=true crops and flips images; {cfg.data['name']} samples have shape "
                              f"{tuple(train[0].shape[1:])}")
        seed_everything(run.seed)
        model = entry("model", cfg.model).build(cfg.settings("model"), input_shape=tuple(train[0].shape[1:]),
                                                num_outputs=num_classes)
        model = model.to(dtype=resolve_dtype(run.dtype))
        rule.check_model(model)  # the model/rule pairing, before the optimizer and the run folder
        optimizer = build_optimizer(model, cfg.optim)
        extra = [Augment()] if cfg.data.get("augment") else []
        if run.bias_probe:
            from ..diagnostics.bias_trace import GradientBias

            extra.append(GradientBias(run.bias_probe))
        if run.silent_units:
            from ..diagnostics.silent_units import SilentUnits

            extra.append(SilentUnits())
        if cfg.optim.get("clip_grad_norm") is not None:
            from .clipping import ClipGradNorm

            extra.append(ClipGradNorm(cfg.optim["clip_grad_norm"]))
        return cls(model, rule, optimizer, train, test, callbacks=[*extra, *callbacks],
                   schedule=cfg.optim["schedule"], run=run, config=cfg.to_dict())

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "config": self.config,
            "run": asdict(self.run),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "config_changes": self.config_changes,
            "callbacks": {_callback_key(cb): cb.state_dict() for cb in self.callbacks},
        }

    def _apply_changes(self, old: dict) -> None:
        """Resuming with other rule/optim/run settings: record each change with the epoch it took
        effect (``config_changes`` in the checkpoint and ``config_history.jsonl``), and make the
        optimizer use the new learning rates (the checkpoint's optimizer state keeps the old ones)."""
        new = self.config or {}
        changes = {}
        for section in ("rule", "optim", "run"):
            for k in sorted(set(old.get(section, {})) | set(new.get(section, {}))):
                a, b = old.get(section, {}).get(k), new.get(section, {}).get(k)
                # run.out: a run folder moved or copied elsewhere is still the same run
                if a != b and not (section == "run" and k in ("epochs", "out", *DRIVING)):
                    changes[f"{section}.{k}"] = [a, b]
        if not changes:
            return
        learned = {k: v for k, v in changes.items() if k not in {f"run.{w}" for w in WATCHING}}
        if learned and self.epoch >= self.run.epochs:
            raise ConfigError(
                f"{self.out} holds a finished run of {self.epoch} epochs made with other settings ("
                + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in learned.items())
                + "): resuming it would train nothing with the new ones and report the old result. "
                f"Use another run.out folder, run.resume=false to start afresh (the old run is moved aside), "
                f"or raise run.epochs above {self.epoch} to continue it with the new settings")
        entry = {"epoch": self.epoch, "changes": changes}
        self.config_changes.append(entry)
        self.say(f"[eqprop] resuming after epoch {self.epoch} with changed settings (recorded in config_history.jsonl): "
              + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()), flush=True)
        if "optim.lr" in changes:
            from .optimizers import param_groups

            rates = [g["lr"] for g in param_groups(self.model, new["optim"]["lr"])]
            factor = 1.0
            if self.schedule is not None and hasattr(self.schedule, "lr_lambdas"):
                factor = self.schedule.lr_lambdas[0](self.schedule.last_epoch)
                self.schedule.base_lrs = list(rates)
            for g, r in zip(self.optimizer.param_groups, rates):
                g["initial_lr"] = r
                g["lr"] = r * factor
        for k, (_, b) in changes.items():
            section, key = k.split(".", 1)
            if section == "optim" and key not in ("lr", "name", "schedule"):
                for g in self.optimizer.param_groups:
                    if key in g:
                        g[key] = b

    def load_state_dict(self, ckpt: dict) -> None:
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
        changed = [f"{k} {theirs.get(k)} (now {mine.get(k)})" for k in sorted(set(mine) | set(theirs))
                   if mine.get(k) != theirs.get(k)][:5]
        old = ckpt.get("config") or {}
        if self.config and old:
            from ..config import resolve_recorded

            # a checkpoint from before a component gained a setting (at its default) is the same run
            old = resolve_recorded(old) or old
            for section in ("data", "model"):
                if old.get(section) != self.config.get(section):
                    changed.insert(0, f"{section} section {old.get(section)} (now {self.config.get(section)})")
        if changed:
            raise ConfigError(
                f"{self.checkpoint_path} was made for another model or dataset: {'; '.join(changed)}; "
                f"use another run.out folder, or run.resume=false to start afresh"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.schedule is not None and ckpt.get("schedule") is not None:
            self.schedule.load_state_dict(ckpt["schedule"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.epoch = ckpt["epoch"]
        self.global_step = ckpt.get("global_step", 0)
        self.history = ckpt["history"]
        self.config_changes = list(ckpt.get("config_changes", []))
        if self.config and old:
            self._apply_changes(old)
        saved = ckpt.get("callbacks", {})
        for cb in self.callbacks:
            if cb.key in saved:
                cb.load_state_dict(saved[cb.key])

    # -- one epoch -----------------------------------------------------------------------------
    def _diverged(self, what: str) -> DivergenceError:
        last = (f"the last good checkpoint (epoch {self.epoch}) is {self.checkpoint_path}" if self.epoch
                else "no epoch had completed")
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        rule = self.rule  # name only the settings this rule has
        fix = f"Lower the learning rate (optim.lr, now {lrs})"
        if getattr(rule, "beta", None) is not None:
            fix += f" or the nudge (rule.beta, now {rule.beta})"
        if getattr(rule, "free_steps", None) is not None:
            fix += f", or raise rule.free_steps (now {rule.free_steps}) until the relaxation settles"
            if hasattr(rule, "adjoint_steps"):  # an implicit gradient at an unsettled state can be huge
                fix += (" (`eqprop gradcheck CONFIG --checkpoint CHECKPOINT --rules rbp --reference bptt "
                        "--steps N` shows where the two exact gradients agree)")
        if getattr(self, "unsettled", None):
            what += f" ({self.unsettled})"
        return DivergenceError(f"training diverged at {what}; {last}. {fix}.")

    def _unsettled_step(self, batch: Batch, error: UnsettledError):
        """A rule's ``UnsettledError`` on one data-parallel process: the others must stop too, so
        NaN gradients go into the all-reduce and every process's divergence check fires (this
        one's error names the cause)."""
        from ..rules.base import StepResult

        self.unsettled = str(error)
        for p in self.model.parameters():
            if p.requires_grad:
                p.grad = torch.full_like(p, math.nan)
        nan = torch.tensor(math.nan, device=batch.x.device)
        return StepResult(loss=nan, output=torch.zeros(len(batch.y), 1, device=batch.x.device), state=[])

    def _check_step(self, loss: float, where: str) -> None:
        if not math.isfinite(loss):
            raise self._diverged(f"{where}: loss={loss}")
        if loss > self.run.max_loss:
            raise self._diverged(f"{where}: loss={loss:.4g} is above run.max_loss={self.run.max_loss:g}")
        if not bool(self._step_ok(torch.as_tensor(loss))):
            raise self._diverged(f"{where}: a gradient is NaN/inf (loss={loss:.4g})")

    def _step_ok(self, loss: torch.Tensor) -> torch.Tensor:
        """A 0-d bool tensor on the device (no host sync): the loss is finite and at most
        ``run.max_loss`` and every gradient is finite."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        ok = torch.isfinite(loss) & (loss <= self.run.max_loss)
        if grads:
            ok = ok.to(grads[0].device) & torch.stack([torch.isfinite(g).all() for g in grads]).all()
        return ok

    def _check_deferred(self, ok: torch.Tensor, first: int, last: int, total_loss) -> None:
        """On a GPU the per-batch checks accumulate into ``ok`` and are read here, at log points
        (one host sync per ``first..last`` batches), with the same clear divergence error."""
        if not bool(ok):
            where = f"epoch {self.epoch + 1}, batches {first + 1}-{last + 1}"
            raise self._diverged(f"{where}: the loss or a gradient became NaN/inf, or the loss exceeded "
                                 f"run.max_loss={self.run.max_loss:g} (running loss sum {float(total_loss):.4g})")

    def _check_weights(self) -> None:
        """Non-finite or exploding weights (a blow-up whose loss stays bounded) end the run."""
        biggest = max((float(p.detach().abs().max()) for p in self.model.parameters() if p.numel()), default=0.0)
        if not math.isfinite(biggest) or biggest > self.run.max_weight:
            raise self._diverged(f"epoch {self.epoch + 1}: the weights reached |w| = {biggest:.3g}")

    def _check_collapse(self, acc) -> None:
        """Accuracy falling back to chance after being well above it is a divergence too."""
        if acc is None or not self.num_classes or self.num_classes < 2:
            return
        chance = 1.0 / self.num_classes
        best = max((h["test_acc"] for h in self.history if h.get("test_acc") is not None), default=0.0)
        if best >= min(0.5, 3 * chance) and acc <= 1.5 * chance:
            raise self._diverged(f"epoch {self.epoch + 1}: test accuracy fell to {100 * acc:.1f}% "
                                 f"(chance {100 * chance:.0f}%, earlier best {100 * best:.1f}%)")

    def batches(self):
        """Training batches of this epoch (a fixed per-epoch shuffle of the in-memory data)."""
        self.generator.manual_seed(self.run.seed * 100_003 + self.epoch)
        if self.train is None:
            for x, y in self.train_loader:
                yield Batch(x.to(device=self.device, dtype=self.dtype), y.to(self.device))
            return
        x_all, y_all = self.train
        perm = torch.randperm(self.num_train, generator=self.generator).to(self.device)
        bs = self.run.batch_size
        for b in range(self.steps_per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            yield Batch(x_all[idx], y_all[idx], idx)

    def step_record(self, batch: Batch, result) -> dict:
        """Per-step metrics (for ``run.log_every``), with the rule's numeric step stats (sweeps run,
        residuals, resettles, ...) and the norm of the update direction the rule wrote: ``grad_norm``
        (all parameters) and ``grad_norm/<parameter>`` (each), read after the optimizer's step (and
        after ``optim.clip_grad_norm``, which the epoch record's ``grad_norm_max`` reads before)."""
        stats = {k: (v.item() if torch.is_tensor(v) else v) for k, v in result.stats.items()
                 if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)}
        stats = {k: v for k, v in stats.items() if math.isfinite(v)}  # an unmeasured residual is NaN
        named = [(name, p.grad) for name, p in self.model.named_parameters() if p.grad is not None]
        values = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) for _, g in named]).tolist() if named else []
        grads = dict(zip((name for name, _ in named), values))  # one host sync for all of them
        norms = {"grad_norm": math.sqrt(sum(v * v for v in grads.values()))} if grads else {}
        return {**stats, "step": batch.step, "epoch": self.epoch + 1, "loss": float(result.loss),
                "acc": float((result.output.argmax(-1) == batch.y).float().mean()) if batch.y.dim() == 1 else None,
                "lr": [g["lr"] for g in self.optimizer.param_groups],
                **norms, **{f"grad_norm/{name}": v for name, v in grads.items()}}

    # read the per-batch divergence checks at log points instead of every batch; None: on CUDA only
    defer_checks: bool | None = None

    def train_epoch(self) -> dict:
        total_loss, correct, seen = 0.0, 0, 0
        # on a GPU no host sync per batch: loss, accuracy and the divergence checks stay on the
        # device and are read at log points (every 20 batches and at the end of the epoch)
        defer = self.device.type == "cuda" if self.defer_checks is None else self.defer_checks
        ok, since = None, 0
        bar = tqdm(self.batches(), total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{self.run.epochs}",
                   disable=not self.run.progress, leave=False, dynamic_ncols=True, mininterval=0.5)
        b = -1
        for b, batch in enumerate(bar):
            batch.step = self.global_step
            for cb in self.callbacks:
                cb.before_step(self, batch)
            self.optimizer.zero_grad(set_to_none=True)
            try:
                result = self.rule.step(self.model, batch.x, batch.y, **batch.step_kwargs)
            except UnsettledError as e:
                if self.world_size == 1:
                    raise self._diverged(f"epoch {self.epoch + 1}, batch {b + 1}: {e}") from None
                result = self._unsettled_step(batch, e)
            for cb in self.callbacks:
                cb.after_step(self, batch, result)
            if defer:
                loss = result.loss.detach().double()  # summed in float64, as the host path
                step_ok = self._step_ok(loss)
                ok = step_ok if ok is None else ok & step_ok
            else:
                loss = float(result.loss)
                self._check_step(loss, f"epoch {self.epoch + 1}, batch {b + 1}")
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            self.global_step += 1
            for cb in self.callbacks:
                cb.on_batch_end(self, batch, result)
            n = len(batch.y)
            total_loss = total_loss + loss * n
            if batch.y.dim() == 1:
                hits = (result.output.argmax(-1) == batch.y).sum()
                correct = correct + (hits if defer else int(hits))
            seen += n
            if b % 20 == 0:
                if defer:
                    self._check_deferred(ok, since, b, total_loss)
                    ok, since = None, b + 1
                bar.set_postfix(loss=f"{float(total_loss) / seen:.4f}", acc=f"{100 * int(correct) / seen:.2f}%")
        if defer and ok is not None:
            self._check_deferred(ok, since, b, total_loss)
        bar.close()
        return {"train_loss": float(total_loss) / max(seen, 1), "train_acc": int(correct) / max(seen, 1)}

    def _eval_batches(self, split):
        if split is not None:
            x, y = split
            for i in range(0, len(y), self.run.eval_batch_size):
                yield x[i:i + self.run.eval_batch_size], y[i:i + self.run.eval_batch_size]
        else:
            for x, y in self.test_loader:
                yield x.to(device=self.device, dtype=self.dtype), y.to(self.device)

    @torch.no_grad()
    def evaluate(self, split=None) -> dict:
        """Loss and accuracy of the rule's inference (``rule.infer``) on ``split`` (default: test).

        For class labels also ``silent_classes``: the classes present in ``split`` that no sample is
        predicted as (a dead output unit shows here first: one class lost, accuracy down ~1/C).
        """
        split = self.test if split is None else split
        total_loss, correct, n = 0.0, 0, 0
        seen = predicted = None
        for x, y in self._eval_batches(split):
            r = self.rule.infer(self.model, x, y)
            total_loss += float(r.loss) * len(y)
            if y.dim() == 1:
                pred = r.output.argmax(-1)
                correct += int((pred == y).sum())
                k = r.output.shape[-1]
                seen = torch.bincount(y, minlength=k) + (0 if seen is None else seen)
                predicted = torch.bincount(pred, minlength=k) + (0 if predicted is None else predicted)
            n += len(y)
        out = {"loss": total_loss / max(n, 1), "acc": correct / max(n, 1)}
        if seen is not None:
            out["silent_classes"] = [int(c) for c in torch.nonzero((seen > 0) & (predicted == 0)).flatten()]
        return out

    # -- the run ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        run = self.run
        check_out(self.out)
        if not run.resume and self.is_main and self.out.is_dir() and any(self.out.iterdir()):
            aside = self.out.with_name(f"{self.out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            self.out.rename(aside)  # never delete a finished run's results
            self.say(f"[eqprop] run.resume=false: the earlier run in {self.out} was moved to {aside}", flush=True)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"run.out {str(self.out)!r} cannot be created ({e.strerror}); choose a writable folder") from None
        distributed.barrier()  # the folder is ready before any process reads a checkpoint from it
        if run.resume and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location=self.device))
            self.say(f"[eqprop] resuming {self.out} after epoch {self.epoch}", flush=True)
        if self.config is not None and self.is_main:
            from ..config import save_config_dict

            save_config_dict(self.config, self.out / "config.yaml")
            if self.config_changes:
                from .logging import write_atomic

                write_atomic(self.out / "config_history.jsonl", "".join(json.dumps(c) + "\n" for c in self.config_changes))
        for cb in self.callbacks:
            cb.on_fit_start(self)
        n_params = sum(p.numel() for p in self.model.parameters())
        extra = self.model.extra_repr() if hasattr(self.model, "extra_repr") else ""
        n_test = "no" if self.test is None and self.test_loader is None else (
            len(self.test[1]) if self.test is not None else "loader")
        self.say(f"[eqprop] {type(self.model).__name__}({extra}), {n_params:,} parameters; {self.rule}; "
              f"{self.num_train} training / {n_test} test samples, {self.device}", flush=True)
        start = time.time()
        while self.epoch < run.epochs:
            t0 = time.time()
            train = self.train_epoch()
            self._check_weights()
            test = self.evaluate() if (self.test is not None or self.test_loader is not None) else {"loss": None, "acc": None}
            record = {
                "epoch": self.epoch + 1, **train, "test_loss": test["loss"], "test_acc": test["acc"],
                **({"silent_classes": test["silent_classes"]} if "silent_classes" in test else {}),
                "epoch_time": time.time() - t0, "lr": [g["lr"] for g in self.optimizer.param_groups],
            }
            self._check_collapse(test["acc"])
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            self.epoch += 1
            self.history.append(record)
            if self.is_main:
                save_checkpoint(self.state_dict(), self.checkpoint_path)
            for cb in self.callbacks:
                cb.on_checkpoint(self)
            acc = "" if test["acc"] is None else f"  test acc {100 * test['acc']:.2f}%"
            if test.get("silent_classes"):
                acc += f"  (never predicted: class {', '.join(map(str, test['silent_classes']))})"
            self.say(f"[eqprop] epoch {self.epoch}/{run.epochs}  train loss {record['train_loss']:.4f} "
                  f"acc {100 * record['train_acc']:.2f}%{acc}  ({record['epoch_time']:.1f}s)", flush=True)
        summary = self.finish(time.time() - start)
        for cb in self.callbacks:
            cb.on_fit_end(self, summary)
        distributed.barrier()  # every process leaves together, after rank 0 has written its files
        return summary

    def finish(self, wall: float) -> dict:
        cfg = self.config or {}
        name = lambda s, default: (cfg.get(s) or {}).get("name", default)  # noqa: E731
        data, model = name("data", "data"), name("model", type(self.model).__name__)
        if self.history and self.is_main:
            plot_curves(self.history, self.out / "curves.png", title=f"{data} / {self.rule_name}")
        final = self.history[-1] if self.history else {}
        tests = [h["test_acc"] for h in self.history if h.get("test_acc") is not None]
        summary = {
            "dataset": data, "rule": name("rule", self.rule_name), "model": model,
            "epochs": self.epoch, "seed": self.run.seed, "test_acc": final.get("test_acc"),
            "train_acc": final.get("train_acc"), "best_test_acc": max(tests, default=None),
            "train_time_s": sum(h["epoch_time"] for h in self.history), "wall_time_this_call_s": wall,
            "device": str(self.device), "dtype": self.run.dtype, "torch_threads": torch.get_num_threads(),
            "out": str(self.out),
        }
        if self.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def train(cfg) -> dict:
    """Build a Trainer for a resolved config and run it; returns the summary dict."""
    return Trainer.from_config(cfg).fit()
