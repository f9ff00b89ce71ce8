#!/usr/bin/env bash
# The GPU half of issue 3 (DCHN speed and accuracy), as one resumable command: every training
# run resumes from its last epoch's checkpoint and finished runs are skipped, so rerun this
# script (e.g. in 10-minute pieces on a lent GPU) until it prints "all done".
# Needs a Python with a CUDA build of torch 2.13 and the package's dependencies (PYTHON=...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p runs
[ -s runs/dchn_speed.jsonl ] || $PY benchmarks/dchn_speed.py --device cuda | tee runs/dchn_speed.jsonl
run() { $PY -m eqprop.cli train "$@" run.device=cuda; }
run configs/fashion_mnist_dchn_ep.yaml                                   # bf16 relaxations
run configs/fashion_mnist_dchn_ep.yaml rule.relax_dtype=null run.out=runs/fashion_mnist_dchn_ep_fp32
run configs/mnist_dchn_ep.yaml
run configs/cifar10_dchn_ep.yaml
run configs/cifar10_dchn_bptt.yaml
$PY -m eqprop.cli compare configs/compare_fashion_mnist.yaml run.device=cuda
echo "all done"
