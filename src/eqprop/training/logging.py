"""Loggers are callbacks: JSON lines (default), CSV, TensorBoard; plus the learning-curve plot.

Epoch metrics are written only once the epoch's checkpoint is on disk (``on_checkpoint``), and on
resume the files are rewritten from the checkpoint's history, so metrics and checkpoint always
agree, even after a crash between the two.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from ..callbacks import Callback


def append_jsonl(path: str | Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _scalars(record: dict) -> dict:
    """Numbers of a record (lists such as per-group rates are spread out as name_0, name_1, ...)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, (int, float)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(u, (int, float)) for u in v):
            out.update({f"{k}_{i}": u for i, u in enumerate(v)})
    return out


class JSONLLogger(Callback):
    """``metrics.jsonl``: one JSON object per epoch; ``steps.jsonl`` every ``log_every`` batches."""

    filename = "metrics.jsonl"

    def __init__(self, log_every: int = 0):
        self.log_every = log_every
        self._written = 0

    def on_fit_start(self, trainer):
        self.path = trainer.out / self.filename
        write_atomic(self.path, "".join(self.format(h) for h in trainer.history))  # agree with the checkpoint
        self._written = len(trainer.history)

    def format(self, record: dict) -> str:
        return json.dumps(record) + "\n"

    def on_checkpoint(self, trainer):
        with open(self.path, "a") as f:
            for record in trainer.history[self._written:]:
                f.write(self.format(record))
        self._written = len(trainer.history)

    def on_batch_end(self, trainer, batch, result):
        if self.log_every and batch.step % self.log_every == 0:
            append_jsonl(trainer.out / "steps.jsonl", trainer.step_record(batch, result))


class CSVLogger(JSONLLogger):
    """``metrics.csv``: one row per epoch with the scalar metrics (the first epoch's columns)."""

    filename = "metrics.csv"

    def on_fit_start(self, trainer):
        self.columns = list(_scalars(trainer.history[0])) if trainer.history else None
        super().on_fit_start(trainer)

    def format(self, record: dict) -> str:
        row = _scalars(record)
        buf = io.StringIO()
        header = self.columns is None
        if header:
            self.columns = list(row)
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        if header:
            w.writeheader()
        w.writerow(row)
        return buf.getvalue()

    def on_batch_end(self, trainer, batch, result):
        pass


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``out/tensorboard`` (``pip install eqprop[tensorboard]``)."""

    def __init__(self, log_every: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ImportError("run.loggers=[tensorboard] needs the tensorboard package: "
                              "pip install 'eqprop[tensorboard]' (or pip install tensorboard)") from None
        self.log_every = log_every

    def on_fit_start(self, trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(trainer.out / "tensorboard"))

    def on_checkpoint(self, trainer):
        record = trainer.history[-1]
        for k, v in _scalars(record).items():
            self.writer.add_scalar(f"epoch/{k}", v, record["epoch"])
        self.writer.flush()

    def on_batch_end(self, trainer, batch, result):
        if self.log_every and batch.step % self.log_every == 0:
            for k, v in _scalars(trainer.step_record(batch, result)).items():
                self.writer.add_scalar(f"step/{k}", v, batch.step)

    def on_fit_end(self, trainer, summary):
        self.writer.close()


LOGGERS = {"jsonl": JSONLLogger, "csv": CSVLogger, "tensorboard": TensorBoardLogger}


def make_loggers(names, log_every: int = 0) -> list[Callback]:
    out = []
    for n in names:
        if n not in LOGGERS:
            from ..registry import ConfigError

            raise ConfigError(f"unknown logger {n!r} in run.loggers; valid loggers: {', '.join(LOGGERS)}")
        out.append(LOGGERS[n](log_every))
    return out


def plot_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    """Loss and accuracy per epoch (train and test) side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split in ("train", "test"):
        if any(h.get(f"{split}_acc") is None for h in history):
            continue  # no test data
        ax1.plot(epochs, [h[f"{split}_loss"] for h in history], marker="o", label=split)
        ax2.plot(epochs, [100 * h[f"{split}_acc"] for h in history], marker="o", label=split)
    ax1.set(xlabel="epoch", ylabel="loss (cost at the free state)")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # integer epoch ticks
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
