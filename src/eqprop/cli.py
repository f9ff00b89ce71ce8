"""The ``eqprop`` command: parse, build, call. Every name is resolved here and nowhere above.

    eqprop train [CONFIG.yaml] [section.key=value ...]
    eqprop gradcheck [CONFIG.yaml] [section.key=value ...] [--json] [--rules a,b] [--batch N]
    eqprop gdu [CONFIG.yaml] [section.key=value ...] [--beta B] [--steps K] [--out DIR]
    eqprop compare [GRID.yaml] [key=value ...]
    eqprop continual CONFIG.yaml [section.key=value ...]
    eqprop data list | eqprop data download NAME [--root DIR]
    eqprop config show [CONFIG.yaml] [overrides] | eqprop config convert OLD.yaml
    eqprop list [models|rules|datasets|optimizers]
    eqprop ssl CONFIG.yaml [section.key=value ...]   (self-supervised pretraining + linear probe)

Overrides address a section: ``rule.beta=0.1``, ``model.hidden=[256,128]``, ``run.epochs=3``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch


def _split_config_args(items: list[str]) -> tuple[str | None, list[str]]:
    """The first argument is a config file unless it is a key=value override."""
    if items and "=" not in items[0]:
        from .packaged import find_config  # a bare name is a config shipped with eqprop

        return find_config(items[0]), items[1:]
    return None, items


def _config(args):
    from .config import load_config

    path, overrides = _split_config_args(args.config)
    return load_config(path, overrides)


def cmd_train(args) -> int:
    from .training import Trainer

    cfg = _config(args)
    if cfg.run.get("nproc", 1) > 1 and "WORLD_SIZE" not in os.environ:  # data-parallel: start torchrun
        from .training.distributed import launch_torchrun

        return launch_torchrun(cfg.run["nproc"], ["train", *args.config])
    print(f"[eqprop] training {cfg.model['name']} on {cfg.data['name']} with {cfg.rule['name']} -> {cfg.out_dir()}",
          flush=True)
    s = Trainer.from_config(cfg).fit()
    acc = "n/a" if s["test_acc"] is None else f"{100 * s['test_acc']:.2f}% (best {100 * s['best_test_acc']:.2f}%)"
    print(f"[eqprop] done: {s['dataset']} {s['rule']} {s['epochs']} epochs, test accuracy {acc}, train time "
          f"{s['train_time_s']:.0f} s; results in {s['out']}/ (summary.json, metrics.jsonl, curves.png, checkpoint.pt)")
    return 0


def _batch(cfg, n: int, checkpoint: str | None = None):
    """A model built from ``cfg`` (weights from ``checkpoint`` if given) and ``n`` test samples."""
    from .config import entry
    from .data import Dataset
    from .training.data import as_tensors, load_split, num_classes_of

    if n < 1:
        raise ValueError(f"--batch must be >= 1, got {n}")
    test = load_split(cfg.data, "test")  # the first n test samples (the training split is not read)
    if isinstance(test, Dataset):
        num_classes, test = test.num_classes, test.subset(n)
        x, y = as_tensors(test)
    else:
        x, y = (t[:n] for t in as_tensors(test))
        num_classes = num_classes_of(y)
    torch.manual_seed(cfg.run["seed"])
    model = entry("model", cfg.model).build(cfg.settings("model"), input_shape=tuple(x.shape[1:]), num_outputs=num_classes)
    if checkpoint:
        from .training import load_checkpoint

        state = load_checkpoint(checkpoint)["model"]
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        theirs = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
        diff = [f"{k} {theirs.get(k)} (this config: {mine.get(k)})" for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            diff = diff or [str(e).splitlines()[0]]
        if diff:
            raise ValueError(f"--checkpoint {checkpoint} was made for another model: {'; '.join(diff[:5])} "
                             f"(give the run's own config.yaml)")
    return model, x, y


def _reference_for(model) -> str:
    if getattr(model, "is_sequence_model", False):
        return "bptt"
    if not hasattr(model, "layer_update"):
        return "ffebm-implicit"
    return "rbp"


def cmd_gradcheck(args) -> int:
    from .diagnostics import compare_gradients
    from .rules import make_rule

    cfg = _config(args)
    rules = args.rules.split(",") if args.rules else None  # None: every rule that applies to the model
    for r in rules or []:
        make_rule(r)  # unknown names fail here, listing the valid ones
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if not args.tol >= 0:
        raise ValueError(f"--tol must be >= 0, got {args.tol}")
    model, x, y = _batch(cfg, args.batch, args.checkpoint)
    reference = args.reference or _reference_for(model)
    make_rule(reference)
    # the config's rule settings (beta, mode, ...) serve every rule that takes them; the budget is
    # the converged one of a gradient check
    settings = {k: v for k, v in cfg.settings("rule").items() if k not in ("variant", "warm_start", "relax_dtype")}
    settings.update(free_steps=args.steps, nudge_steps=args.steps, tol=args.tol, adjoint_steps=args.steps)
    res = compare_gradients(model, x, y, rules=rules, reference=reference, **settings)
    if args.json:
        print(res.to_json())
    else:
        print(f"model {cfg.model['name']} ({', '.join(f'{k}={v}' for k, v in cfg.settings('model').items())}), "
              f"{args.batch} {cfg.data['name']} test samples, relaxations of up to {args.steps} sweeps (tol {args.tol})")
        print(res.table())
    return 0


def cmd_gdu(args) -> int:
    from .diagnostics import gdu_check

    cfg = _config(args)
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if not (args.beta > 0 and args.beta < float("inf")):
        raise ValueError(f"--beta (the GDU nudge) must be > 0 and finite, got {args.beta}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out!r} is a file; give a folder")
    model, x, y = _batch(cfg, args.batch, args.checkpoint)
    res = gdu_check(model, x, y, beta=args.beta, steps=args.steps)
    print(res.table())
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
    n_rules = len({label for d in cfg.datasets for label, _, _ in cfg.rule_specs(d)})
    print(f"[eqprop] compare: {n_rules} rules x {len(cfg.datasets)} datasets x {len(cfg.seeds)} seeds "
          f"= {len(cfg.cells())} runs -> {cfg.out}", flush=True)
    run_compare(cfg)
    print((Path(cfg.out) / "results.md").read_text())
    print(f"[eqprop] table, JSON and plot in {cfg.out}/results.md, results.json, results.png")
    return 0


def cmd_tune(args) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        from .registry import ConfigError

        raise ConfigError("eqprop tune needs Optuna: pip install 'eqprop[tune]' (or pip install optuna)") from None
    from .training.tune import load_tune_config, run_tune

    path, overrides = _split_config_args(args.config)
    cfg = load_tune_config(path, overrides)
    studies = cfg.studies()
    print(f"[eqprop] tune: {len(studies)} studies ({', '.join(f'{d}/{r}' for d, r, _ in studies)}) x "
          f"{cfg.trials} trials, scored on {cfg.validation} held-out training samples; storage {cfg.storage_url}",
          flush=True)
    run_tune(cfg)
    print((cfg.out / "tuned.md").read_text())
    print(f"[eqprop] best settings in {cfg.out}/tuned.yaml (a grid reads it as  rules: {cfg.out}/tuned.yaml)")
    return 0


def cmd_continual(args) -> int:
    from .continual import load_continual_config, run_continual

    path, overrides = _split_config_args(args.config)
    cfg = load_continual_config(path, overrides)
    print(f"[eqprop] continual: {cfg.stream.name} with {cfg.method.name} -> {cfg.out_dir()}", flush=True)
    r = run_continual(cfg)
    extra = "" if r["backward_transfer"] is None else \
        f", backward transfer {100 * r['backward_transfer']:.2f}, forgetting {100 * r['forgetting']:.2f} points"
    print(f"[eqprop] done: mean accuracy after the last task {100 * r['mean_accuracy']:.2f}% ("
          + ", ".join(f"{n} {100 * a:.2f}%" for n, a in zip(r["eval_sets"], r["final_accuracies"]))
          + f"){extra}; train time {r['train_time_s']:.0f} s; {cfg.out_dir()}/metrics.json, heatmap.png, curves.png")
    return 0


def cmd_data(args) -> int:
    from .data import available_datasets, dataset_status

    if args.action == "list":  # one corrupt or missing dataset does not stop the others from being listed
        for row in dataset_status(args.root):
            print(f"{row.name:<14} {row.split:<5} {row.message}")
        return 0
    from .data.download import download

    if not args.name:
        raise ValueError("eqprop data download needs a dataset name: " + ", ".join(available_datasets()))
    print(f"[eqprop] {args.name} is in {download(args.name, args.root)}")
    return 0


def cmd_config(args) -> int:
    import yaml

    from .config import convert_flat, read_yaml

    if args.action == "convert":
        if not args.config:
            raise ValueError("eqprop config convert needs the old flat YAML file")
        print(yaml.safe_dump(convert_flat(read_yaml(args.config[0])), sort_keys=False), end="")
        return 0
    print(yaml.safe_dump(_config(args).to_dict(), sort_keys=False), end="")
    return 0


def cmd_list(args) -> int:
    from .config import _registries

    regs = _registries()
    kinds = {"models": "model", "rules": "rule", "datasets": "data", "optimizers": "optim"}
    for kind in ([args.kind] if args.kind else list(kinds)):
        reg = regs[kinds[kind]]
        print(f"{kind}:")
        for name in reg.names():
            settings = ", ".join(f"{k}={'(required)' if s.required else repr(s.default)}"
                                 for k, s in reg.get(name).settings().items())
            print(f"  {name:<18} {settings}")
    return 0


def cmd_ssl(args) -> int:
    from .ssl.trainer import run_ssl

    path, overrides = _split_config_args(args.config)
    summary = run_ssl(path, overrides)
    print(json.dumps({"final": summary["final"], "train_seconds": summary["train_seconds"]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="eqprop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"eqprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a config (YAML) and section.key=value overrides")
    t.add_argument("config", nargs="*", help="[CONFIG.yaml] [section.key=value ...]")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("gradcheck", help="every rule's gradient against the exact one (float64)")
    g.add_argument("config", nargs="*", help="[CONFIG.yaml] [section.key=value ...]")
    g.add_argument("--rules", help="comma-separated rule names (default: every rule that applies to the model)")
    g.add_argument("--reference", default=None,
                   help="the exact gradient: rbp, bptt or ffebm-implicit (default: the one for the model)")
    g.add_argument("--batch", type=int, default=16, help="test samples in the batch (default 16)")
    g.add_argument("--steps", type=int, default=1000, help="sweep budget of every relaxation (default 1000)")
    g.add_argument("--tol", type=float, default=1e-12, help="stop relaxations that change less than this")
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g.add_argument("--checkpoint", help="take the weights from a run's checkpoint.pt (default: fresh init)")
    g.set_defaults(func=cmd_gradcheck)

    d = sub.add_parser("gdu", help="GDU check: per-step EP updates against per-step BPTT gradients")
    d.add_argument("config", nargs="*", help="[CONFIG.yaml] [section.key=value ...]")
    d.add_argument("--beta", type=float, default=1e-4)
    d.add_argument("--steps", type=int, default=20, help="nudged steps K (default 20)")
    d.add_argument("--batch", type=int, default=16)
    d.add_argument("--out", default="runs/gdu", help="folder for gdu.png and gdu.json")
    d.add_argument("--checkpoint", help="take the weights from a run's checkpoint.pt (default: fresh init)")
    d.set_defaults(func=cmd_gdu)

    c = sub.add_parser("compare", help="a grid of rules x datasets x seeds (resumable), as a table and plot")
    c.add_argument("config", nargs="*", help="[GRID.yaml] [key=value ...] (grid keys or section.key base settings)")
    c.set_defaults(func=cmd_compare)

    tu = sub.add_parser("tune", help="tune each rule's settings on a validation split (Optuna; resumable, shared by workers)")
    tu.add_argument("config", nargs="*", help="[TUNE.yaml] [key=value ...] (tune keys or section.key base settings)")
    tu.set_defaults(func=cmd_tune)

    cl = sub.add_parser("continual", help="train a task stream (continual learning), resumable between tasks")
    cl.add_argument("config", nargs="*", help="CONFIG.yaml [section.key=value ...] (sections stream, model, method, optim, run)")
    cl.set_defaults(func=cmd_continual)

    da = sub.add_parser("data", help="list the datasets found, or download one (needs internet)")
    da.add_argument("action", choices=["list", "download"])
    da.add_argument("name", nargs="?")
    da.add_argument("--root", default=None, help="data root (default: $EQPROP_DATA, else ./data and the per-user folder)")
    da.set_defaults(func=cmd_data)

    co = sub.add_parser("config", help="show a resolved config, or convert an eqprop-0.1 flat config")
    co.add_argument("action", choices=["show", "convert"])
    co.add_argument("config", nargs="*", help="[CONFIG.yaml] [section.key=value ...]")
    co.set_defaults(func=cmd_config)

    ss = sub.add_parser("ssl", help="non-contrastive SSL (BYOL, DirectPred, DirectCopy, IsoLoss) + linear probe")
    ss.add_argument("config", nargs="*", help="[CONFIG.yaml] [section.key=value ...]")
    ss.set_defaults(func=cmd_ssl)

    li = sub.add_parser("list", help="the registered models, rules, datasets and optimizers with their settings")
    li.add_argument("kind", nargs="?", choices=["models", "rules", "datasets", "optimizers"])
    li.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from .registry import ConfigError
    from .data import DatasetNotFoundError
    from .training import DivergenceError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatasetNotFoundError, DivergenceError, ValueError, TypeError, ImportError, OSError) as e:
        if os.environ.get("EQPROP_DEBUG"):
            raise
        kind = "" if isinstance(e, (ConfigError, ValueError, DivergenceError)) else f"{type(e).__name__}: "
        print(f"eqprop: error: {kind}{e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eqprop: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a bad input: say so briefly; EQPROP_DEBUG=1 shows the traceback
        if os.environ.get("EQPROP_DEBUG"):
            raise
        print(f"eqprop: internal error: {type(e).__name__}: {e} (rerun with EQPROP_DEBUG=1 for the traceback, "
              f"and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
