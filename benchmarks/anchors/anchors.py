"""Our EP training step against the two published codes, and the matrix-product floor.

Anchors (their code is cloned into ``benchmarks/anchors/published/``, git-ignored, by
``benchmarks/anchors/fetch.sh``; nothing of it is copied into eqprop):

- ``laborieux``: Laborieux et al. 2021 (github.com/Laborieux-Axel/Equilibrium-Propagation,
  ``P_MLP``): 784-512-10, hard sigmoid, MSE output in the energy, centered EP ("thirdphase"):
  30 free + 10 (+beta) + 10 (-beta) synchronous sweeps, SGD; their per-batch steps of
  ``model_utils.train`` (init_neurons, three ``model(...)`` phases, ``compute_syn_grads``,
  ``optimizer.step``). ``model_utils`` imports torchvision at the top and never uses it for the
  MLP; a stub module stands in for it, as eqprop does not depend on torchvision.
- ``ebl``: rain-neuromorphics/energy-based-learning, DHN-1H of ``papers/fast-drn/dhn.py``:
  784-1024-10 (hard-sigmoid hidden layer, linear output), centered EP, 15 free + 15 + 15
  asynchronous sweeps, gains 0.7, SGD; their per-batch steps of ``training.epoch.Trainer.run``
  (``set_input``, free ``compute_equilibrium``, ``set_target``, ``compute_gradient``,
  ``optimizer.step``), with ``set_input(reset=True)``: every batch starts from zero states in
  both codes (their trainer keeps the last batch's nudged state; ours would warm-start from the
  free one, so the runs would differ for a reason that is not speed). Ours uses a
  ``HopfieldMLP(..., output_activation="linear")``: its output layer is linear (not clamped), as theirs.

Protocol: one process, ``torch.set_num_threads(threads)``; both models start from the same
weights (theirs, copied into ours) and see the same batches (MNIST training images in file
order, or uniform noise with ``--random``); for each batch the two steps run back to back, the
order alternating (A B, B A, ...), each timed alone; the ratio of each pair is kept and the
median reported. After the N batches the largest weight difference between the two models is
reported (same arithmetic up to float32 rounding, so it stays ~1e-6).

The floor: the matrix products alone of the same step, in the same process: ``W_0 x`` once,
every sweep's products (sync: both layers from the old state; async: one layer then the
other), and the contrast's products (``dW_0 = U^T x`` with the state difference ``U``, and one
product over the two stacked phases per further coupling), on preallocated tensors with
``out=``; no activations, no bias adds, no optimizer. Each product is timed in two layouts,
states as rows (B, d) and as columns (d, B) (the layout of eqprop's fused sweeps, in which the
narrow output layer's drive is several times faster on CPU); the floor is the faster of the two
(``ms_floor_by_layout`` has both), so a layout change alone cannot bring ours under the floor.

    python benchmarks/anchors/anchors.py [--anchor laborieux|ebl|both] [--batches 100] [--batch 128]

Prints one JSON line per anchor.
"""
from __future__ import annotations

import argparse
import json
import os
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
from eqprop.models import HopfieldMLP  # noqa: E402



