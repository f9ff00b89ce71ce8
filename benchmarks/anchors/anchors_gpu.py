"""The two published conv codes beside our DCHN on one device (issue 17, item 4): epoch times.

Anchors (their code is cloned into ``benchmarks/anchors/published/``, git-ignored, by
``benchmarks/anchors/fetch.sh``; nothing of it is copied into eqprop):

- ``ebl``: rain-neuromorphics/energy-based-learning, the DCHN of ``papers/ebl-algorithms/
  sota-dchn.py`` (``ConvHopfieldEnergy32``, channels 128-256-512-512, max pooling, linear
  output in the energy, gains 0.4-0.7-0.6-0.3-0.4): centered EP, beta 0.1, 60 free + 20 + 20
  asynchronous iterations (their ``FixedPointMinimizer``), SGD momentum 0.9, weight decay 2.5e-4;
  their per-batch steps of ``training.epoch.Trainer``: ``set_input(reset=True)``, the free
  ``compute_equilibrium``, ``set_target``, ``compute_gradient``, ``optimizer.step`` (their
  ``Optimizer`` is ``torch.optim.SGD`` over the parameter tensors; built here without
  ``training.monitor``, which imports tensorboard). Ours: ``ConvHopfield.dchn32`` with a linear
  output (the same energy), their initial weights copied in, the same rule settings.
- ``laborieux``: Laborieux et al. 2021 (Laborieux-Axel/Equilibrium-Propagation), ``P_CNN`` as in
  its README's CIFAR-10 command with the softmax readout: channels 3-128-256-512-512, 3x3
  kernels, paddings 1-1-1-0, max pooling, fc 10, ``my_hard_sig``, cross-entropy readout outside
  the energy, EP with the third phase, beta 1.0, T1 = 250 free, T2 = 25 nudged synchronous
  steps (their ``train``: ``init_neurons``, three ``model(...)`` phases, ``compute_syn_grads``,
  ``optimizer.step``). Ours: ``ConvHopfield`` 128-256-512-512 with ``output="ce"``, centered EP
  250 / 25 / 25 synchronous, beta 1.0. **Not the same network**: our last convolution keeps
  padding 1 (4x4 -> pooled 2x2, a 2048-wide readout) where theirs has padding 0 (2x2 -> 1x1,
  512-wide), so ours does more arithmetic in that layer; the weights are not shared.

For each anchor, ours runs in float32 (eager, the same settings) and on the fastest path
(bf16 relaxations with float32 master weights, channels-last, every phase captured as a CUDA
graph: ``relax_dtype="bfloat16", capture=True``). Protocol: random CIFAR-shaped batches (uniform
noise, fixed seed; the issue's anchors used random data), one process, torch's default
precision settings (TF32 convolutions on, as the published codes run by default); per batch the
steps run back to back in an order that rotates, each timed alone between CUDA synchronisations.
Per-pair ratios (theirs / ours) give the median speed-up. Epoch time = 391 training + 79 test
batches of 128, **extrapolated** from the median timed batch (a test batch is the free phase
alone: 60 iterations for ebl, 250 for laborieux, as their evaluators run).

    python benchmarks/anchors/anchors_gpu.py --device cuda [--anchor ebl|laborieux|both] [--batches 20]

CPU smoke run (tiny, to check the drivers): ``--device cpu --batch 2 --free 2 --nudge 2
--channels 8,8,16,16 --batches 2``. Prints one JSON line per anchor.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import context  # noqa: E402
from published_codes import laborieux_step, laborieux_utils, need  # noqa: E402

import eqprop  # noqa: E402
from eqprop.models.conv import ConvHopfield  # noqa: E402

TRAIN_BATCHES, TEST_BATCHES = 391, 79



def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(model, rule, lr, momentum, wd):
    """Our training step (the rule writes .grad, SGD applies it) and test step (the free phase)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)

    def train(x, y):
        opt.zero_grad(set_to_none=True)
        rule.step(model, x, y)
        opt.step()

    def test(x, y):
        return rule.infer(model, x, y).output.argmax(-1)

    return train, test


