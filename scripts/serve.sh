#!/usr/bin/env bash
# Create the virtualenv if needed, install the gateway (only when something changed:
# scripts/install.sh) and start it on the embedded defaults: SQLite in var/,
# config/gateway.yaml, the platform simulator alongside.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/jicai-gateway serve -c "${JCGW_CONFIG:-config/gateway.yaml}"