def sgd_step(model, rule, lr: float):
    """One training step of ours: the rule writes .grad, plain SGD applies it (as both anchors do)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        rule.step(model, x, y)
        opt.step()

    return step


def batches(n: int, bs: int, random: bool):
    if random:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(n * bs, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (n * bs,), generator=g)
    else:
        from eqprop.data import load_dataset

        ds = load_dataset("mnist", split="train")
        x = torch.as_tensor(ds.images[: n * bs]).float().reshape(-1, 1, 28, 28)
        y = torch.as_tensor(ds.labels[: n * bs]).long()
        if x.max() > 1.5:
            x = x / 255.0
    return [(x[i * bs:(i + 1) * bs].contiguous(), y[i * bs:(i + 1) * bs].contiguous()) for i in range(n)]


# -- the anchors: (their step, our step, weight difference, floor step) ----------------------------
def laborieux(lr: float, beta: float):
    mu = laborieux_utils()

    torch.manual_seed(0)
    theirs = mu.P_MLP([784, 512, 10], activation=mu.hard_sigmoid)
    criterion = torch.nn.MSELoss(reduction="none")
    opt_t = torch.optim.SGD(theirs.parameters(), lr=lr)
    T1, T2 = 30, 10

    step_theirs = laborieux_step(mu, theirs, opt_t, criterion, T1, T2, beta)

    ours = HopfieldMLP([784, 512, 10])
    with torch.no_grad():
        for mine, their in zip(ours.layers, theirs.synapses):
            mine.weight.copy_(their.weight)
            mine.bias.copy_(their.bias)
    step_ours = sgd_step(ours, eqprop.rules.EP(variant="centered", beta=beta, free_steps=T1, nudge_steps=T2, mode="sync"), lr)

    def diff():
        return max(float((m.weight - t.weight).abs().max()) for m, t in zip(ours.layers, theirs.synapses))

    return step_theirs, step_ours, diff, {lay: floor([784, 512, 10], T1 + 2 * T2, "sync", lay) for lay in LAYOUTS}, dict(
        model="784-512-10", sweeps="30 free + 10 + 10 nudged, sync", beta=beta, lr=lr,
        published="Laborieux-Axel/Equilibrium-Propagation")


def ebl(lr: float, beta: float):
    root = need("energy-based-learning")
    sys.path.insert(0, str(root))
    from model.function.cost import SquaredError
    from model.function.network import Network
    from model.hopfield.minimizer import FixedPointMinimizer
    from model.hopfield.network import DeepHopfieldEnergy
    from training.sgd import AugmentedFunction, EquilibriumProp

    torch.manual_seed(0)
    sweeps = 15
    energy_fn = DeepHopfieldEnergy([(1, 28, 28), (1024,), (10,)], [0.7, 0.7])
    energy_fn.set_device("cpu")
    cost_fn = SquaredError(energy_fn.layers()[-1])
    network = Network(energy_fn)
    params, layers = energy_fn.params(), energy_fn.layers()
    augmented = AugmentedFunction(energy_fn, cost_fn)
    train_min = FixedPointMinimizer(augmented, network.free_layers())
    estimator = EquilibriumProp(params, layers, augmented, cost_fn, train_min)
    estimator.nudging, estimator.variant = beta, "centered"
    train_min.num_iterations, train_min.mode = sweeps, "asynchronous"
    free_min = FixedPointMinimizer(energy_fn, network.free_layers())
    free_min.num_iterations, free_min.mode = sweeps, "asynchronous"
    all_params = params + cost_fn.params()
    # their Optimizer (training/monitor.py) is torch.optim.SGD over the param tensors; monitor.py
    # imports tensorboard, so the same SGD is built here
    opt_t = torch.optim.SGD([p.state for p in all_params], lr=lr)

    def step_theirs(x, y):
        network.set_input(x, reset=True)
        free_min.compute_equilibrium()
        cost_fn.set_target(y)
        grads = estimator.compute_gradient()
        for p, g in zip(all_params, grads):
            p.state.grad = g
        opt_t.step()

    b1, b2, w01, w12 = (p.state for p in params)
    ours = HopfieldMLP([784, 1024, 10], output_activation="linear")

    def copy_in():
        with torch.no_grad():
            ours.layers[0].weight.copy_(w01.reshape(784, 1024).T)
            ours.layers[0].bias.copy_(b1)
            ours.layers[1].weight.copy_(w12.T)
            ours.layers[1].bias.copy_(b2)

    copy_in()
    step_ours = sgd_step(ours, eqprop.rules.EP(variant="centered", beta=beta, free_steps=sweeps, nudge_steps=sweeps,
                                               mode="async"), lr)

    def diff():
        return max(float((ours.layers[0].weight - w01.reshape(784, 1024).T).abs().max()),
                   float((ours.layers[1].weight - w12.T).abs().max()),
                   float((ours.layers[0].bias - b1).abs().max()), float((ours.layers[1].bias - b2).abs().max()))

    return step_theirs, step_ours, diff, {lay: floor([784, 1024, 10], 3 * sweeps, "async", lay) for lay in LAYOUTS}, dict(
        model="DHN-1H 784-1024-10 (linear output)", sweeps="15 free + 15 + 15 nudged, async", beta=beta, lr=lr,
        published="rain-neuromorphics/energy-based-learning")


LAYOUTS = ("rows", "columns")


def floor(sizes, sweeps: int, mode: str, layout: str = "rows"):
    """The matrix products of one step alone (see the module docstring), one hidden layer.

    ``layout``: "rows" keeps each state as (B, d) (the products as ``torch.nn.Linear`` makes
    them); "columns" keeps it as (d, B), as eqprop's fused sweeps do, where the narrow output's
    drive ``W_1 h`` is a (d_2, d_1) x (d_1, B) product, faster on CPU than (B, d_1) x (d_1, d_2).
    The same products either way; the floor reported is the faster of the two.
    """
    d0, d1, d2 = sizes

    def make(bs):
        t = dict(x=torch.rand(bs, d0), w0=torch.rand(d1, d0), w1=torch.rand(d2, d1),
                 u=torch.rand(bs, d1), a=torch.rand(2 * bs, d2), lo=torch.rand(2 * bs, d1),
                 g0=torch.empty(d1, d0), g1=torch.empty(d2, d1))
        if layout == "rows":
            t.update(h=torch.rand(bs, d1), o=torch.rand(bs, d2), ih=torch.empty(bs, d1), fo=torch.empty(bs, d1),
                     io=torch.empty(bs, d2))
        else:
            t.update(h=torch.rand(d1, bs), o=torch.rand(d2, bs), ih=torch.empty(d1, bs), fo=torch.empty(d1, bs),
                     io=torch.empty(d2, bs), u=torch.rand(d1, bs), a=torch.rand(d2, 2 * bs))
        return t

    cache = {}

    def step_rows(x, y):
        t = cache.get(x.shape[0]) or cache.setdefault(x.shape[0], make(x.shape[0]))
        torch.mm(t["x"], t["w0"].T, out=t["ih"])          # the input drive, once per batch
        for _ in range(sweeps):
            torch.mm(t["o"], t["w1"], out=t["fo"])        # feedback into the hidden layer
            torch.mm(t["h"], t["w1"].T, out=t["io"])      # drive of the output layer
        torch.mm(t["u"].T, t["x"], out=t["g0"])           # dW_0 from the state difference
        torch.mm(t["a"].T, t["lo"], out=t["g1"])          # dW_1 over the stacked phases

    def step_columns(x, y):
        t = cache.get(x.shape[0]) or cache.setdefault(x.shape[0], make(x.shape[0]))
        torch.mm(t["w0"], t["x"].T, out=t["ih"])          # the input drive, once per batch
        for _ in range(sweeps):
            torch.mm(t["w1"].T, t["o"], out=t["fo"])      # feedback into the hidden layer
            torch.mm(t["w1"], t["h"], out=t["io"])        # drive of the output layer
        torch.mm(t["u"], t["x"], out=t["g0"])             # dW_0 from the state difference
        torch.mm(t["a"], t["lo"], out=t["g1"])            # dW_1 over the stacked phases

    return step_rows if layout == "rows" else step_columns


def measure(name, args, data):
    lr, beta = (0.05, 0.1) if name == "laborieux" else (0.05, 0.2)
    step_theirs, step_ours, diff, floors, info = (laborieux if name == "laborieux" else ebl)(lr, beta)
    x0, y0 = data[0]
    for f in floors.values():
        f(x0, y0)
    t_th, t_ou, t_fl = [], [], {lay: [] for lay in floors}
    for i, (x, y) in enumerate(data):
        order = [("t", step_theirs), ("o", step_ours)]
        if i % 2:
            order.reverse()
        for tag, f in order:
            t0 = time.perf_counter()
            f(x, y)
            (t_th if tag == "t" else t_ou).append(time.perf_counter() - t0)
        for lay, f in (floors.items() if i % 2 else reversed(floors.items())):
            t0 = time.perf_counter()
            f(x, y)
            t_fl[lay].append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(t_th, t_ou)]
    med = statistics.median
    rec = dict(benchmark="anchor", anchor=name, **info, batch=args.batch, batches=len(data),
               data="uniform noise" if args.random else "MNIST train, first batches in file order",
               ms_theirs_median=round(1e3 * med(t_th), 3), ms_ours_median=round(1e3 * med(t_ou), 3),
               ms_floor_median=round(1e3 * min(med(v) for v in t_fl.values()), 3),
               ms_floor_by_layout={lay: round(1e3 * med(v), 3) for lay, v in t_fl.items()},
               speedup_median_of_pairs=round(med(ratios), 2),
               speedup_pairs_p10_p90=[round(sorted(ratios)[len(ratios) // 10], 2), round(sorted(ratios)[-max(1, len(ratios) // 10)], 2)],
               ours_over_floor=round(med(t_ou) / min(med(v) for v in t_fl.values()), 2),
               max_abs_weight_diff=diff(), **context(torch.device("cpu")))
    print(json.dumps(rec), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchor", default="both", choices=["laborieux", "ebl", "both"])
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--random", action="store_true", help="uniform-noise images instead of MNIST")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    data = batches(args.batches, args.batch, args.random)
    for name in (["laborieux", "ebl"] if args.anchor == "both" else [args.anchor]):
        measure(name, args, data)


if __name__ == "__main__":
    main()
