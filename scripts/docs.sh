#!/usr/bin/env bash
# Build the documentation site (guides + API reference from the docstrings) into site/.
# Sets up .venv first and installs the [docs] extra (mkdocs, mkdocstrings) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -c "import mkdocs, mkdocstrings_handlers.python" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[docs]"
.venv/bin/python -m mkdocs build "$@"
echo "[docs] site/index.html"
