#!/usr/bin/env bash
# Create the virtualenv if needed, install the gateway and start it on the embedded
# defaults: SQLite in var/, config/gateway.yaml, the platform simulator alongside.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/jicai-gateway serve -c "${JCGW_CONFIG:-config/gateway.yaml}"
