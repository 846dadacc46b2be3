#!/usr/bin/env bash
# Create the virtualenv if needed, install the gateway with its test extras and the
# example vendor adapter, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
for ex in examples/*/; do
    [ -f "$ex/pyproject.toml" ] && .venv/bin/python -m pip install -q -e "$ex"
done
exec .venv/bin/python -m pytest "$@"
