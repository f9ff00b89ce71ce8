"""``eqprop ssl CONFIG [section.key=value ...]``: non-contrastive SSL pretraining with a linear probe.

Sections (unknown keys are errors naming the valid ones):

    data:    name, root, train_subset, test_subset
    model:   widths, stem_stride, proj_hidden, proj_dim
    method:  predictor (learned | directpred | directcopy), pred_hidden, alpha, pred_tau, eps,
             normalize, iso, loss (byol | simsiam), ema, base_tau, final_tau
    augment: eqprop.ssl.augment.ViewConfig
    optim:   lr, momentum, weight_decay, warmup_epochs
    run:     epochs, batch_size, seed, out, log_every, probe_steps, probe_every

Per epoch it appends to ``OUT/history.jsonl``: the SSL loss, the eigenvalues of the embedding
correlation (``z^T z / N`` on the clean probe images) and of the predictor (``W_p``; for the learned
MLP its least-squares linear fit), the effective rank of the features h and embeddings z, and the
linear-probe accuracy. ``OUT/checkpoint.pt`` is written atomically after each epoch; rerunning the
same command resumes from it (exactly: the shuffles and views are drawn from per-epoch seeds).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from ..data import load_dataset
from ..data.transforms import channel_stats, normalize, to_float
from ..registry import ConfigError
from ..training.checkpoint import load_checkpoint, save_checkpoint
from .augment import ViewConfig, two_views
from .ema import cosine_tau, ema_update, make_target
from .losses import byol_loss, isoloss, simsiam_loss
from .models import Encoder
from .predictors import CorrelationPredictor, MLPPredictor
from .probe import correlation_eigenvalues, effective_rank, linear_probe


@dataclass
class DataSection:
    name: str = "cifar10"
    root: str | None = None
    train_subset: int | None = 10000
    test_subset: int | None = 2000


@dataclass
class ModelSection:
    widths: list = field(default_factory=lambda: [16, 32, 64])
    stem_stride: int = 2
    proj_hidden: int = 256
    proj_dim: int = 64


@dataclass
class MethodSection:
    predictor: str = "learned"
    pred_hidden: int = 256
    alpha: float = 0.5
    pred_tau: float = 0.5
    eps: float = 0.0
    normalize: bool = True
    iso: bool = False
    loss: str = "byol"
    ema: bool = True
    base_tau: float = 0.99
    final_tau: float = 1.0


@dataclass
class OptimSection:
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0


@dataclass
class RunSection:
    epochs: int = 5
    batch_size: int = 128
    seed: int = 0
    out: str = "runs/ssl"
    log_every: int = 20
    probe_steps: int = 300
    probe_every: int = 1


SECTIONS = {"data": DataSection, "model": ModelSection, "method": MethodSection, "augment": ViewConfig,
            "optim": OptimSection, "run": RunSection}


def _build(section: str, cls, raw: dict):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"ssl config section {section!r} must be a mapping, got {raw!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"ssl config section {section!r}: unknown key(s) {unknown}; valid: {sorted(names)}")
    obj = cls(**raw)
    for name, f in names.items():  # light type check: numbers where numbers are expected
        v, default = getattr(obj, name), getattr(cls(), name)
        if isinstance(default, bool) and not isinstance(v, bool):
            raise ConfigError(f"{section}.{name} must be true or false, got {v!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(v, bool) or not isinstance(v, (int, float))):
            if not (v is None and f.type.endswith("None")):
                raise ConfigError(f"{section}.{name} must be a number, got {v!r}")
    return obj


def load_ssl_config(path: str | None, overrides: list[str] = ()) -> dict:
    raw = {}
    if path is not None:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an ssl config is a mapping of sections {sorted(SECTIONS)}")
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not name or section not in SECTIONS:
            raise ConfigError(f"override {item!r}: write section.key=value with a section among {sorted(SECTIONS)}")
        raw.setdefault(section, {})
        raw[section] = dict(raw[section] or {})
        raw[section][name] = yaml.safe_load(value)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"ssl config: unknown section(s) {unknown}; valid: {sorted(SECTIONS)}")
    cfg = {s: _build(s, cls, raw.get(s)) for s, cls in SECTIONS.items()}
    m = cfg["method"]
    if m.predictor not in ("learned", "directpred", "directcopy"):
        raise ConfigError(f"method.predictor must be learned, directpred or directcopy, got {m.predictor!r}")
    if m.loss not in ("byol", "simsiam"):
        raise ConfigError(f"method.loss must be byol or simsiam, got {m.loss!r}")
    if m.iso and m.predictor == "learned":
        raise ConfigError("method.iso needs a linear eigen-predictor (the paper's IsoLoss rescales the modes of "
                          "W_p): set method.predictor to directpred or directcopy")
    if m.predictor == "directcopy" and m.alpha != 1.0:
        raise ConfigError("method.predictor directcopy is alpha = 1 without eigendecomposition; set method.alpha=1.0")
    if cfg["run"].epochs < 1 or cfg["run"].batch_size < 2:
        raise ConfigError("run.epochs must be >= 1 and run.batch_size >= 2 (BatchNorm needs two samples)")
    return cfg


def _subset(ds, n, seed):
    if n is None or n >= len(ds.labels):
        return ds.images, ds.labels
    idx = torch.randperm(len(ds.labels), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ds.images[idx], ds.labels[idx]


class SSLRun:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        d, mo, me, r = cfg["data"], cfg["model"], cfg["method"], cfg["run"]
        torch.manual_seed(r.seed)
        train = load_dataset(d.name, "train", d.root)
        test = load_dataset(d.name, "test", d.root)
        if train.images.dtype != torch.uint8 or train.images.dim() != 4 or train.images.shape[1] != 3:
            raise ConfigError(f"ssl needs RGB uint8 images (N, 3, H, W); {d.name} has {train.images.dtype} "
                              f"{tuple(train.images.shape)}")
        self.xtr, self.ytr = _subset(train, d.train_subset, 1234)
        self.xte, self.yte = _subset(test, d.test_subset, 4321)
        self.classes = len(train.classes)
        self.mean, self.std = channel_stats(self.xtr)
        self.online = Encoder(mo.widths, mo.stem_stride, mo.proj_hidden, mo.proj_dim)
        if me.predictor == "learned":
            self.predictor = MLPPredictor(mo.proj_dim, me.pred_hidden)
        else:
            self.predictor = CorrelationPredictor(mo.proj_dim, me.predictor, me.alpha, me.pred_tau, me.eps,
                                                  me.normalize)
        self.target = make_target(self.online) if me.ema else None
        params = list(self.online.parameters()) + list(self.predictor.parameters())
        o = cfg["optim"]
        self.opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.ytr) / r.batch_size)
        self.total_steps = self.steps_per_epoch * r.epochs
        self.out = Path(r.out)
        self.epoch, self.history, self.train_seconds = 0, [], 0.0

    # -- one step ---------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        o = self.cfg["optim"]
        warm = o.warmup_epochs * self.steps_per_epoch
        if step < warm:
            return o.lr * (step + 1) / warm
        frac = (step - warm) / max(self.total_steps - warm, 1)
        return o.lr * 0.5 * (1 + math.cos(math.pi * frac))

    def _prep(self, x):
        return normalize(x, self.mean, self.std)

    def step(self, x: torch.Tensor, gen: torch.Generator, step: int) -> float:
        me = self.cfg["method"]
        v1, v2 = two_views(to_float(x), self.cfg["augment"], gen)
        v1, v2 = self._prep(v1), self._prep(v2)
        self.online.train()
        _, z1 = self.online(v1)
        _, z2 = self.online(v2)
        if isinstance(self.predictor, CorrelationPredictor):
            self.predictor.update(torch.cat([z1, z2]))
        self.predictor.train()
        p1, p2 = self.predictor(z1), self.predictor(z2)
        if self.target is not None:
            with torch.no_grad():
                self.target.train()
                zt1, zt2 = self.target(v1)[1], self.target(v2)[1]
        else:
            zt1, zt2 = z1.detach(), z2.detach()
        base = byol_loss if me.loss == "byol" else simsiam_loss
        report = (base(p1, zt2) + base(p2, zt1)).detach()
        if me.iso:
            loss = isoloss(p1, z1, zt2, me.loss) + isoloss(p2, z2, zt1, me.loss)
        else:
            loss = base(p1, zt2) + base(p2, zt1)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.target is not None:
            ema_update(self.target, self.online, cosine_tau(step, self.total_steps, me.base_tau, me.final_tau))
        if not torch.isfinite(report):
            raise FloatingPointError(f"SSL loss is {float(report)} at step {step}; lower optim.lr")
        return float(report)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, batch=512):
        self.online.eval()
        hs, zs = [], []
        for i in range(0, len(x), batch):
            h, z = self.online(self._prep(to_float(x[i:i + batch])))
            hs.append(h)
            zs.append(z)
        return torch.cat(hs), torch.cat(zs)

    @torch.no_grad()
    def evaluate(self, probe: bool) -> dict:
        htr, ztr = self.encode(self.xtr)
        row = {"corr_eigenvalues": [round(float(v), 6) for v in correlation_eigenvalues(ztr)],
               "effective_rank_h": round(effective_rank(htr), 3), "effective_rank_z": round(effective_rank(ztr), 3)}
        if isinstance(self.predictor, CorrelationPredictor):
            wp = self.predictor.matrix().double()
            ev = torch.linalg.eigvalsh((wp + wp.T) / 2).flip(0)
        else:
            self.predictor.eval()
            ev = torch.linalg.eigvals(self.predictor.matrix(ztr[:2048]).double()).real.sort(descending=True).values
        row["pred_eigenvalues"] = [round(float(v), 6) for v in ev]
        if probe:
            hte, _ = self.encode(self.xte)
            r = self.cfg["run"]
            tr, te = linear_probe(htr, self.ytr, hte, self.yte, self.classes, steps=r.probe_steps, seed=r.seed)
            row.update(probe_train_acc=round(tr, 2), probe_test_acc=round(te, 2))
        return row

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": {"online": self.online.state_dict(), "predictor": self.predictor.state_dict(),
                          "target": self.target.state_dict() if self.target is not None else {}},
                "optimizer": self.opt.state_dict(), "epoch": self.epoch, "history": json.dumps(self.history),
                "train_seconds": self.train_seconds, "config": json.dumps(config_dict(self.cfg))}

    def resume(self) -> bool:
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return False
        ck = load_checkpoint(path)
        if ck.get("config") != json.dumps(config_dict(self.cfg)):
            raise ConfigError(f"{path} was written by a different config; use another run.out or delete it")
        self.online.load_state_dict(ck["model"]["online"])
        self.predictor.load_state_dict(ck["model"]["predictor"])
        if self.target is not None:
            self.target.load_state_dict(ck["model"]["target"])
        self.opt.load_state_dict(ck["optimizer"])
        self.epoch, self.history = int(ck["epoch"]), json.loads(ck["history"])
        self.train_seconds = float(ck["train_seconds"])
        return True

    def fit(self, log=print, stop_after: int | None = None) -> dict:
        """Train to ``run.epochs`` (resuming from ``OUT/checkpoint.pt``); ``stop_after`` ends this call
        after that many epochs, as an interruption would (tests)."""
        r = self.cfg["run"]
        self.out.mkdir(parents=True, exist_ok=True)
        if self.resume():
            log(f"resumed from {self.out / 'checkpoint.pt'} at epoch {self.epoch}")
        start = self.epoch
        while self.epoch < r.epochs and (stop_after is None or self.epoch - start < stop_after):
            e = self.epoch
            gen = torch.Generator().manual_seed(r.seed * 100003 + e)
            order = torch.randperm(len(self.ytr), generator=gen)
            t0, losses = time.perf_counter(), []
            for i in range(self.steps_per_epoch):
                idx = order[i * r.batch_size:(i + 1) * r.batch_size]
                if len(idx) < 2:
                    continue
                losses.append(self.step(self.xtr[idx], gen, e * self.steps_per_epoch + i))
                if r.log_every and (i + 1) % r.log_every == 0:
                    el = time.perf_counter() - t0
                    log(f"  epoch {e + 1}/{r.epochs} step {i + 1}/{self.steps_per_epoch} loss {losses[-1]:.4f} "
                        f"({el / (i + 1):.2f} s/step)")
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            last = e + 1 == r.epochs
            row = {"epoch": e + 1, "loss": round(sum(losses) / len(losses), 5), "train_seconds": round(seconds, 1),
                   **self.evaluate(probe=last or (r.probe_every > 0 and (e + 1) % r.probe_every == 0))}
            self.history.append(row)
            self.epoch = e + 1
            with open(self.out / "history.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            save_checkpoint(self.state(), self.out / "checkpoint.pt")
            acc = f" probe {row['probe_test_acc']:.2f}%" if "probe_test_acc" in row else ""
            log(f"epoch {e + 1}/{r.epochs} loss {row['loss']:.4f} erank h {row['effective_rank_h']:.2f} "
                f"z {row['effective_rank_z']:.2f} corr top/bottom {row['corr_eigenvalues'][0]:.3g}/"
                f"{row['corr_eigenvalues'][-1]:.3g}{acc} ({seconds:.0f} s)")
        summary = {"config": config_dict(self.cfg), "final": self.history[-1], "train_seconds": round(self.train_seconds, 1),
                   "train_images": len(self.ytr), "test_images": len(self.yte),
                   "backbone_params": sum(p.numel() for p in self.online.backbone.parameters())}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary


def config_dict(cfg: dict) -> dict:
    return {s: asdict(v) for s, v in cfg.items()}


def run_ssl(path: str | None, overrides: list[str] = (), log=None) -> dict:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    cfg = load_ssl_config(path, list(overrides))
    return SSLRun(cfg).fit(log)
