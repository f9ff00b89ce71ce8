"""The ``eqprop`` command: parse, build, call. Every name is resolved here and nowhere above.

    eqprop train [CONFIG.yaml] [key=value ...]
    eqprop gradcheck [CONFIG.yaml] [key=value ...] [--json] [--rules a,b] [--batch N]
    eqprop gdu [CONFIG.yaml] [key=value ...] [--beta B] [--steps K] [--out DIR]
    eqprop compare [GRID.yaml] [key=value ...]
    eqprop data list | eqprop data download NAME [--root DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

SEQUENCE_MODELS = ("hssm",)  # read out by a forward pass; checked against BPTT, trained by rhel/bptt


def _split_config_args(items: list[str]) -> tuple[str | None, list[str]]:
    """The first argument is a config file unless it is a key=value override."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def _config(args):
    from .config import load_config

    path, overrides = _split_config_args(args.config)
    return load_config(path, overrides)


def cmd_train(args) -> int:
    from .training import train

    cfg = _config(args)
    print(f"[eqprop] training {cfg.model} on {cfg.dataset} with {cfg.rule} -> {cfg.out_dir()}", flush=True)
    s = train(cfg)
    print(
        f"[eqprop] done: {s['dataset']} {s['rule']} {s['epochs']} epochs, test accuracy "
        f"{100 * s['test_acc']:.2f}% (best {100 * s['best_test_acc']:.2f}%), train time "
        f"{s['train_time_s']:.0f} s; results in {s['out']}/ (summary.json, metrics.jsonl, curves.png, checkpoint.pt)"
    )
    return 0


def _batch(cfg, n: int, checkpoint: str | None = None):
    """A model built from ``cfg`` (weights from ``checkpoint`` if given) and ``n`` test samples."""
    from .data import load_dataset
    from .data.transforms import to_float
    from .training.builders import build_model

    ds = load_dataset(cfg.dataset, split="test", root=cfg.data_root).subset(n)
    x = to_float(ds.images)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tuple(x.shape[1:]), ds.num_classes)
    if checkpoint:
        from .training import load_checkpoint

        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    return model, x, ds.labels


def cmd_gradcheck(args) -> int:
    from .diagnostics import compare_gradients
    from .rules import make_rule

    cfg = _config(args)
    sequence = cfg.model in SEQUENCE_MODELS
    rules = args.rules.split(",") if args.rules else None  # None: every rule that applies to the model
    args.reference = args.reference or ("bptt" if sequence else "ffebm-implicit" if cfg.model == "ffebm" else "rbp")
    for r in (rules or []) + [args.reference]:
        make_rule(r)  # unknown names fail here, listing the valid ones
    model, x, y = _batch(cfg, args.batch, args.checkpoint)
    settings = dict(beta=cfg.beta, free_steps=args.steps, nudge_steps=args.steps, mode=cfg.mode,
                    tol=args.tol, adjoint_steps=args.steps, eps=cfg.eps, chunk=cfg.chunk,
                    N=cfg.N, radius=cfg.radius, batched=cfg.batched, lr=cfg.cep_lr)
    res = compare_gradients(model, x, y, rules=rules, reference=args.reference, **settings)
    if args.json:
        print(res.to_json())
    elif sequence:
        print(f"model {cfg.model} ({cfg.blocks} blocks of {cfg.hru} HRUs, d_model={cfg.d_model}, pool={cfg.pool}), "
              f"{args.batch} {cfg.dataset} test sequences of {tuple(x.shape[1:])}, eps={cfg.eps}; parameters named "
              f"blocks.<i>.* belong to block i")
        print(res.table())
    else:
        print(f"model {cfg.model}{[*cfg.hidden]} ({cfg.output} output), {args.batch} {cfg.dataset} test samples, "
              f"beta={cfg.beta}, relaxations of up to {args.steps} sweeps (tol {args.tol})")
        print(res.table())
    return 0


def cmd_gdu(args) -> int:
    from .diagnostics import gdu_check

    cfg = _config(args)
    model, x, y = _batch(cfg, args.batch, args.checkpoint)
    res = gdu_check(model, x, y, beta=args.beta, steps=args.steps)
    print(res.table())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res.plot(out / "gdu.png")
    (out / "gdu.json").write_text(json.dumps(res.to_dict(), indent=2))
    print(f"min cosine {min(res.cosine):.6f}, max relative error {max(res.rel_error):.3e}; "
          f"plot and numbers in {out}/gdu.png, {out}/gdu.json")
    return 0


