#!/usr/bin/env bash
# Build the wheel and sdist, install the wheel into a fresh venv outside the repository, and run
# `eqprop --version`, `eqprop --help` and one epoch of the packaged Fashion-MNIST config (by name,
# on a subset) from an empty folder.
#
#   bash scripts/check_wheel.sh [PYTHON]      # PYTHON: the interpreter whose torch is reused
#
# The fresh venv reuses PYTHON's installed packages (torch, numpy, ...) through a .pth file, the
# equivalent of `python -m venv --system-site-packages` for a venv-installed torch, so that no
# torch wheel is downloaded; eqprop itself comes only from the built wheel (checked below).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-${PYTHON:-python}}"
work="$(mktemp -d /tmp/eqprop-wheel.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$repo"
rm -rf dist
# --no-isolation: build with the venv's own setuptools, so nothing is downloaded
"$py" -m build --no-isolation --skip-dependency-check --outdir dist . > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
ls dist
unset PYTHONPATH  # the venv must see the installed wheel, not a source tree
base="$("$py" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
site_here="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site_here/reuse-installed-torch.pth"
"$work/venv/bin/python" -m pip install -q "$repo"/dist/eqprop-*.whl   # its dependencies resolve to the reused ones
"$work/venv/bin/python" -m pip check 2>&1 | grep -v "^No broken" || true   # dependency report
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$work/venv/bin/python" -c 'import eqprop, sys; assert eqprop.__file__.startswith(sys.prefix), eqprop.__file__; print("eqprop from", eqprop.__file__)'
"$work/venv/bin/eqprop" --version
"$work/venv/bin/eqprop" --help | head -3
"$work/venv/bin/eqprop" train fashion_mnist_mlp_ep run.epochs=1 data.train_subset=2000 data.test_subset=1000 \
    run.progress=false run.out=run
test -f run/summary.json && python3 -c 'import json; s=json.load(open("run/summary.json")); print("wheel run: test_acc", s["test_acc"]); assert s["test_acc"] > 0.5'
echo "wheel check passed"
