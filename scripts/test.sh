#!/usr/bin/env bash
# Set everything up, then run the test suite. Real datasets are read from $EQPROP_DATA (else ./data
# and the per-user folder; Fashion-MNIST from Debian's package, which the setup installs); tests
# that need a dataset found nowhere skip, naming its files. Nothing is downloaded. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
