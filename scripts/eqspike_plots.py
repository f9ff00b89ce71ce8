"""EqSpike figures for docs/eqspike.md (issue 11, part 3).

1. docs/eqspike_raster.png: the spikes of one MNIST test sample in the free and the nudged phase
   (of the first ``--samples``, the one whose output state the nudge moves most)
   (hidden neurons, most active first, and the 10 output neurons; the label's neuron marked).
2. docs/eqspike_stdp.png: the STDP-like window. Over the nudged phases of ``--samples`` test samples,
   every presynaptic (hidden) spike at ``t_pre`` updates its synapse to each output neuron ``i`` by
   ``ds_i(t_pre) - dt W_ij (1 - rho_j)`` (the rule of eqprop.rules.eqspike); the mean update per
   spike pair is drawn against ``t_post - t_pre``, ``t_post`` the postsynaptic spike nearest to
   ``t_pre``.
3. docs/eqspike_stdp.json: the window's numbers.

    PYTHONPATH=src python scripts/eqspike_plots.py --checkpoint runs/mnist_eqspike/checkpoint.pt

Without ``--checkpoint`` the network is untrained (random weights). The model's settings (``dt``,
sizes) and the rule's phases come from the checkpoint's config.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from eqprop.data import load_dataset  # noqa: E402
from eqprop.models.base import one_hot_targets  # noqa: E402
from eqprop.models.spiking import SpikingHopfieldMLP  # noqa: E402
from eqprop.training.checkpoint import load_checkpoint  # noqa: E402


def build(args):
    cfg = {"model": {"hidden": [500], "dt": 0.1}, "rule": {"beta": 0.5, "free_steps": 60, "nudge_steps": 30}}
    state = None
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint, map_location="cpu")
        cfg, state = ckpt.get("config") or cfg, ckpt["model"]
    m = cfg["model"]
    kw = {k: m[k] for k in ("dt", "leak", "reset", "stochastic") if k in m}
    model = SpikingHopfieldMLP([784, *m.get("hidden", [500]), 10], **kw)
    if state is not None:
        model.load_state_dict(state)
    r = cfg["rule"]
    return model, float(r.get("beta", 0.5)), int(r.get("free_steps", 60)), int(r.get("nudge_steps", 30))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--samples", type=int, default=200, help="test samples for the STDP window")
    p.add_argument("--out", default="docs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    model, beta, tf, tn = build(args)
    data = load_dataset("mnist", "test")
    x = data.images[:args.samples].flatten(1).float() / 255.0
    y = data.labels[:args.samples]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    st = model.init_spike_state(x)
    free = model.run_phase(x, st, tf, "spikes", record=True)
    y1h = one_hot_targets(y, 10, free.state.s[-1])
    nudged = model.run_phase(x, free.state, tn, "spikes", beta, y1h, record=True)
    rec = free.record + nudged.record

    # -- 1. raster of one sample: the one whose output moves most under the nudge ------------------
    n0 = int((nudged.state.s[-1] - free.state.s[-1]).abs().sum(-1).argmax())
    zh = torch.stack([z[1][n0] for z, _ in rec])  # (T, 500)
    zo = torch.stack([z[2][n0] for z, _ in rec])  # (T, 10)
    order = zh.sum(0).argsort(descending=True)[:100]
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for ax, z, title in ((axes[0], zh[:, order], "hidden (100 most active of 500)"), (axes[1], zo, "output")):
        t, i = torch.nonzero(z, as_tuple=True)
        ax.scatter(t.numpy(), i.numpy(), s=2, marker="|", color="k")
        ax.axvline(tf - 0.5, color="tab:red", lw=1)
        ax.set_ylabel(title)
    lab = int(y[n0])
    axes[1].set_ylim(-0.5, 9.5)
    axes[1].set_yticks(range(10))
    axes[1].axhspan(lab - 0.5, lab + 0.5, color="tab:green", alpha=0.2, label=f"label {lab}")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[0].set_title(f"EqSpike spike raster, MNIST test sample {n0} (of the first {args.samples}, the one whose output the nudge moves most)\nfree phase ({tf} steps) | nudged phase "
                      f"({tn} steps, beta={beta})", fontsize=10)
    axes[1].set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(out / "eqspike_raster.png", dpi=120)
    plt.close(fig)

    # -- 2. STDP window: hidden (pre) -> output (post), nudged phase ------------------------------
    w = model.layers[1].weight.detach()  # (10, 500): W_ij, i output, j hidden
    prev = free.state.s
    zpre, zpost, dpost, rpre = [], [], [], []
    for z, s in nudged.record:
        zpre.append(z[1])
        zpost.append(z[2])
        dpost.append(s[1] - prev[1])
        rpre.append(prev[0])
        prev = s
    zpre, zpost, dpost, rpre = (torch.stack(a) for a in (zpre, zpost, dpost, rpre))  # (T, B, d)
    T = zpre.shape[0]
    # signed offset from each step to the nearest postsynaptic spike (inf where there is none)
    steps = torch.arange(T).view(T, 1, 1, 1)
    spike_t = torch.where(zpost.bool().unsqueeze(0), torch.arange(T).view(1, T, 1, 1).float(), torch.tensor(float("inf")))
    off = spike_t - steps  # (T_pre, T_post, B, 10)
    nearest = off.gather(1, off.abs().argmin(1, keepdim=True)).squeeze(1)  # (T, B, 10)
    bins = sorted({int(v) for v in nearest[torch.isfinite(nearest)].unique().tolist() if abs(v) <= 15})
    mean, pairs = [], []
    npre = zpre.sum(-1)  # (T, B) presynaptic spikes per step
    kick = model.dt * torch.einsum("tbj,ij->tbi", zpre * (1 - rpre), w)  # sum_j z_j dt W_ij (1 - rho_j)
    upd = npre.unsqueeze(-1) * dpost - kick  # (T, B, 10): summed update of the pre spikes at (t, b) onto i
    target = y1h.unsqueeze(0).expand_as(upd)  # the label's output neuron is pushed up, the others down
    series = {}
    for name, sel in (("all", torch.ones_like(target)), ("target (nudged up)", target), ("others (nudged down)", 1 - target)):
        mean, pairs = [], []
        for d in bins:
            mask = (nearest == d).float() * sel
            n = float((mask * npre.unsqueeze(-1)).sum())
            pairs.append(n)
            mean.append(float((mask * upd).sum()) / max(n, 1.0))
        series[name] = {"mean_update": mean, "pairs": pairs}
    fig, ax = plt.subplots(figsize=(6.5, 4))
    width = 0.27
    for k, (name, color) in enumerate((("all", "k"), ("target (nudged up)", "tab:blue"), ("others (nudged down)", "tab:orange"))):
        ax.bar([b + (k - 1) * width for b in bins], series[name]["mean_update"], width=width, color=color, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.legend(fontsize=8)
    ax.set_xlabel("t_post - t_pre (time steps; nearest postsynaptic spike)")
    ax.set_ylabel("mean update per pre spike, dW_ij")
    ax.set_title(f"EqSpike STDP-like window (hidden -> output, nudged phase,\n{args.samples} MNIST test samples, "
                 f"dt={model.dt}, beta={beta})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "eqspike_stdp.png", dpi=120)
    plt.close(fig)
    mean = series["all"]["mean_update"]
    (out / "eqspike_stdp.json").write_text(json.dumps(
        {"checkpoint": args.checkpoint, "samples": args.samples, "dt": model.dt, "beta": beta,
         "free_steps": tf, "nudge_steps": tn, "raster_sample": n0, "dt_post_minus_pre": bins, "series": series}, indent=1))
    print(json.dumps({"raster_sample": n0, "raster": str(out / "eqspike_raster.png"), "stdp": str(out / "eqspike_stdp.png"),
                      "window": dict(zip(bins, [round(m, 6) for m in mean]))}))


if __name__ == "__main__":
    main()
