"""A table of hostile inputs and faults, each run through the ``eqprop`` command in-process.

Every row asserts: the exit code (2 for a bad input, the documented code otherwise), a message that
names the problem (a regex), no traceback in the output, and, for the rows that point the command
at an existing run folder, that nothing of that folder was deleted or changed (file names + bytes).

Placeholders in a row's arguments: ``{cfg}`` the tiny Fashion-MNIST config, ``{run}`` a private copy
of a finished 1-epoch run, ``{tmp}`` the test's own empty folder, ``{root}`` a data root the row's
``setup`` fills with damaged files, ``{file}`` an ordinary file.
"""
from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIG, TINY, cli, cli_subprocess, snapshot

T = TINY  # shorthand in the table
T_NORULE = [t for t in TINY if not t.startswith("rule.")]  # to name another rule with its own defaults


# -- setups: each writes what its rows need into tmp (and may damage the run copy) -----------------

def bad_yaml(tmp, run):
    (tmp / "bad.yaml").write_text("model:\n  name: hopfield-mlp\n  hidden: [16\nrule: {name: ep\n")


def list_yaml(tmp, run):
    (tmp / "list.yaml").write_text("- data\n- model\n")


def flat_yaml(tmp, run):
    (tmp / "flat.yaml").write_text("dataset: fashion-mnist\nmodel: hopfield-mlp\nhidden: [16]\nbeta: 0.5\nlr: 0.05\n")


def section_not_mapping(tmp, run):
    (tmp / "sec.yaml").write_text("rule: ep-centered\n")


def binary_yaml(tmp, run):
    (tmp / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81garbage\x00")


def a_file(tmp, run):
    (tmp / "file").write_text("I am a file, not a folder\n")


def truncate_ckpt(tmp, run):
    p = run / "checkpoint.pt"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def empty_ckpt(tmp, run):
    (run / "checkpoint.pt").write_bytes(b"")


def text_ckpt(tmp, run):
    (run / "checkpoint.pt").write_text("not a checkpoint at all\n")


def foreign_ckpt(tmp, run):
    torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")


def list_ckpt(tmp, run):
    torch.save([1, 2, 3], run / "checkpoint.pt")


def other_arch_ckpt(tmp, run):
    """A checkpoint of another architecture (hidden=[32]) in {tmp}/other/checkpoint.pt."""
    rc, text = cli(["train", CONFIG, *T, "model.hidden=[32]", "run.epochs=1", f"run.out={tmp / 'other'}"])
    assert rc == 0, text


def idx(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    import struct
    return bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def mnist_files(root: Path, n: int = 60):
    d = root / "mnist"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        (d / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(rng.integers(0, 256, (n, 28, 28), np.uint8))))
        (d / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx((np.arange(n) % 10).astype(np.uint8))))
    return d


def mnist_corrupt_deflate(tmp, run):
    p = mnist_files(tmp / "root") / "train-images-idx3-ubyte.gz"
    raw = p.read_bytes()
    p.write_bytes(raw[:12] + bytes(b ^ 0xFF for b in raw[12:40]) + raw[40:])


def mnist_truncated_gz(tmp, run):
    p = mnist_files(tmp / "root") / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-30])


def mnist_empty(tmp, run):
    (mnist_files(tmp / "root") / "train-labels-idx1-ubyte.gz").write_bytes(b"")


def mnist_not_gzip(tmp, run):
    (mnist_files(tmp / "root") / "train-images-idx3-ubyte.gz").write_bytes(b"hello, not gzip" * 10)


def mnist_label_out_of_range(tmp, run):
    d = mnist_files(tmp / "root")
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.full(60, 12, np.uint8))))


def mnist_unpaired(tmp, run):
    d = mnist_files(tmp / "root")
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.zeros(7, np.uint8))))


def ts_text(classes, labels, dims=2, seed=0):
    rng = np.random.default_rng(seed)
    head = (f"@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions {dims}\n"
            f"@equalLength true\n@seriesLength 3\n@classLabel true {' '.join(classes)}\n@data\n")
    rows = "".join(":".join(",".join(f"{v:.3f}" for v in ch) for ch in rng.normal(size=(dims, 3))) + f":{lab}\n"
                   for lab in labels)
    return head + rows


