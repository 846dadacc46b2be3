#!/usr/bin/env bash
# Create .venv if needed and install the gateway into it: `scripts/install.sh` for running,
# `scripts/install.sh test` with the test extras and the example vendor adapter.
# Reinstalling recompiles the mypyc hot path (~30 s), so it happens only when the
# packaging or a compiled module's source changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
shopt -s nullglob
stamp=$( (echo "JCGW_PURE_PYTHON=${JCGW_PURE_PYTHON:-}"; cat pyproject.toml setup.py \
    gateway/native.py $(.venv/bin/python -c \
    'import runpy; print(" ".join(runpy.run_path("gateway/native.py")["SOURCES"]))') \
    examples/*/pyproject.toml) | sha256sum | cut -d' ' -f1)
stale() {  # a compiled module whose source changed since the build (an edit, a checkout)
    ! .venv/bin/python -c 'import runpy, sys
sys.exit(1 if runpy.run_path("gateway/native.py")["native_status"]().stale else 0)' 2>/dev/null
}
current() {  # installed from this very tree, for this purpose (a test install also runs)
    [ "$(cat ".venv/.jcgw-install-$1" 2>/dev/null)" = "$stamp" ]
}
if { current "$what" || { [ "$what" = run ] && current test; }; } && ! stale; then
    exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$what" = test ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
    for ex in examples/*/; do
        [ -f "$ex/pyproject.toml" ] && .venv/bin/python -m pip install -q -e "$ex"
    done
else
    .venv/bin/python -m pip install -q -e .
fi
echo "$stamp" > ".venv/.jcgw-install-$what"
