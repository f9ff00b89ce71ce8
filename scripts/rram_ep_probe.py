"""Why are the EP rows of the RRAM ablation low, and why are ideal devices worst?  (issue 13 follow-up)

Small, cheap runs of the ablation's EP cell (HopfieldMLP 784-256-10, centered EP, beta 0.5, 20/8
async sweeps, batch 100, biases by SGD 0.02) on the first ``--batches`` training batches, scored on
the full test set, with the weight optimizer swapped:

- ``rram:PRESET``: the ablation's ``RRAMOptimizer`` (Adam in pulses, lr 8, clamp 14, scale = mean |W|).
- ``hidden``: no device physics: an integer hidden weight ``h`` per synapse (``+-1`` at start, like
  ``init_pulses=1``), the same Adam step in pulses rounded and clamped to 14, ``w = scale sign(h)``.
  With identical devices (``ideal``) ``sign(R1 - R2) = sign(n1 - n2)``, so this is the ideal device.
- ``hidden-clip:C``: the same, ``h`` clipped to ``+-C`` (BinaryConnect's bounded hidden weight).
- ``hidden-noise:S``: the same, read as ``sign(h + S xi)`` with ``xi ~ N(0, 1)`` redrawn every step.
- ``bc:LR``: BinaryConnect: a float hidden weight (the initial ``W``), SGD at ``LR`` on EP's gradient,
  clipped to the initial bound ``+-1/sqrt(fan_in)``, read as ``scale sign(h)``.
- ``float``: float weights, SGD ``--float-w-lr`` (the library's MNIST EP recipe, 784-500-10 at 0.05).

    python scripts/rram_ep_probe.py --variants rram:ideal hidden hidden-clip:14 float --batches 300
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from rram_ablation import batches, evaluate, load_mnist  # noqa: E402

from eqprop.devices import preset  # noqa: E402
from eqprop.models import HopfieldMLP  # noqa: E402
from eqprop.optim import RRAMOptimizer  # noqa: E402
from eqprop.rules import EP  # noqa: E402


class HiddenSign(torch.optim.Optimizer):
    """Sign of an integer hidden weight, stepped by the RRAMOptimizer's Adam-in-pulses rule."""

    def __init__(self, params, lr=8.0, max_pulses=14, clip=None, noise=0.0, seed=0, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr})
        self.max_pulses, self.clip, self.noise, self.betas, self.eps = max_pulses, clip, noise, betas, eps
        self.g = torch.Generator().manual_seed(seed)
        self.flips = 0
        with torch.no_grad():
            for grp in self.param_groups:
                for p in grp["params"]:
                    st = self.state[p]
                    st["scale"] = float(p.abs().mean())
                    st["h"] = torch.sign(p.detach()).clone()
                    st["m"], st["v"], st["t"] = torch.zeros_like(p), torch.zeros_like(p), 0
                    p.copy_(self._read(st))

    def _read(self, st):
        h = st["h"]
        if self.noise:
            h = h + self.noise * torch.randn(h.shape, generator=self.g)
        return st["scale"] * torch.sign(h)

    @torch.no_grad()
    def step(self):
        flips = 0
        b1, b2 = self.betas
        for grp in self.param_groups:
            for p in grp["params"]:
                st = self.state[p]
                st["t"] += 1
                t = st["t"]
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                u = -grp["lr"] * (st["m"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + self.eps)
                st["h"].add_(torch.round(u).clamp_(-self.max_pulses, self.max_pulses))
                if self.clip is not None:
                    st["h"].clamp_(-self.clip, self.clip)
                new = self._read(st)
                flips += int((torch.sign(new) != torch.sign(p)).sum())
                p.copy_(new)
        self.flips = flips


class BinaryConnect(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})
        with torch.no_grad():
            for grp in self.param_groups:
                for p in grp["params"]:
                    st = self.state[p]
                    st["scale"] = float(p.abs().mean())
                    st["bound"] = float(p.abs().max())
                    st["h"] = p.detach().clone()
                    p.copy_(st["scale"] * torch.sign(st["h"]))

    @torch.no_grad()
    def step(self):
        for grp in self.param_groups:
            for p in grp["params"]:
                st = self.state[p]
                st["h"].add_(p.grad, alpha=-grp["lr"]).clamp_(-st["bound"], st["bound"])
                p.copy_(st["scale"] * torch.sign(st["h"]))


