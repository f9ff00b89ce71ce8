#!/usr/bin/env bash
# Sets up everything eqprop needs, idempotently: a virtual environment in .venv with the CPU
# build of torch 2.13.0, the package with its test extras, and (where apt-get is usable)
# Debian's dataset-fashion-mnist. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  .venv/bin/python -m pip install -q torch==2.13.0
fi
if ! .venv/bin/python -c "import eqprop, pytest, PIL, tqdm, yaml, matplotlib, optuna" 2>/dev/null; then
  echo "[setup] installing eqprop and its dependencies"
  .venv/bin/python -m pip install -q -e ".[dev]"
fi

FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="skip"; fi
  fi
  if [ "$SUDO" != "skip" ]; then
    echo "[setup] installing Debian's dataset-fashion-mnist"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "[setup] warning: could not install dataset-fashion-mnist; Fashion-MNIST runs will ask for its files"
  else
    echo "[setup] note: not root and no sudo; install Fashion-MNIST with 'apt-get install dataset-fashion-mnist'"
  fi
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, eqprop; print("eqprop", eqprop.__version__, "torch", torch.__version__)')"
