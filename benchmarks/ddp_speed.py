"""Samples per second of data-parallel EP training: 1 process vs N processes (torch.distributed).

Every configuration runs the real Trainer path (global batch drawn, sharded, ``rule.step``,
gradient all-reduce, optimizer step) on generated 784-dimensional inputs for ``--steps`` timed
steps after ``--warmup`` steps. The baseline is the same global batch in one process. Prints one
JSON line per configuration, then one summary line with the parallel efficiency
``samples/s(N) / (N * samples/s(1))``:

    python benchmarks/ddp_speed.py [--nproc 2] [--batch 128] [--hidden 500] [--steps 20] [--device cpu|cuda]

On the CPU each process uses ``--threads`` torch threads (default 1), so N processes use N
cores; the one-process run with N threads is also timed (``intra-op``), the alternative use of the
same cores. On CUDA each process takes ``cuda:RANK`` (NCCL) and the intra-op line is left out.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from common import context, sync  # noqa: E402

import eqprop  # noqa: E402
from eqprop.callbacks import Callback  # noqa: E402


class Clock(Callback):
    """Wall time from the first timed step's start to the last step's end (after a barrier)."""

    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.allreduce = warmup, None, None, 0.0

    def before_step(self, trainer, batch):
        if batch.step == self.warmup:
            sync(trainer.device)
            if torch.distributed.is_initialized():
                torch.distributed.barrier()
            self.t0 = time.perf_counter()

    def on_batch_end(self, trainer, batch, result):
        sync(trainer.device)
        self.t1 = time.perf_counter()


def one_run(rank: int, world: int, port: int, args, threads: int, queue) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    steps = args.warmup + args.steps
    x = torch.rand(steps * args.batch, 784)
    y = torch.randint(0, 10, (steps * args.batch,))
    model = eqprop.models.HopfieldMLP([784, args.hidden, 10], output="ce")
    rule = eqprop.rules.EP(variant="centered", beta=0.5, free_steps=args.free, nudge_steps=args.nudge, mode="async")
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    clock = Clock(args.warmup)
    with tempfile.TemporaryDirectory() as out, open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        t = eqprop.Trainer(model, rule, opt, (x, y), (x[:64], y[:64]), callbacks=[clock], schedule="none", epochs=1,
                           batch_size=args.batch, progress=False, device=args.device, dtype="float32", out=out,
                           loggers=[])
        comm = [0.0]
        for cb in t.callbacks:  # time the gradient all-reduce (the first after_step) of the timed steps
            if type(cb).__name__ == "AllReduceGrads":
                inner = cb.after_step

                def timed(trainer, batch, result, inner=inner):
                    t0 = time.perf_counter()
                    inner(trainer, batch, result)
                    sync(trainer.device)
                    if batch.step >= args.warmup:
                        comm[0] += time.perf_counter() - t0
                cb.after_step = timed
        t.fit()
    if rank == 0:
        queue.put((clock.t1 - clock.t0, comm[0]))
    if world > 1:
        torch.distributed.destroy_process_group()


def measure(world: int, args, threads: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(one_run, args=(world, port, args, threads, queue), nprocs=world, start_method="spawn")
    return queue.get()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128, help="the global batch")
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--free", type=int, default=20)
    ap.add_argument("--nudge", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (CPU)")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many measurements")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    base = {"benchmark": "ddp_speed", "model": f"HopfieldMLP 784-{args.hidden}-10 (ce)",
            "rule": f"ep-centered {args.free}/{args.nudge} async", "global_batch": args.batch,
            "timed_steps": args.steps, **context(device)}
    plan = [("1 process", 1, args.threads, args.batch), (f"{args.nproc} processes", args.nproc, args.threads, args.batch),
            # what one process does per sample on a shard-sized batch: tells cache effects from parallelism
            (f"1 process, batch {args.batch // args.nproc}", 1, args.threads, args.batch // args.nproc)]
    if device.type == "cpu":
        plan.append((f"1 process, {args.nproc * args.threads} threads (intra-op)", 1, args.nproc * args.threads, args.batch))
    best = {label: (float("inf"), 0.0) for label, *_ in plan}
    for _ in range(args.repeats):  # round-robin, best of each: a shared machine's load hits all alike
        for label, world, threads, batch in plan:
            best[label] = min(best[label], measure(world, argparse.Namespace(**{**vars(args), "batch": batch}), threads))
    rates = {}
    for label, world, threads, batch in plan:
        secs, comm = best[label]
        rate = args.steps * batch / secs
        rates[label] = rate
        print(json.dumps({**base, "config": label, "global_batch": batch, "processes": world,
                          "threads_per_process": threads, "ms_per_step": round(1000 * secs / args.steps, 2),
                          "samples_per_s": round(rate, 1), "allreduce_ms_per_step": round(1000 * comm / args.steps, 2),
                          "repeats": args.repeats}), flush=True)
    one, many = rates["1 process"], rates[f"{args.nproc} processes"]
    print(json.dumps({**base, "config": "summary", "processes": args.nproc, "speedup": round(many / one, 3),
                      "parallel_efficiency": round(many / (args.nproc * one), 3)}), flush=True)


if __name__ == "__main__":
    main()