def cmd_compare(args) -> int:
    from .training.compare import load_compare_config, run_compare

    path, overrides = _split_config_args(args.config)
    cfg = load_compare_config(path, overrides)
    n = len(cfg.rules) * len(cfg.datasets) * len(cfg.seeds)
    print(f"[eqprop] compare: {len(cfg.rules)} rules x {len(cfg.datasets)} datasets x {len(cfg.seeds)} seeds "
          f"= {n} runs -> {cfg.out}", flush=True)
    run_compare(cfg)
    print((Path(cfg.out) / "results.md").read_text())
    print(f"[eqprop] table, JSON and plot in {cfg.out}/results.md, results.json, results.png")
    return 0


def cmd_data(args) -> int:
    from .data import DatasetNotFoundError, available_datasets, load_dataset

    if args.action == "list":
        for name in available_datasets():
            for split in ("train", "test"):
                try:
                    ds = load_dataset(name, split=split, root=args.root)
                    print(f"{name:<14} {split:<5} {len(ds):>6} samples, shape {tuple(ds.input_shape)}, {ds.num_classes} classes")
                except DatasetNotFoundError as e:
                    print(f"{name:<14} {split:<5} missing: {str(e).splitlines()[0]}")
                    break
        return 0
    from .data.download import download

    if not args.name:
        raise ValueError("eqprop data download needs a dataset name: " + ", ".join(available_datasets()))
    download(args.name, args.root or "data")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eqprop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a config (YAML) and key=value overrides")
    t.add_argument("config", nargs="*", help="[CONFIG.yaml] [key=value ...]")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("gradcheck", help="every rule's gradient against the exact one (float64)")
    g.add_argument("config", nargs="*", help="[CONFIG.yaml] [key=value ...]")
    g.add_argument("--rules", help="comma-separated rule names (default: all ten; rhel for sequence models)")
    g.add_argument("--reference", default=None,
                   help="the exact gradient: rbp or bptt (default: rbp; bptt for sequence models)")
    g.add_argument("--batch", type=int, default=16, help="test samples in the batch (default 16)")
    g.add_argument("--steps", type=int, default=1000, help="sweep budget of every relaxation (default 1000)")
    g.add_argument("--tol", type=float, default=1e-12, help="stop relaxations that change less than this")
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g.add_argument("--checkpoint", help="take the weights from a run's checkpoint.pt (default: fresh init)")
    g.set_defaults(func=cmd_gradcheck)

    d = sub.add_parser("gdu", help="GDU check: per-step EP updates against per-step BPTT gradients")
    d.add_argument("config", nargs="*", help="[CONFIG.yaml] [key=value ...]")
    d.add_argument("--beta", type=float, default=1e-4)
    d.add_argument("--steps", type=int, default=20, help="nudged steps K (default 20)")
    d.add_argument("--batch", type=int, default=16)
    d.add_argument("--out", default="runs/gdu", help="folder for gdu.png and gdu.json")
    d.add_argument("--checkpoint", help="take the weights from a run's checkpoint.pt (default: fresh init)")
    d.set_defaults(func=cmd_gdu)

    c = sub.add_parser("compare", help="a grid of rules x datasets x seeds (resumable), as a table and plot")
    c.add_argument("config", nargs="*", help="[GRID.yaml] [key=value ...] (grid keys or base config keys)")
    c.set_defaults(func=cmd_compare)

    da = sub.add_parser("data", help="list the datasets found, or download one (needs internet)")
    da.add_argument("action", choices=["list", "download"])
    da.add_argument("name", nargs="?")
    da.add_argument("--root", default=None, help="data root (default: $EQPROP_DATA, ./data, ../shared/data)")
    da.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .data import DatasetNotFoundError
    from .training import DivergenceError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatasetNotFoundError, DivergenceError, ValueError) as e:
        if os.environ.get("EQPROP_DEBUG"):
            raise
        print(f"eqprop: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eqprop: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