def ebl(device, channels, free, nudge):
    root = need("energy-based-learning")
    sys.path.insert(0, str(root))
    from model.function.cost import SquaredError
    from model.function.network import Network
    from model.hopfield.minimizer import FixedPointMinimizer
    from model.hopfield.network import ConvHopfieldEnergy32
    from training.sgd import AugmentedFunction, EquilibriumProp

    torch.manual_seed(0)
    gains = [0.4, 0.7, 0.6, 0.3, 0.4]
    beta, lr, momentum, wd = 0.1, 0.03, 0.9, 2.5e-4
    energy_fn = ConvHopfieldEnergy32(3, 10, *channels, weight_gains=gains)
    energy_fn.set_device(str(device))
    cost_fn = SquaredError(energy_fn.layers()[-1])
    network = Network(energy_fn)
    params, layers = energy_fn.params(), energy_fn.layers()
    augmented = AugmentedFunction(energy_fn, cost_fn)
    train_min = FixedPointMinimizer(augmented, network.free_layers())
    train_min.num_iterations, train_min.mode = nudge, "asynchronous"
    estimator = EquilibriumProp(params, layers, augmented, cost_fn, train_min)
    estimator.nudging, estimator.variant = beta, "centered"
    free_min = FixedPointMinimizer(energy_fn, network.free_layers())
    free_min.num_iterations, free_min.mode = free, "asynchronous"
    all_params = params + cost_fn.params()
    opt = torch.optim.SGD([p.state for p in all_params], lr=lr, momentum=momentum, weight_decay=wd)

    def train_theirs(x, y):
        network.set_input(x, reset=True)
        free_min.compute_equilibrium()
        cost_fn.set_target(y)
        grads = estimator.compute_gradient()
        for p, g in zip(all_params, grads):
            p.state.grad = g
        opt.step()

    def test_theirs(x, y):
        network.set_input(x, reset=True)
        free_min.compute_equilibrium()
        return layers[-1].state.argmax(-1)

    tensors = [p.state for p in params]
    biases, weights = tensors[:5], tensors[5:]

    def make_ours():
        m = ConvHopfield((3, 32, 32), channels, 10, gains=gains, output_activation="linear").to(device)
        with torch.no_grad():
            for conv, w, b in zip(m.convs, weights[:4], biases[:4]):
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            m.dense.weight.copy_(weights[4].reshape(-1, 10).T)
            m.dense.bias.copy_(biases[4])
        return m

    def diff(m):
        """Largest |ours - theirs| over the weights and biases (the same updates on the same batches)."""
        pairs = [(c.weight, w) for c, w in zip(m.convs, weights[:4])] + [(c.bias, b) for c, b in zip(m.convs, biases[:4])]
        pairs += [(m.dense.weight, weights[4].reshape(-1, 10).T), (m.dense.bias, biases[4])]
        return max(float((a - b).abs().max()) for a, b in pairs)

    make_ours.diff = diff
    info = dict(model=f"DCHN 3-{'-'.join(map(str, channels))}, max pool, linear output",
                sweeps=f"{free} free + {nudge} + {nudge}, async", beta=beta, published="rain-neuromorphics/energy-based-learning",
                weights="theirs copied into ours")
    return (train_theirs, test_theirs), make_ours, dict(beta=beta, free_steps=free, nudge_steps=nudge, mode="async"), \
        (lr, momentum, wd), info


def laborieux(device, channels, free, nudge):
    mu = laborieux_utils()

    torch.manual_seed(0)
    beta, lr, momentum, wd = 1.0, 0.05, 0.9, 3e-4
    pools = mu.make_pools("mmmm")
    theirs = mu.P_CNN(32, [3, *channels], [3, 3, 3, 3], [1, 1, 1, 1], [10], pools, [1, 1, 1, 0],
                      activation=mu.my_hard_sig, softmax=True).to(device)
    criterion = torch.nn.CrossEntropyLoss(reduction="none").to(device)
    opt = torch.optim.SGD(theirs.parameters(), lr=lr, momentum=momentum, weight_decay=wd)

    train_theirs = laborieux_step(mu, theirs, opt, criterion, free, nudge, beta)

    def test_theirs(x, y):
        neurons = theirs.init_neurons(x.size(0), device)
        neurons = theirs(x, y, neurons, free)
        return torch.argmax(torch.softmax(theirs.synapses[-1](neurons[-1].view(x.size(0), -1)), dim=1), dim=1)

    def make_ours():
        torch.manual_seed(0)
        return ConvHopfield((3, 32, 32), channels, 10, output="ce").to(device)

    info = dict(model=f"P_CNN 3-{'-'.join(map(str, channels))} (paddings 1-1-1-0) + CE readout; "
                      f"ours: ConvHopfield (paddings 1-1-1-1, 4x the readout width) + CE readout",
                sweeps=f"{free} free + {nudge} + {nudge}, sync", beta=beta, published="Laborieux-Axel/Equilibrium-Propagation",
                weights="not shared (different last layer)")
    return (train_theirs, test_theirs), make_ours, dict(beta=beta, free_steps=free, nudge_steps=nudge, mode="sync"), \
        (lr, momentum, wd), info


