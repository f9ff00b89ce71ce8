"""Time and peak memory of one training step of RHEL and of BPTT on the same HSSM, as the
sequence length grows. Prints one JSON line per (rule, length); `--plot FILE` draws memory vs length.

    python benchmarks/rhel_memory.py [--lengths 1000 4000 16000 50000] [--batch 4] [--d-model 16]
    python benchmarks/rhel_memory.py --precision    # float32 gradients against float64 BPTT

Memory is measured as the growth of the process's resident set during the step: the kernel's
high-water mark (VmHWM) is reset through /proc/self/clear_refs just before the step and read
after it, minus the resident set (VmRSS) just before. The process runs with a fixed
glibc mmap threshold (MALLOC_MMAP_THRESHOLD_, set by re-executing itself) so that every tensor
above 64 KiB is its own mapping, returned to the kernel when freed: the resident set then follows
the live tensors. The input sequence, the model and the .grad buffers exist before the step and
are not counted. For BPTT the bytes autograd saves for the backward pass (saved_tensors_hooks)
are reported too, as a cross-check that needs no operating-system help. Linux only.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def saved_bytes_bptt(model, x, y) -> int:
    """Bytes of the tensors autograd keeps for BPTT's backward pass (each storage counted once)."""
    import torch

    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += key[1]
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _, loss = model.predict_loss(x, y)
    del loss
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1000, 4000, 16000, 50000])
    p.add_argument("--rules", nargs="+", default=["bptt", "rhel"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--d-model", type=int, default=16)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1024, help="RHEL's chunk of time steps")
    p.add_argument("--repeats", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--plot", help="write memory vs length to this PNG")
    p.add_argument("--jsonl", help="also append the JSON lines to this file")
    p.add_argument("--precision", action="store_true",
                   help="instead: float32 RHEL and BPTT gradients against float64 BPTT, per length")
    args = p.parse_args()
    if os.environ.get(MMAP_ENV) is None:  # fix the allocator's behaviour, then start afresh
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, MMAP_ENV: "65536"})

    import torch

    from eqprop.models import HSSM
    from eqprop.rules import make_rule

    torch.set_num_threads(args.threads)
    if args.precision:
        return _precision(args)
    rows = []
    for steps in args.lengths:
        torch.manual_seed(0)
        model = HSSM(1, 10, d_model=args.d_model, blocks=args.blocks)
        x = torch.randn(args.batch, steps, 1)
        y = torch.randint(0, 10, (args.batch,))
        for name in args.rules:
            rule = make_rule(name, chunk=args.chunk)
            model.zero_grad(set_to_none=False)
            rule.step(model, x, y)  # warm-up; allocates .grad
            times = []
            peak = 0
            for _ in range(args.repeats):
                gc.collect()
                before = _status("VmRSS")
                _reset_peak()
                t0 = time.perf_counter()
                rule.step(model, x, y)
                times.append(time.perf_counter() - t0)
                peak = max(peak, _status("VmHWM") - before)
            row = {
                "bench": "rhel_memory", "rule": name, "seq_len": steps, "batch": args.batch, "d_model": args.d_model,
                "blocks": args.blocks, "chunk": args.chunk if name == "rhel" else None,
                "ms_per_step": 1000 * min(times), "ms_per_time_step": 1000 * min(times) / steps,
                "peak_rss_delta_bytes": peak, "input_bytes": x.numel() * x.element_size(),
                "device": "cpu", "threads": args.threads, "dtype": "float32", "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(),
            }
            if name == "bptt":
                row["autograd_saved_bytes"] = saved_bytes_bptt(model, x, y)
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(line + "\n")
    if args.plot:
        _plot(rows, args.plot)
    return 0


def _precision(args) -> int:
    """Relative error and cosine of float32 gradients (RHEL, BPTT) against float64 BPTT."""
    import copy

    import torch

    from eqprop.models import HSSM
    from eqprop.rules import RHEL
    from eqprop.rules.sequence import sequence_bptt

    for steps in args.lengths:
        torch.manual_seed(0)
        model = HSSM(1, 10, d_model=args.d_model, blocks=args.blocks)
        x = torch.randn(args.batch, steps, 1)
        y = torch.randint(0, 10, (args.batch,))
        ref, _ = sequence_bptt(copy.deepcopy(model).double(), x.double(), y)
        flat_ref = torch.cat([ref[n].flatten() for n in ref])
        row = {"bench": "rhel_precision", "seq_len": steps, "batch": args.batch, "d_model": args.d_model,
               "blocks": args.blocks, "reference": "bptt float64"}
        for name, grads in (("rhel", RHEL(chunk=args.chunk).estimate(model, x, y)[0]),
                            ("bptt", sequence_bptt(model, x, y)[0])):
            flat = torch.cat([grads[n].double().flatten() for n in ref])
            row[f"{name}_f32_rel_error"] = float((flat - flat_ref).norm() / flat_ref.norm())
            row[f"{name}_f32_cosine"] = float(flat @ flat_ref / flat.norm() / flat_ref.norm())
        print(json.dumps(row), flush=True)
    return 0


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for rule, style in (("bptt", "o-"), ("rhel", "s-")):
        r = [x for x in rows if x["rule"] == rule]
        if not r:
            continue
        ls = [x["seq_len"] for x in r]
        ax[0].plot(ls, [x["peak_rss_delta_bytes"] / 2**20 for x in r], style, label=rule.upper())
        ax[1].plot(ls, [x["ms_per_step"] / 1000 for x in r], style, label=rule.upper())
        if rule == "bptt":
            ax[0].plot(ls, [x["autograd_saved_bytes"] / 2**20 for x in r], "o:", color="gray",
                       label="BPTT: bytes saved by autograd")
    ax[0].set(xlabel="sequence length (steps)", ylabel="peak memory of one step (MiB)", xscale="log", yscale="log",
              title="memory of one training step")
    ax[1].set(xlabel="sequence length (steps)", ylabel="seconds per training step", xscale="log", yscale="log",
              title="time of one training step")
    for a in ax:
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    r0 = rows[0]
    fig.suptitle(f"HSSM ({r0['blocks']} linear-HRU blocks, d_model={r0['d_model']}, batch {r0['batch']}), CPU float32")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
