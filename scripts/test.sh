#!/usr/bin/env bash
# Create the virtualenv if needed, install the gateway with its test extras and the
# example vendor adapter, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# reinstall (which recompiles the mypyc hot path, ~30 s) only when the packaging or a
# compiled module's source changed since the last install
shopt -s nullglob
stamp=$( (echo "JCGW_PURE_PYTHON=${JCGW_PURE_PYTHON:-}"; cat pyproject.toml setup.py \
    gateway/native.py $(.venv/bin/python -c \
    'import runpy; print(" ".join(runpy.run_path("gateway/native.py")["COMPILED"]))') \
    examples/*/pyproject.toml) | sha256sum | cut -d' ' -f1)
stale() {  # a compiled module whose source changed since the build (an edit, a checkout)
    ! .venv/bin/python -c 'import runpy, sys
sys.exit(1 if runpy.run_path("gateway/native.py")["native_status"]().stale else 0)' 2>/dev/null
}
if [ "$(cat .venv/.jcgw-install 2>/dev/null)" != "$stamp" ] || stale; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    for ex in examples/*/; do
        [ -f "$ex/pyproject.toml" ] && .venv/bin/python -m pip install -q -e "$ex"
    done
    echo "$stamp" > .venv/.jcgw-install
fi
exec .venv/bin/python -m pytest "$@"
