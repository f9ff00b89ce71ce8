"""Passes, time and peak memory of the GLEP estimators and of autograd (BPTT) through the same
integrator, as the number of steps N grows. One JSON line per (variant, N); docs/glep.md has the table.

    python benchmarks/glep_variants.py [--steps 200 800] [--oscillators 256] [--jsonl FILE]

Memory is the growth of the resident set during one gradient computation (VmHWM reset through
/proc/self/clear_refs just before, minus VmRSS just before; fixed glibc mmap threshold so freed
tensors go back to the kernel), as in benchmarks/rhel_memory.py, whose helpers this reuses.
Default chain: 128 oscillators, batch 64 (one state = 64 KiB, so every state is its own mapping).
The fixed-endpoint variant (a dense Newton solve on all (N-1) n interior unknowns) runs on a
3-oscillator chain, batch 1, with N/10 steps: its Hessian is (N n)^2; the constant-initial-value
variant (one tangent pass per parameter, batched by jacfwd: P x the state) on 16 oscillators,
batch 8, N/4 steps. ``peak_in_states`` is the peak over the size of one state (B x n float64). Linux only.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

from rhel_memory import MMAP_ENV, _reset_peak, _status

VARIANTS = ("autograd", "pfvp-central", "pfvp-one-sided", "constant-initial-value", "fixed-endpoints")


def _task(n, N, B=64, seed=0):
    import torch

    from eqprop.lagrangian import QuarticChain, SquaredError, Task
    system = QuarticChain(n=n, d_input=2, readout_nodes=(0, n - 1), dt=0.1, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    u = 0.5 * torch.randn(B, N + 1, 2, generator=g)
    target = 0.3 * torch.randn(B, N + 1, 2, generator=g)
    task = Task(u, 0.5 * torch.randn(B, n, generator=g), 0.5 * torch.randn(B, n, generator=g),
                SquaredError(target, torch.ones(N + 1)))
    return system, task


def run_one(variant: str, N: int, n: int) -> dict:
    import torch

    from eqprop.lagrangian import (PFVP, ConstantInitialValue, FixedEndpoints, integrate, reference_gradients,
                                   relative_error, solve_bvp)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    B = 64
    if variant == "fixed-endpoints":
        n, N, B = 3, max(N // 10, 4), 1
    elif variant == "constant-initial-value":  # a tangent pass per parameter: keep it small
        n, N, B = 16, N // 4, 8
    system, task = _task(n, N, B)
    extra = {}
    if variant == "fixed-endpoints":
        with torch.no_grad():
            qN, _, qs = integrate(system, task, record=True)
        Q, _, _ = solve_bvp(system, task, qN, init=qs[:, 1:-1])
        fn = lambda: FixedEndpoints(beta=1e-3).estimate(system, task, qN, init=Q)  # noqa: E731
    elif variant == "autograd":
        fn = lambda: (reference_gradients(system, task)[0], None)  # noqa: E731
    elif variant.startswith("pfvp"):
        fn = lambda: PFVP(beta=1e-3, variant=variant[5:]).estimate(system, task)  # noqa: E731
    else:
        fn = lambda: ConstantInitialValue(beta=1e-3).estimate(system, task)  # noqa: E731
    fn()  # warm-up (and jacfwd's first-call costs)
    gc.collect()
    before = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    grads, res = fn()
    wall = time.perf_counter() - t0
    peak = _status("VmHWM") - before
    if variant != "fixed-endpoints":
        ref, _ = reference_gradients(system, task)
        extra["rel_error_vs_autograd"] = relative_error(grads, ref)
    passes = 2 if res is None else res.stats.get("passes")
    if variant == "fixed-endpoints":
        its = res.stats["newton_iterations"]
        passes = f"{sum(its)} Newton iterations (3 solves), each on the whole trajectory"
    state_bytes = n * 8 * task.u.shape[0]
    return {"variant": variant, "steps": N, "oscillators": n, "params": sum(p.numel() for p in system.parameters()),
            "passes": passes, "seconds": round(wall, 4), "peak_mib": round(peak / 2**20, 3),
            "peak_in_states": round(peak / state_bytes, 1), **extra,
            "dtype": "float64", "threads": 1, "machine": platform.machine(), "cpu": os.cpu_count()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[100, 400])
    p.add_argument("--oscillators", type=int, default=128)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--jsonl")
    p.add_argument("--one", nargs=3, metavar=("VARIANT", "N", "n"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if os.environ.get(MMAP_ENV) is None:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, MMAP_ENV: "65536"})
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), int(args.one[2]))))
        return 0
    import subprocess
    for v in args.variants:
        for N in args.steps:  # a fresh process per measurement
            out = subprocess.run([sys.executable, __file__, "--one", v, str(N), str(args.oscillators)],
                                 capture_output=True, text=True, check=True, timeout=300).stdout.strip().splitlines()[-1]
            print(out, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
