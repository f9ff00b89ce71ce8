"""Run a task stream: train task after task, score every eval set after every epoch, consolidate
at task ends, checkpoint (atomically) after each task so that a rerun resumes at the next task.

Writes to the run folder: ``metrics.json`` (accuracy matrix, mean accuracy, BWT, forgetting,
per-epoch curves, times), ``heatmap.png``, ``curves.png``, ``config.yaml``, ``checkpoint.pt``.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
import yaml

from ..models.bnn import BinaryConvNet, BinaryMLP
from ..training.checkpoint import load_checkpoint, save_checkpoint
from .cascade import CascadeAdam
from .config import ContinualConfig
from .ewc import EWC
from .metaplastic import MetaplasticAdam, metaplastic_groups
from .metrics import continual_metrics, plot_accuracy_curves, plot_accuracy_matrix, write_json
from .si import SynapticIntelligence
from .streams import make_stream

__all__ = ["build_model", "evaluate", "run_continual"]


def build_model(cfg: ContinualConfig, input_shape=(1, 28, 28), num_outputs: int = 10) -> torch.nn.Module:
    mc = cfg.model
    if mc.name == "bnn-mlp":
        n_in = int(torch.tensor(input_shape).prod())
        return BinaryMLP([n_in, *mc.hidden, num_outputs], activation=mc.activation, weight_ste=mc.weight_ste,
                         track_running_stats=mc.track_running_stats)
    return BinaryConvNet(input_shape, num_outputs, channels=mc.channels, weight_ste=mc.weight_ste,
                         track_running_stats=mc.track_running_stats)


def _optimizer(cfg: ContinualConfig, model):
    oc, mc = cfg.optim, cfg.method
    kw = dict(lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)
    if mc.name == "cascade":
        return CascadeAdam(model.parameters(), areas=mc.cascade_areas, couplings=mc.cascade_couplings, **kw)
    m = mc.m if mc.name == "metaplastic" else 0.0
    if isinstance(m, list) and len(m) == 1:
        m = m[0]
    return MetaplasticAdam(metaplastic_groups(model, m), **kw)


def _consolidation(cfg: ContinualConfig, model):
    mc = cfg.method
    if mc.name == "ewc":
        return EWC(model.binary_parameters(), lam=mc.ewc_lambda, gamma=mc.ewc_gamma, samples=mc.fisher_samples)
    if mc.name == "si":
        return SynapticIntelligence(model.binary_parameters(), c=mc.si_c, xi=mc.si_xi)
    return None


@torch.no_grad()
def evaluate(model, x, y, batch_size: int = 1000) -> float:
    """Accuracy (fraction) of ``model`` in eval mode on ``(x, y)``."""
    was = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    model.train(was)
    return correct / len(x)


def _bn_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.norms.state_dict().items()}


def _score(model, stream, bn_states, j, bs) -> list[float]:
    """Accuracy on every eval set after (part of) task ``j``; a finished task's set is scored with
    the batch-norm state saved at its end when ``bn_states`` is given."""
    current = _bn_state(model)
    accs = []
    for ev, t in zip(stream.evals, stream.task_of_eval):
        if bn_states is not None and t is not None and t < j:
            model.norms.load_state_dict(bn_states[t])
        accs.append(evaluate(model, ev.x, ev.y, bs))
        model.norms.load_state_dict(current)
    return accs


def _same_run(a: dict, b: dict) -> bool:
    strip = lambda d: {s: {k: v for k, v in sec.items() if k not in ("resume", "progress", "out")}  # noqa: E731
                       for s, sec in d.items()}
    return strip(a) == strip(b)


def run_continual(cfg: ContinualConfig, stream=None, log=print) -> dict:
    """Train ``cfg``'s stream (or the given ``Stream``) and return the metrics dict (also written)."""
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    sc, rc = cfg.stream, cfg.run
    if stream is None:
        stream = make_stream(sc.name, sc.n_tasks, sc.seed, sc.root, sc.train_subset, sc.test_subset)
    T = len(stream.tasks)
    torch.manual_seed(rc.seed)
    model = build_model(cfg, tuple(stream.tasks[0].x.shape[1:]), 10)
    opt = _optimizer(cfg, model)
    cons = _consolidation(cfg, model)
    bn_states: list[dict] = []
    columns: list[list[float]] = []
    curves: list[dict] = []
    done, train_time = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if rc.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if not _same_run(ck["config"], cfg.to_dict()):
            raise ValueError(f"{ckpt_path} was written by a different config; use another run.out or run.resume=false")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if cons is not None:
            cons.load_state_dict(ck["consolidation"])
        bn_states, columns, curves = ck["bn_states"], ck["columns"], ck["curves"]
        done, train_time = ck["tasks_done"], ck["train_time_s"]
        log(f"[continual] resuming {out} after task {done}/{T}")
    for j in range(done, T):
        task = stream.tasks[j]
        if j > 0 and cfg.optim.reset_per_task and cfg.method.name != "cascade":
            opt = _optimizer(cfg, model)
        t0 = time.perf_counter()
        for e in range(rc.epochs_per_task):
            model.train()
            gen = torch.Generator().manual_seed(1_000_003 * rc.seed + 1009 * j + e)
            order = torch.randperm(len(task.x), generator=gen)
            batches = order.split(rc.batch_size)
            it = batches
            if rc.progress:
                from tqdm import tqdm

                it = tqdm(batches, desc=f"task {j + 1}/{T} {task.name} epoch {e + 1}/{rc.epochs_per_task}",
                          leave=False, mininterval=2.0)
            total, n = 0.0, 0
            for idx in it:
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                loss = F.cross_entropy(model(task.x[idx]), task.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cons is not None:
                    cons.before_step()
                    cons.add_penalty_grad()
                opt.step()
                if cons is not None:
                    cons.after_step()
                if not torch.isfinite(loss):
                    raise ValueError(f"the loss diverged (={float(loss)}) in task {j + 1}; lower optim.lr")
                total, n = total + loss.item() * len(idx), n + len(idx)
            accs = _score(model, stream, bn_states if rc.bn_per_task else None, j, rc.eval_batch_size)
            curves.append({"task": j, "epoch": e + 1, "train_loss": total / max(n, 1), "acc": accs})
            log(f"[continual] task {j + 1}/{T} ({task.name}) epoch {e + 1}/{rc.epochs_per_task}: loss "
                f"{total / max(n, 1):.4f}; test " + ", ".join(f"{ev.name} {100 * a:.2f}%" for ev, a in zip(stream.evals, accs)))
        if cons is not None:
            torch.manual_seed(rc.seed * 7919 + j)
            cons.after_task(model, task.x, task.y)
        train_time += time.perf_counter() - t0
        bn_states.append(_bn_state(model))
        columns.append(curves[-1]["acc"])
        save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "consolidation": None if cons is None else cons.state_dict(), "bn_states": bn_states,
                         "columns": columns, "curves": curves, "tasks_done": j + 1, "train_time_s": train_time,
                         "config": cfg.to_dict()}, ckpt_path)
        _report(cfg, stream, columns, curves, train_time, out, final=j + 1 == T)
    return _report(cfg, stream, columns, curves, train_time, out, final=True)


def _report(cfg, stream, columns, curves, train_time, out, final) -> dict:
    R = torch.tensor(columns, dtype=torch.float64).T  # (n_eval, tasks done)
    res = {"stream": stream.name, "method": cfg.method.name, "m": cfg.method.m if cfg.method.name == "metaplastic" else 0.0,
           "seed": cfg.run.seed, "tasks": [t.name for t in stream.tasks], "eval_sets": [e.name for e in stream.evals],
           "tasks_done": len(columns), "finished": final and len(columns) == len(stream.tasks),
           "accuracy_matrix": R.tolist(), **continual_metrics(R), "train_time_s": train_time,
           "curves": curves, "config": cfg.to_dict()}
    write_json(res, out / "metrics.json")
    if not final:
        return res
    title = f"{stream.name} {cfg.method.name}" + (f" m={cfg.method.m}" if cfg.method.name == "metaplastic" else "") + \
        f" seed {cfg.run.seed}: mean acc {100 * res['mean_accuracy']:.1f}%"
    plot_accuracy_matrix(R, res["eval_sets"], res["tasks"][:R.shape[1]], out / "heatmap.png", title)
    plot_accuracy_curves(curves, res["eval_sets"], out / "curves.png", title)
    return res