def weight_flips(opt):
    return getattr(opt, "flips", None)


def run(variant, args, data, seed=0):
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(seed)
    model = HopfieldMLP([784, args.hidden, 10], output="ce")
    rule = EP(variant="centered", beta=0.5, free_steps=20, nudge_steps=8, mode="async")
    weights = [w for n, w in model.named_parameters() if n.endswith("weight")]
    biases = [b for n, b in model.named_parameters() if not n.endswith("weight")]
    kind, _, arg = variant.partition(":")
    lr = args.lr
    if args.scale_mult != 1.0:
        with torch.no_grad():   # binary read-outs take scale = mean |W|: scale the initial W instead
            for w in weights:
                w.mul_(args.scale_mult)
    if kind == "rram":
        opt = RRAMOptimizer(weights, preset(arg), lr=lr, scale=None, seed=1000 + seed)
    elif kind == "hidden":
        opt = HiddenSign(weights, lr=lr)
    elif kind == "hidden-clip":
        opt = HiddenSign(weights, lr=lr, clip=float(arg))
    elif kind == "hidden-noise":
        opt = HiddenSign(weights, lr=lr, noise=float(arg))
    elif kind == "bc":
        opt = BinaryConnect(weights, lr=float(arg))
    elif kind == "float":
        opt = torch.optim.SGD(weights, lr=args.float_w_lr)
    else:
        raise SystemExit(f"unknown variant {variant}")
    fopt = torch.optim.SGD(biases, lr=0.02)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    flips, nb = [], 0
    prev = [w.detach().sign().clone() for w in weights]
    for xb, yb in batches(xtr, ytr, 100, g):
        opt.zero_grad(set_to_none=True)
        fopt.zero_grad(set_to_none=True)
        rule.step(model, xb, yb)
        opt.step()
        fopt.step()
        cur = [w.detach().sign() for w in weights]
        flips.append(sum(int((a != b).sum()) for a, b in zip(cur, prev)) / sum(w.numel() for w in weights))
        prev = [c.clone() for c in cur]
        nb += 1
        if nb >= args.batches:
            break
    acc = evaluate("ep", model, rule, xte, yte)
    rec = {"variant": variant, "lr": lr, "scale_mult": args.scale_mult, "seed": seed, "batches": nb, "test_acc": round(acc, 2),
           "flip_frac_first50": round(sum(flips[:50]) / 50, 4), "flip_frac_last50": round(sum(flips[-50:]) / 50, 5),
           "seconds": round(time.time() - t0, 1)}
    if kind == "rram":
        hs = []
        for w in weights:
            n = opt.device_state(w)["n"]
            hs.append((n[0] - n[1]).abs().float().flatten())
        h = torch.cat(hs)
        rec["abs_n1_minus_n2_median"] = float(h.median())
        rec["abs_n1_minus_n2_p90"] = float(h.quantile(0.9)) if h.numel() < 16_000_000 else None
    if kind.startswith("hidden"):
        h = torch.cat([opt.state[w]["h"].abs().flatten() for w in weights])
        rec["abs_h_median"] = float(h.median())
        rec["abs_h_p90"] = float(h.quantile(0.9))
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=8.0)
    ap.add_argument("--float-w-lr", type=float, default=0.05)
    ap.add_argument("--scale-mult", type=float, default=1.0, help="multiply the initial weights (and so the binary scale)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = load_mnist(os.environ.get("EQPROP_DATA"))
    for seed in args.seeds:
        for v in args.variants:
            rec = run(v, args, data, seed)
            print(json.dumps(rec), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
