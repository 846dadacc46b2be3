#!/usr/bin/env bash
# Create the virtualenv if needed, install the gateway with its test extras and the
# example vendor adapter (only when something changed: scripts/install.sh), and run the
# whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
exec .venv/bin/python -m pytest "$@"
