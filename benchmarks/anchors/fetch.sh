#!/usr/bin/env bash
# Clone the two published codes the anchors time into benchmarks/anchors/published/ (git-ignored;
# nothing of them is copied into eqprop). Pinned to the commits the figures in BENCHMARKS.md used.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p published
get() {  # url dir commit
  if [ ! -d "published/$2" ]; then git clone -q "$1" "published/$2"; fi
  git -C "published/$2" checkout -q "$3"
}
get https://github.com/Laborieux-Axel/Equilibrium-Propagation Equilibrium-Propagation 93660ed6c5b0ec07978b674a69c169ce32e8cd5f
get https://github.com/rain-neuromorphics/energy-based-learning energy-based-learning 6b253fd8a5d267535f58ab79992256ef10031ceb
echo "published codes in $(pwd)/published"
