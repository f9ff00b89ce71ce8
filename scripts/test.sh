#!/usr/bin/env bash
# Set everything up, then run the test suite (real datasets are read from $EQPROP_DATA, by default
# ../shared/data; nothing is downloaded). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