def measure(name, args, device, data):
    defaults = {"ebl": (60, 20), "laborieux": (250, 25)}[name]
    free, nudge = args.free or defaults[0], args.nudge or defaults[1]
    channels = [int(c) for c in args.channels.split(",")]
    (train_t, test_t), make_ours, rule_kw, opt_kw, info = (ebl if name == "ebl" else laborieux)(device, channels, free, nudge)
    paths = {"theirs": (train_t, test_t)}
    fp32 = make_ours()
    paths["ours_float32"] = ours(fp32, eqprop.rules.EP(variant="centered", **rule_kw), *opt_kw)
    fast = make_ours()
    fast_rule = eqprop.rules.EP(variant="centered", relax_dtype="bfloat16", capture=True, **rule_kw)
    paths["ours_fastest"] = ours(fast, fast_rule, *opt_kw)
    names = list(paths)
    x0, y0 = data[0]
    for _ in range(args.warmup):  # cuDNN autotuning, the captures
        for p in names:
            paths[p][0](x0, y0)
            paths[p][1](x0, y0)
    sync(device)
    times = {p: {"train": [], "test": []} for p in names}
    for i, (x, y) in enumerate(data):
        order = names[i % len(names):] + names[: i % len(names)]
        for kind, k in (("train", 0), ("test", 1)):
            for p in order:
                sync(device)
                t0 = time.perf_counter()
                paths[p][k](x, y)
                sync(device)
                times[p][kind].append(time.perf_counter() - t0)
    med = statistics.median
    if hasattr(make_ours, "diff"):  # same weights and batches: the float32 path should follow theirs
        info["max_abs_weight_diff_ours_float32_vs_theirs"] = make_ours.diff(fp32)
    rec = dict(benchmark="anchor_gpu", anchor=name, **info, batch=args.batch, batches_timed=len(data),
               data="uniform noise, CIFAR-shaped", epoch="391 train + 79 test batches, extrapolated from the medians",
               captured_phases=eqprop.capture.captured_phases(fast_rule.relaxer(fast)))
    for p in names:
        tr, te = med(times[p]["train"]), med(times[p]["test"])
        rec[f"{p}_ms_train"] = round(1e3 * tr, 2)
        rec[f"{p}_ms_test"] = round(1e3 * te, 2)
        rec[f"{p}_s_per_epoch"] = round(TRAIN_BATCHES * tr + TEST_BATCHES * te, 1)
    for p in ("ours_float32", "ours_fastest"):
        pairs = [a / b for a, b in zip(times["theirs"]["train"], times[p]["train"])]
        rec[f"speedup_train_{p}_median_of_pairs"] = round(med(pairs), 2)
        rec[f"speedup_epoch_{p}"] = round(rec["theirs_s_per_epoch"] / rec[f"{p}_s_per_epoch"], 2)
    print(json.dumps({**rec, **context(device)}), flush=True)
    eqprop.capture.clear()
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--anchor", default="both", choices=["ebl", "laborieux", "both"])
    ap.add_argument("--batches", type=int, default=20, help="timed batches per anchor (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels", default="128,256,512,512")
    ap.add_argument("--free", type=int, default=0, help="free sweeps (default: the anchor's, 60 or 250)")
    ap.add_argument("--nudge", type=int, default=0, help="nudged sweeps per phase (default: 20 or 25)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(args.batch, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (args.batch,), generator=g).to(device))
            for _ in range(args.batches)]
    for name in (["ebl", "laborieux"] if args.anchor == "both" else [args.anchor]):
        measure(name, args, device, data)


if __name__ == "__main__":
    main()
