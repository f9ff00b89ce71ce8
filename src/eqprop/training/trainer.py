"""The Trainer: epochs, evaluation, progress, metrics, checkpoints and resume.

It only assembles: the model relaxes, the rule writes ``.grad``, a torch optimizer steps.
A run folder holds ``config.yaml``, ``metrics.jsonl`` (one line per epoch),
``checkpoint.pt`` (written atomically after every epoch), ``curves.png`` and ``summary.json``.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ConfigError, TrainConfig, save_config
from ..data import load_dataset
from ..precision import resolve as resolve_relax_dtype
from ..data.transforms import channel_stats, normalize, random_crop, random_horizontal_flip, to_float
from ..rules.vector_field import add_homeostasis_grad
from .builders import build_model, build_optimizer, build_rule, build_schedule, resolve_device, resolve_dtype
from .checkpoint import load_checkpoint, save_checkpoint
from .logging import append_jsonl, plot_curves
from .warm_start import StateBank

# A checkpoint made with another of these (or whose parameters have other names or shapes than
# the model the config builds) is not resumed.
IDENTITY_KEYS = ("dataset", "model", "activation", "output")


def subset_generator() -> torch.Generator:
    """``train_subset``/``test_subset`` draw a random subset (kept in file order) with this fixed
    seed, the same for every run, since some files are sorted by class (the CIFAR-10 JPEG copy)."""
    return torch.Generator().manual_seed(0)


class DivergenceError(RuntimeError):
    """The loss or a gradient became NaN/inf or exploded; the last good checkpoint is kept."""


@dataclass
class Split:
    x: torch.Tensor  # (N, ...) float in [0, 1], on the run's device
    y: torch.Tensor  # (N,) int64


def load_split(cfg: TrainConfig, split: str, subset: int | None, device, dtype, stats=None) -> tuple[Split, int]:
    """One split in memory as floats; ``stats = (mean, std)`` standardises image channels."""
    ds = load_dataset(cfg.dataset, split=split, root=cfg.data_root).subset(subset, subset_generator())
    x = to_float(ds.images)
    if stats is not None:
        x = normalize(x, *stats)
    return Split(x=x.to(device=device, dtype=dtype), y=ds.labels.to(device)), ds.num_classes


def image_stats(cfg: TrainConfig):
    """Per-channel mean and std of the training images (for ``normalize=true``)."""
    ds = load_dataset(cfg.dataset, split="train", root=cfg.data_root).subset(cfg.train_subset, subset_generator())
    if ds.images.dim() != 4:
        raise ConfigError(f"normalize=true standardises image channels; {cfg.dataset} is not an image dataset")
    return channel_stats(ds.images)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Train ``cfg.model`` on ``cfg.dataset`` with ``cfg.rule``; ``fit()`` returns the summary."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype)
        self.out = cfg.out_dir()
        seed_everything(cfg.seed)
        stats = image_stats(cfg) if cfg.normalize else None
        self.train, num_classes = load_split(cfg, "train", cfg.train_subset, self.device, self.dtype, stats)
        self.test, _ = load_split(cfg, "test", cfg.test_subset, self.device, self.dtype, stats)
        if cfg.augment and self.train.x.dim() != 4:
            raise ConfigError(f"augment=true crops and flips images; {cfg.dataset} samples have shape "
                              f"{tuple(self.train.x.shape[1:])}")
        self.model = build_model(cfg, tuple(self.train.x.shape[1:]), num_classes).to(device=self.device, dtype=self.dtype)
        self.rule = build_rule(cfg)
        self.optimizer = build_optimizer(cfg, self.model)
        self.steps_per_epoch = len(self.train.y) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size={cfg.batch_size} is larger than the training set ({len(self.train.y)} samples)"
            )
        self.schedule = build_schedule(cfg, self.optimizer, self.steps_per_epoch)
        self.bank = None
        if cfg.warm_start:
            if not getattr(self.rule, "supports_warm_start", False):
                raise ConfigError(f"warm_start=true needs a rule that starts its free phase from a given state "
                                  f"(ep-*, cpl-*, cl); {cfg.rule} does not")
            self.bank = StateBank(len(self.train.y), resolve_relax_dtype(cfg.relax_dtype))
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }

    def load_state_dict(self, ckpt: dict) -> None:
        old = ckpt["config"]
        changed = [f"{k}={old.get(k)!r}" for k in IDENTITY_KEYS if old.get(k) != getattr(self.cfg, k)]
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
        changed += [f"{k} {theirs.get(k)} (now {mine.get(k)})" for k in sorted(set(mine) | set(theirs))
                    if mine.get(k) != theirs.get(k)][:5]
        if changed:
            raise ValueError(
                f"{self.checkpoint_path} was made for another model or dataset: {'; '.join(changed)}; "
                f"use another out= folder, or resume=false to start afresh"
            )
        kept = [k for k in ("optimizer", "lr", "momentum", "weight_decay") if old.get(k) != getattr(self.cfg, k)]
        if kept:
            print(f"[eqprop] note: resuming keeps the checkpoint's optimizer state; "
                  f"{', '.join(f'{k}={old.get(k)!r}' for k in kept)} stay as they were")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.epoch = ckpt["epoch"]
        self.history = ckpt["history"]

    # -- one epoch -----------------------------------------------------------------------------
    def _check_finite(self, loss: float, where: str) -> None:
        bad = not math.isfinite(loss) or loss > self.cfg.max_loss
        if not bad:
            finite = [torch.isfinite(p.grad).all() for p in self.model.parameters() if p.grad is not None]
            bad = bool(finite) and not bool(torch.stack(finite).all())  # one device sync per batch
        if bad:
            last = f"the last good checkpoint (epoch {self.epoch}) is {self.checkpoint_path}" if self.epoch else "no epoch had completed"
            raise DivergenceError(
                f"training diverged at {where}: loss={loss} (or a gradient is NaN/inf); {last}. "
                f"Lower lr (now {self.cfg.lr}) or beta (now {self.cfg.beta}), or raise free_steps."
            )

    def train_epoch(self) -> dict:
        cfg, model = self.cfg, self.model
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
        perm = torch.randperm(len(self.train.y), generator=gen).to(self.device)
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False, dynamic_ncols=True, mininterval=0.5)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = self.train.x[idx], self.train.y[idx]
            if cfg.augment:
                x = random_horizontal_flip(random_crop(x, 4, gen), gen)
            self.optimizer.zero_grad(set_to_none=True)
            if self.bank is None:
                result = self.rule.step(model, x, y)
            else:
                cold = model.init_state(x)
                result = self.rule.step(model, x, y, state=self.bank.get(idx, cold))
                self.bank.put(idx, result.state)
            if cfg.homeostasis:  # Jacobian homeostasis: + lambda ||J - J^T||_F^2 at the free state
                add_homeostasis_grad(model, x, result.state, cfg.homeostasis, cfg.homeostasis_probes)
            loss = float(result.loss)
            self._check_finite(loss, f"epoch {self.epoch + 1}, batch {b + 1}")
            self.optimizer.step()
            self.schedule.step()
            total_loss += loss * len(y)
            correct += int((result.output.argmax(-1) == y).sum())
            seen += len(y)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
        bar.close()
        return {"train_loss": total_loss / seen, "train_acc": correct / seen}

    @torch.no_grad()
    def evaluate(self, split: Split | None = None, batch_size: int = 1000) -> dict:
        """Loss and accuracy of the rule's inference (free phase of ``eval_steps`` sweeps)."""
        split = split or self.test
        total_loss, correct = 0.0, 0
        for i in range(0, len(split.y), batch_size):
            x, y = split.x[i:i + batch_size], split.y[i:i + batch_size]
            r = self.rule.infer(self.model, x, y, steps=self.cfg.eval_steps)
            total_loss += float(r.loss) * len(y)
            correct += int((r.output.argmax(-1) == y).sum())
        n = len(split.y)
        return {"loss": total_loss / n, "acc": correct / n}

    # -- the run ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location=self.device))
            print(f"[eqprop] resuming {self.out} after epoch {self.epoch}")
        else:
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        save_config(cfg, self.out / "config.yaml")
        n_params = sum(p.numel() for p in self.model.parameters())
        print(f"[eqprop] {type(self.model).__name__}({self.model.extra_repr()}), {n_params:,} parameters; {self.rule}; "
              f"{len(self.train.y)} training / {len(self.test.y)} test samples, {self.device}", flush=True)
        start = time.time()
        while self.epoch < cfg.epochs:
            t0 = time.time()
            train = self.train_epoch()
            test = self.evaluate()
            self.epoch += 1
            record = {
                "epoch": self.epoch, **train, "test_loss": test["loss"], "test_acc": test["acc"],
                "epoch_time": time.time() - t0, "lr": [g["lr"] for g in self.optimizer.param_groups],
            }
            if hasattr(self.model, "jacobian_asymmetry"):  # vector-field models: ||J - J^T||_F
                record["jacobian_asymmetry"] = self.model.jacobian_asymmetry()
            self.history.append(record)
            append_jsonl(self.out / "metrics.jsonl", record)
            save_checkpoint(self.state_dict(), self.checkpoint_path)
            print(
                f"[eqprop] epoch {self.epoch}/{cfg.epochs}  train loss {train['train_loss']:.4f} "
                f"acc {100 * train['train_acc']:.2f}%  test acc {100 * test['acc']:.2f}%  "
                f"({record['epoch_time']:.1f}s)", flush=True,
            )
        return self.finish(time.time() - start)

    def finish(self, wall: float) -> dict:
        cfg = self.cfg
        if self.history:
            plot_curves(self.history, self.out / "curves.png", title=f"{cfg.dataset} / {cfg.rule}")
        final = self.history[-1] if self.history else {}
        summary = {
            "dataset": cfg.dataset, "rule": cfg.rule, "model": cfg.model, "hidden": cfg.hidden,
            "epochs": self.epoch, "seed": cfg.seed, "test_acc": final.get("test_acc"),
            "train_acc": final.get("train_acc"), "best_test_acc": max((h["test_acc"] for h in self.history), default=None),
            "train_time_s": sum(h["epoch_time"] for h in self.history), "wall_time_this_call_s": wall,
            "device": str(self.device), "dtype": cfg.dtype, "torch_threads": torch.get_num_threads(),
            "out": str(self.out),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def train(cfg: TrainConfig) -> dict:
    """Build a Trainer for ``cfg`` and run it; returns the summary dict."""
    return Trainer(cfg).fit()
