#!/usr/bin/env bash
# Set everything up, then run the main job: centered EP on Fashion-MNIST (a few minutes on 2 CPU
# cores). Results land in runs/fashion_mnist_mlp_ep/. Extra key=value arguments override the config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/eqprop train configs/fashion_mnist_mlp_ep.yaml "$@"
