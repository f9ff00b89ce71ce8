"""Trace collapse step by step in an `eqprop ssl` run (issue 15 follow-up).

    python scripts/ssl_collapse_trace.py CONFIG STEPS EVERY [section.key=value ...]

Runs STEPS training steps of the config (the trainer's own `SSLRun.step`, the epoch's shuffled
batches in order) and prints, every EVERY steps, on the current batch in train mode: the loss,
the effective rank of the features h and embeddings z, the mean norm of z and the norm of the
batch mean of z (how much of z is a constant offset). No probe, no checkpoint.
"""
import sys
import time

import torch

from eqprop.ssl.probe import effective_rank
from eqprop.ssl.trainer import SSLRun, load_ssl_config


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    path, steps, every = argv[0], int(argv[1]), int(argv[2])
    cfg = load_ssl_config(path, list(argv[3:]) + ["run.out=/tmp/ssl_collapse_trace"])
    r = SSLRun(cfg)
    bs, t0, s = cfg["run"].batch_size, time.perf_counter(), 0
    for epoch in range(steps // r.steps_per_epoch + 1):
        gen = torch.Generator().manual_seed(cfg["run"].seed * 100003 + epoch)
        order = torch.randperm(len(r.ytr), generator=gen)
        for i in range(r.steps_per_epoch):
            if s >= steps:
                break
            x = r.xtr[order[i * bs:(i + 1) * bs]]
            loss = r.step(x, gen, s)
            if s % every == 0 or s == steps - 1:
                with torch.no_grad():
                    r.online.train()
                    h, z = r.online(r._prep(x.float() / 255))
                print(f"step {s} lr {r.lr_at(s):.4f} loss {loss:.3f} erank h {effective_rank(h):.2f} "
                      f"z {effective_rank(z):.2f} |z| {float(z.norm(dim=1).mean()):.2f} "
                      f"|mean z| {float(z.mean(0).norm()):.2f}", flush=True)
            s += 1
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