def uea(root: Path, train=("a", "b"), test=("a", "b"), n=40):
    d = root / "timeseries"
    d.mkdir(parents=True, exist_ok=True)
    (d / "BasicMotions_TRAIN.ts.gz").write_bytes(gzip.compress(ts_text(train, [train[i % len(train)] for i in range(n)]).encode()))
    (d / "BasicMotions_TEST.ts.gz").write_bytes(gzip.compress(ts_text(test, [test[i % len(test)] for i in range(n)], seed=1).encode()))
    return d


def ts_truncated(tmp, run):
    p = uea(tmp / "root") / "BasicMotions_TRAIN.ts.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def ts_class_in_test_only(tmp, run):
    uea(tmp / "root", train=("a", "b"), test=("a", "c"))


def ts_bad_value(tmp, run):
    d = uea(tmp / "root")
    (d / "BasicMotions_TEST.ts.gz").write_bytes(gzip.compress(ts_text(("a", "b"), ["a", "b"]).replace("@data\n", "@data\n1,x,3:4,5,6:a\n").encode()))


def image_tar(path: Path, members: dict[str, bytes]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def png_bytes(seed=0) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def cifar_jpeg_ok(root: Path, split: str):
    image_tar(root / "cifar10-jpeg" / f"{split}.tar.gz",
              {f"{split}/{c}/{i}.png": png_bytes(i) for i, c in enumerate(["cat", "dog", "ship", "frog"] * 3)})


def jpg_garbage(tmp, run):
    root = tmp / "root"
    cifar_jpeg_ok(root, "train")
    image_tar(root / "cifar10-jpeg" / "test.tar.gz", {"test/cat/0.png": png_bytes(), "test/dog/1.jpg": b"\xff\xd8\xff\xe0 not a jpeg"})


def tar_truncated(tmp, run):
    root = tmp / "root"
    cifar_jpeg_ok(root, "test")
    image_tar(root / "cifar10-jpeg" / "train.tar.gz", {f"train/cat/{i}.png": png_bytes(i) for i in range(30)})
    p = root / "cifar10-jpeg" / "train.tar.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def tar_foreign_classes(tmp, run):
    root = tmp / "root"
    cifar_jpeg_ok(root, "test")
    image_tar(root / "cifar10-jpeg" / "train.tar.gz", {"train/unicorn/0.png": png_bytes()})


def data_root_is_file(tmp, run):
    (tmp / "root").write_text("not a folder")


def eqprop_data_corrupt(tmp, run, monkeypatch=None):
    mnist_corrupt_deflate(tmp, run)


def data_list_one_corrupt(tmp, run):
    mnist_corrupt_deflate(tmp, run)
    uea(tmp / "root")


# -- the table ----------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: list[str]
    msg: str                      # regex the output must contain
    rc: int = 2
    setup: Callable | None = None
    env: dict = field(default_factory=dict)   # environment variables (EQPROP_DATA -> {root} etc.)
    on_run: bool | str = False    # the row points at an existing run: it must stay byte-identical
    #                               ("checkpoint": its checkpoint and metrics; "moved": moved aside intact)
    cuda: bool | None = None      # run only when torch.cuda.is_available() == cuda


TRAIN = ["train", "{cfg}", *T]
ON_RUN = ["train", "{cfg}", *T, "run.out={run}"]
MNIST = ["train", "{cfg}", *T, "data.name=mnist", "data.root={root}", "data.train_subset=null", "data.test_subset=null",
         "run.batch_size=10", "run.out={tmp}/out"]
UEA = ["train", "{cfg}", "data.name=basicmotions", "data.root={root}", "model.name=hssm", "model.d_model=8", "model.blocks=1",
       "run.epochs=1", "run.batch_size=10", "run.progress=false", "run.out={tmp}/out"]
CIFAR = ["train", "{cfg}", *T, "data.name=cifar10", "data.root={root}", "data.train_subset=null", "data.test_subset=null",
         "run.batch_size=4", "run.out={tmp}/out"]
GC = ["gradcheck", "{cfg}", *T, "--steps", "20", "--batch", "2"]
GDU = ["gdu", "{cfg}", *T, "--steps", "3", "--batch", "2", "--out", "{tmp}/gdu"]

CASES = [
    # -- run settings out of range (on an existing run: refused before anything is touched) --
    Case("epochs=0", [*ON_RUN, "run.epochs=0"], r"run\.epochs must be >= 1, got 0", on_run=True),
    Case("epochs<0", [*ON_RUN, "run.epochs=-3"], r"run\.epochs must be >= 1, got -3", on_run=True),
    Case("epochs=1.5", [*ON_RUN, "run.epochs=1.5"], r"run\.epochs expects an integer, got 1\.5", on_run=True),
    Case("batch_size=0", [*ON_RUN, "run.batch_size=0"], r"run\.batch_size must be >= 1, got 0", on_run=True),
    Case("batch_size>train set", [*TRAIN, "run.batch_size=5000", "run.out={tmp}/o"], r"run\.batch_size=5000 is larger than the training set \(200"),
    Case("eval_batch_size=0", [*ON_RUN, "run.eval_batch_size=0"], r"run\.eval_batch_size must be >= 1", on_run=True),
    Case("max_loss=0", [*ON_RUN, "run.max_loss=0"], r"run\.max_loss must be > 0", on_run=True),
    Case("max_loss=nan", [*ON_RUN, "run.max_loss=.nan"], r"run\.max_loss must be > 0", on_run=True),
    Case("log_every<0", [*ON_RUN, "run.log_every=-1"], r"run\.log_every must be >= 0", on_run=True),
    Case("seed=abc", [*ON_RUN, "run.seed=abc"], r"run\.seed expects an integer, got 'abc'", on_run=True),
    Case("resume=maybe", [*ON_RUN, "run.resume=maybe"], r"run\.resume expects true or false", on_run=True),
    Case("unknown logger", [*ON_RUN, "run.loggers=[jsonl,carrier-pigeon]"], r"carrier-pigeon.*(jsonl|csv|tensorboard)", on_run=True),
    Case("unknown device", [*ON_RUN, "run.device=tpu"], r"unknown device 'tpu'.*cpu, cuda", on_run=True),
    Case("device=cuda:abc", [*ON_RUN, "run.device=cuda:abc"], r"unknown device 'cuda:abc'", on_run=True),
    Case("device=cuda, none", [*ON_RUN, "run.device=cuda"], r"no CUDA device", on_run=True, cuda=False),
    Case("device=meta", [*ON_RUN, "run.device=meta"], r"(unsupported|unknown) device 'meta'", on_run=True),
    Case("dtype=float16", [*ON_RUN, "run.dtype=float16"], r"unknown dtype 'float16'.*float32, float64", on_run=True),
    Case("out is a file", [*TRAIN, "run.out={file}"], r"run\.out '.*file' is a file, not a folder", setup=a_file),
    Case("out under a file", [*TRAIN, "run.out={file}/sub"], r"run\.out '.*file/sub'.*(file|cannot be created)", setup=a_file),
    Case("out unwritable (/proc)", [*TRAIN, "run.out=/proc/eqprop-no/run"], r"run\.out '/proc/eqprop-no/run'.*(not writable|cannot be created)"),
    Case("out unknown {field}", [*TRAIN, "run.out={tmp}/{{optimizer}}"], r"run\.out .*names an unknown field 'optimizer'"),
    # -- rule settings: learning impossible --
    Case("nudge_steps=0", [*ON_RUN, "rule.nudge_steps=0"], r"nudge_steps must be >= 1 \(sweeps of each nudged phase\), got 0", on_run=True),
    Case("nudge_steps<0 (cl)", [*ON_RUN, "rule.name=cl", "model.output=mse", "rule.nudge_steps=-2"], r"nudge_steps must be >= 1 \(sweeps of each nudged phase\), got -2", on_run=True),
    Case("free_steps=0", [*ON_RUN, "rule.free_steps=0"], r"free_steps must be >= 1, got 0", on_run=True),
    Case("eval_steps=0", [*ON_RUN, "rule.eval_steps=0"], r"eval_steps must be >= 1", on_run=True),
    Case("beta=0", [*ON_RUN, "rule.beta=0"], r"beta must be > 0", on_run=True),
    Case("beta<0", [*ON_RUN, "rule.beta=-0.5"], r"beta must be > 0", on_run=True),
    Case("beta below float32 resolution", [*ON_RUN, "rule.beta=1e-9"], r"beta=1e-09 is below .*float32.*resolution.*>= 1\.\d+e-0\d", on_run=True),
    Case("beta below float64 resolution", [*ON_RUN, "rule.beta=1e-18", "run.dtype=float64"], r"beta=1e-18 is below .*float64", on_run=True),
    Case("beta=nan", [*ON_RUN, "rule.beta=.nan"], r"beta must be > 0", on_run=True),
    Case("beta=abc", [*ON_RUN, "rule.beta=abc"], r"rule\.beta expects a number, got 'abc'", on_run=True),
    Case("mode=bogus", [*ON_RUN, "rule.mode=bogus"], r"unknown relaxation mode 'bogus'", on_run=True),
    Case("variant=bogus", [*ON_RUN, "rule.name=ep", "rule.variant=sideways"], r"unknown EP variant 'sideways'", on_run=True),
    Case("relax_dtype=bogus", [*ON_RUN, "rule.relax_dtype=float7"], r"float7", on_run=True),
    Case("tol<0", [*ON_RUN, "rule.tol=-1"], r"tol must be (> 0|>= 0|positive)", on_run=True),
    Case("rhel eps=0 (on hssm)", [*UEA, "rule.name=rhel", "rule.eps=0"], r"RHEL needs eps > 0", setup=lambda t, r: uea(t / "root")),
    # -- names --
    Case("unknown rule", [*ON_RUN, "rule.name=backprop-magic"], r"unknown rule 'backprop-magic'; valid rules: .*ep-centered", on_run=True),
    Case("unknown model", [*ON_RUN, "model.name=resnet"], r"unknown model 'resnet'; valid models", on_run=True),
    Case("unknown dataset", [*ON_RUN, "data.name=imagenet-1k"], r"unknown dataset 'imagenet-1k'; valid datasets", on_run=True),
    Case("unknown optimizer", [*ON_RUN, "optim.name=lbfgs2"], r"unknown optimizer 'lbfgs2'", on_run=True),
    Case("bad import path", [*ON_RUN, "rule.name=nosuchpkg.mod:Rule"], r"cannot import module 'nosuchpkg\.mod'", on_run=True),
    Case("unknown rule setting", [*ON_RUN, "rule.betta=0.1"], r"unknown setting\(s\) 'betta' in section 'rule'.*valid settings: .*beta", on_run=True),
    Case("unknown run setting", [*ON_RUN, "run.epoch=2"], r"unknown setting\(s\) 'epoch' in section 'run'.*epochs", on_run=True),
    Case("unknown section", [*ON_RUN, "trainer.epochs=2"], r"must name a section.*sections: data, model, rule, optim, run", on_run=True),
    Case("flat override", [*ON_RUN, "beta=0.1"], r"did you mean rule\.beta=0\.1", on_run=True),
    Case("override YAML error", [*ON_RUN, "model.hidden=[16"], r"override 'model\.hidden=\[16': the value is not valid YAML", on_run=True),
    Case("override no '='", ["train", "{cfg}", "rule.beta"], r"override 'rule\.beta' is not of the form section\.key=value"),
    Case("unknown activation", [*ON_RUN, "model.activation=swishy"], r"swishy", on_run=True),
    Case("unknown output", [*ON_RUN, "model.output=hinge"], r"output.*hinge|hinge.*output", on_run=True),
    Case("hidden=[0]", [*ON_RUN, "model.hidden=[0]"], r"every layer size must be >= 1 \(model\.hidden\)", on_run=True),
    Case("hidden=[-4]", [*ON_RUN, "model.hidden=[-4]"], r"every layer size must be >= 1 \(model\.hidden\)", on_run=True),
    # -- optimizer --
    Case("lr=nan", [*ON_RUN, "optim.lr=.nan"], r"optim\.lr must be finite and >= 0, got nan", on_run=True),
    Case("lr=inf", [*ON_RUN, "optim.lr=.inf"], r"optim\.lr must be finite and >= 0, got inf", on_run=True),
    Case("lr<0", [*ON_RUN, "optim.lr=-0.1"], r"optim\.lr must be finite and >= 0, got -0\.1", on_run=True),
    Case("lr=[] ", [*ON_RUN, "optim.lr=[]"], r"lr has 0 values but the model has 2 couplings", on_run=True),
    Case("lr: 3 rates for 2 couplings", [*ON_RUN, "optim.lr=[0.1,0.1,0.1]"], r"lr has 3 values but the model has 2 couplings \(layers\.0, readout\)", on_run=True),
    Case("lr=abc", [*ON_RUN, "optim.lr=abc"], r"optim\.lr expects a number, got 'abc'", on_run=True),
    Case("schedule=bogus", [*ON_RUN, "optim.schedule=stairs"], r"stairs.*cosine|cosine.*stairs", on_run=True),
    Case("momentum<0", [*ON_RUN, "optim.momentum=-1"], r"momentum", on_run=True),
    Case("optim unknown setting", [*ON_RUN, "optim.nesterov_power=2"], r"unknown setting\(s\) 'nesterov_power' in section 'optim'", on_run=True),
    # -- data settings --
    Case("train_subset=0", [*ON_RUN, "data.train_subset=0"], r"data\.train_subset must be >= 1", on_run=True),
    Case("test_subset=0", [*ON_RUN, "data.test_subset=0"], r"data\.test_subset must be >= 1", on_run=True),
    Case("test_subset<0", [*ON_RUN, "data.test_subset=-5"], r"data\.test_subset must be >= 1", on_run=True),
    Case("normalize=maybe", [*ON_RUN, "data.normalize=maybe"], r"data\.normalize expects true or false", on_run=True),
    Case("data.root missing", [*ON_RUN, "data.root=/nonexistent/eqprop-data"], r"/nonexistent/eqprop-data.*(does not exist|not found)", on_run=True),
    Case("data.root is a file", [*TRAIN, "data.root={root}", "run.out={tmp}/o"], r"root.*not a folder|is a file", setup=data_root_is_file),
    Case("dataset not there", [*TRAIN, "data.name=svhn", "data.root={tmp}", "run.out={tmp}/o"], r"svhn: could not find train_32x32\.mat"),
    # -- model / rule pairings --
    Case("cl with output=ce", [*ON_RUN, "rule.name=cl"], r"contrastive learning \(CL\) clamps the output.*output='mse'", on_run=True),
    Case("cpl with output=ce", [*ON_RUN, "rule.name=cpl-centered"], r"coupled learning \(CpL\) clamps the output.*output='mse'", on_run=True),
    Case("rhel on an MLP", ["train", "{cfg}", *T_NORULE, "rule.name=rhel", "run.out={run}"], r"RHEL trains Hamiltonian state-space models.*HopfieldMLP", on_run=True),
    Case("ffebm rule on an MLP", ["train", "{cfg}", *T_NORULE, "rule.name=ffebm", "run.out={run}"], r"rule 'ffebm' trains chains of blocks.*not HopfieldMLP", on_run=True),
    Case("ep on a sequence model", [*UEA, "rule.name=ep-centered"], r"sequence model: train it with 'bptt' or 'rhel'", setup=lambda t, r: uea(t / "root")),
    Case("augment on time series", [*UEA, "rule.name=bptt", "data.augment=true"], r"data\.augment=true crops and flips images", setup=lambda t, r: uea(t / "root")),
    # -- config files --
    Case("config file missing", ["train", "/nonexistent/conf.yaml", *T], r"config file '/nonexistent/conf\.yaml' not found"),
    Case("YAML syntax error in file", ["train", "{tmp}/bad.yaml"], r"bad\.yaml: not valid YAML", setup=bad_yaml),
    Case("binary config file", ["train", "{tmp}/bin.yaml"], r"bin\.yaml: (cannot be read|not valid YAML)", setup=binary_yaml),
    Case("config is a list", ["train", "{tmp}/list.yaml"], r"list\.yaml: expected a mapping of sections", setup=list_yaml),
    Case("flat old-style config", ["train", "{tmp}/flat.yaml"], r"flat config of eqprop 0\.1.*eqprop config convert", setup=flat_yaml),
    Case("section not a mapping", ["train", "{tmp}/sec.yaml"], r"section 'rule' must be a mapping of settings", setup=section_not_mapping),
    Case("config show, flat file", ["config", "show", "{tmp}/flat.yaml"], r"flat config of eqprop 0\.1", setup=flat_yaml),
    Case("config convert, missing", ["config", "convert", "/nonexistent/old.yaml"], r"config file '/nonexistent/old\.yaml' not found"),
    Case("config a folder", ["train", "{tmp}"], r"config file '.*' not found"),
    # -- checkpoints in an existing run folder (resume) --
    Case("truncated checkpoint", ON_RUN, r"checkpoint '.*checkpoint\.pt' is truncated or not a checkpoint", setup=truncate_ckpt, on_run=True),
    Case("empty checkpoint", ON_RUN, r"checkpoint '.*checkpoint\.pt' is empty \(0 bytes\)", setup=empty_ckpt, on_run=True),
    Case("text file as checkpoint", ON_RUN, r"checkpoint '.*checkpoint\.pt' is truncated or not a checkpoint", setup=text_ckpt, on_run=True),
    Case("foreign checkpoint (dict)", ON_RUN, r"is not an eqprop checkpoint \(no 'model' entry\)", setup=foreign_ckpt, on_run=True),
    Case("foreign checkpoint (list)", ON_RUN, r"is not an eqprop checkpoint", setup=list_ckpt, on_run=True),
    Case("resume, other architecture", [*ON_RUN, "model.hidden=[32]"], r"was made for another model or dataset: model section", on_run=True),
    Case("resume, other dataset subset", [*ON_RUN, "data.train_subset=300"], r"was made for another model or dataset: data section", on_run=True),
    Case("resume, other model", [*ON_RUN, "model.name=vector-field-mlp", "optim.lr=0.05"], r"was made for another model or dataset: model section", on_run=True),
    # -- gradcheck --
    Case("gradcheck --batch 0", [*GC[:-2], "--batch", "0"], r"--batch must be >= 1, got 0"),
    Case("gradcheck --batch -3", [*GC[:-2], "--batch", "-3"], r"--batch must be >= 1, got -3"),
    Case("gradcheck --steps 0", [*GC[:2], *T, "--steps", "0"], r"--steps must be >= 1, got 0"),
    Case("gradcheck --tol nan", [*GC, "--tol", "nan"], r"--tol must be (>= 0|a number)"),
    Case("gradcheck unknown rule", [*GC, "--rules", "ep-centered,magic"], r"unknown rule 'magic'"),
    Case("gradcheck unknown reference", [*GC, "--reference", "oracle"], r"unknown rule 'oracle'"),
    Case("gradcheck --checkpoint missing", [*GC, "--checkpoint", "{tmp}/none.pt"], r"checkpoint '.*none\.pt' not found"),
    Case("gradcheck --checkpoint other arch", [*GC, "--checkpoint", "{tmp}/other/checkpoint.pt"], r"was made for another model: layers\.0\.bias \(32,\) \(this config: \(16,\)\); layers\.0\.weight \(32, 784\)", setup=other_arch_ckpt),
    Case("gradcheck --checkpoint truncated", [*GC, "--checkpoint", "{run}/checkpoint.pt"], r"truncated or not a checkpoint", setup=truncate_ckpt, on_run=True),
    Case("gradcheck --checkpoint a folder", [*GC, "--checkpoint", "{run}"], r"checkpoint '.*run' is a folder; give the file \(e\.g\. '.*run/checkpoint\.pt'\)", on_run=True),
    Case("gradcheck --batch abc", [*GC, "--batch", "abc"], r"argument --batch: invalid int value: 'abc'"),
    # -- gdu --
    Case("gdu --steps 0", [*GDU[:2], *T, "--steps", "0"], r"--steps must be >= 1, got 0"),
    Case("gdu --batch 0", [*GDU[:2], *T, "--batch", "0"], r"--batch must be >= 1, got 0"),
    Case("gdu --beta 0", [*GDU, "--beta", "0"], r"--beta \(the GDU nudge\) must be > 0 and finite, got 0\.0"),
    Case("gdu --out a file", [*GDU[:-2], "--out", "{file}"], r"--out '.*file' is a file; give a folder", setup=a_file),
    Case("gdu --checkpoint missing", [*GDU, "--checkpoint", "{tmp}/none.pt"], r"checkpoint '.*none\.pt' not found"),
    Case("gdu --checkpoint empty", [*GDU, "--checkpoint", "{run}/checkpoint.pt"], r"is empty \(0 bytes\)", setup=empty_ckpt, on_run=True),
    Case("gdu --checkpoint other arch", [*GDU, "--checkpoint", "{tmp}/other/checkpoint.pt"], r"was made for another model: layers\.0\.bias \(32,\) \(this config: \(16,\)\); layers\.0\.weight \(32, 784\)", setup=other_arch_ckpt),
    # -- damaged data files, through the CLI (a tmp data.root, or EQPROP_DATA) --
    Case("corrupt deflate in .gz", MNIST, r"train-images-idx3-ubyte\.gz: corrupt gzip file", setup=mnist_corrupt_deflate),
    Case("corrupt .gz via EQPROP_DATA", [*MNIST[:-7], "data.name=mnist", "data.train_subset=null", "data.test_subset=null", "run.batch_size=10", "run.out={tmp}/out"],
         r"train-images-idx3-ubyte\.gz: corrupt gzip file", setup=mnist_corrupt_deflate, env={"EQPROP_DATA": "{root}"}),
    Case("truncated .gz", MNIST, r"t10k-images-idx3-ubyte\.gz: truncated gzip file", setup=mnist_truncated_gz),
    Case("empty idx file", MNIST, r"train-labels-idx1-ubyte\.gz: .*(empty|not an IDX|not a gzip)", setup=mnist_empty),
    Case("not gzip at all", MNIST, r"train-images-idx3-ubyte\.gz: not an IDX file \(bad magic number", setup=mnist_not_gzip),
    Case("label out of range", MNIST, r"label 12 found, mnist has classes 0\.\.9", setup=mnist_label_out_of_range),
    Case("images/labels do not pair", MNIST, r"do not pair up", setup=mnist_unpaired),
    Case("truncated .ts.gz", [*UEA, "rule.name=bptt"], r"BasicMotions_TRAIN\.ts\.gz: truncated gzip file", setup=ts_truncated),
    Case(".ts class in test only", [*UEA, "rule.name=bptt"], r"has class\(es\) \['c'\] that .*BasicMotions_TRAIN\.ts\.gz lacks", setup=ts_class_in_test_only),
    Case(".ts bad value", [*UEA, "rule.name=bptt"], r"BasicMotions_TEST\.ts\.gz:\d+", setup=ts_bad_value),
    Case("garbage jpg in image tar", CIFAR, r"test\.tar\.gz: member test/dog/1\.jpg is not a readable image", setup=jpg_garbage),
    Case("truncated .tar.gz", CIFAR, r"train\.tar\.gz: (truncated|corrupt) tar archive", setup=tar_truncated),
    Case("image tar of another dataset", CIFAR, r"class folder\(s\) \['unicorn'\] are not classes of this dataset", setup=tar_foreign_classes),
    Case("data list, one corrupt", ["data", "list", "--root", "{root}"], r"basicmotions +train 40 samples(.|\n)*mnist +train error: .*train-images-idx3-ubyte\.gz: corrupt gzip file(.|\n)*mnist +test +60 samples",
         rc=0, setup=data_list_one_corrupt),
    Case("data download, no name", ["data", "download"], r"needs a dataset name"),
    Case("data download, unknown", ["data", "download", "imagenet-1k", "--root", "{tmp}"], r"no download source for 'imagenet-1k'"),
    # -- divergence (documented: exit 2, the last good checkpoint kept) --
    Case("lr=1e30 diverges", [*TRAIN, "optim.lr=1e30", "run.out={tmp}/o"], r"training diverged at .*Lower the learning rate"),
    Case("max_loss tiny", [*TRAIN, "run.max_loss=1e-9", "run.out={tmp}/o"], r"training diverged at epoch 1, batch 1: loss=2\.\d+ is above run\.max_loss=1e-09"),
    Case("resume=false, lr=nan: old run untouched", [*ON_RUN, "run.resume=false", "optim.lr=.nan"],
         r"optim\.lr must be finite and >= 0, got nan", on_run=True),
    Case("resume=false, then diverges: old run moved aside intact", [*ON_RUN, "run.resume=false", "optim.lr=1e30"],
         r"moved to .*run\.old-(.|\n)*training diverged", on_run="moved"),
    Case("resume diverges: checkpoint kept", [*ON_RUN, "run.epochs=2", "optim.lr=1e30"], r"training diverged at .*last good checkpoint \(epoch 1\)",
         on_run="checkpoint"),
    # -- compare --
    Case("compare unknown rule", ["compare", "rules=[ep-centered,magic]", "datasets=[fashion-mnist]", "out={tmp}/cmp"], r"unknown rule 'magic'"),
    Case("compare unknown key", ["compare", "flavour=vanilla", "out={tmp}/cmp"], r"flavour"),
    # -- argparse --
    Case("no command", [], r"the following arguments are required: command"),
    Case("unknown command", ["fly"], r"invalid choice: 'fly'"),
]


def fill(s: str, paths: dict) -> str:
    for k, v in paths.items():
        s = s.replace("{" + k + "}", str(v))
    return s.replace("{{", "{").replace("}}", "}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case, run_copy, tmp_path, monkeypatch):
    if case.cuda is not None and torch.cuda.is_available() != case.cuda:
        pytest.skip("depends on whether a CUDA device is present")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written to a default path lands here
    paths = {"cfg": CONFIG, "run": run_copy, "tmp": work, "root": work / "root", "file": work / "file"}
    if case.setup is not None:
        case.setup(work, run_copy)
    for k, v in case.env.items():
        monkeypatch.setenv(k, fill(v, paths))
    before = snapshot(run_copy)
    rc, out = cli([fill(a, paths) for a in case.argv])
    assert "Traceback" not in out, out
    assert rc == case.rc, out
    assert re.search(case.msg, out), f"expected /{case.msg}/ in:\n{out}"
    if case.rc == 2:
        assert re.search(r"^eqprop: error: |^usage: eqprop", out, re.MULTILINE), out
        assert "internal error" not in out, out
    after = snapshot(run_copy)
    if case.on_run == "moved":  # run.resume=false: the earlier run is moved aside, never deleted
        (aside,) = run_copy.parent.glob("run.old-*")
        assert snapshot(aside) == before
        return
    if case.on_run == "checkpoint":  # a resumed run that diverged: the last good epoch is kept
        for name in ("checkpoint.pt", "metrics.jsonl"):
            assert after[name] == before[name], name
        assert set(before) <= set(after)
    elif case.on_run:
        assert after == before, "the existing run folder was changed"
    assert not list(run_copy.parent.glob("run.old-*")), "the run was moved aside"


def test_the_table_is_large():
    assert len(CASES) >= 60


# A few representative rows again in a fresh interpreter: the real command prints no traceback.
SUBPROCESS = ["YAML syntax error in file", "truncated checkpoint",
              "corrupt deflate in .gz"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=SUBPROCESS)
def test_hostile_subprocess(case: Case, run_copy, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    paths = {"cfg": CONFIG, "run": run_copy, "tmp": work, "root": work / "root", "file": work / "file"}
    if case.setup is not None:
        case.setup(work, run_copy)
    before = snapshot(run_copy)
    rc, out = cli_subprocess([fill(a, paths) for a in case.argv], env={k: fill(v, paths) for k, v in case.env.items()})
    assert rc == case.rc, out
    assert "Traceback" not in out and re.search(case.msg, out), out
    assert snapshot(run_copy) == before
