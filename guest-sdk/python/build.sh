#!/bin/sh
# Builds a Python weft task into a component:
#
#   guest-sdk/python/build.sh TASK.py OUT.wasm [--path DIR ...] [-v]
#   guest-sdk/python/build.sh --install     (only makes the environment)
#
# The first run makes a virtual environment with the pinned componentize-py
# (build-requirements.txt) in guest-sdk/python/.venv, or in $WEFT_PY_VENV
# when that is set; later runs reuse it. Needs python3 with venv and pip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${WEFT_PY_VENV:-$here/.venv}
requirements="$here/build-requirements.txt"
if ! cmp -s "$requirements" "$venv/weft-installed" 2>/dev/null; then
    python=${PYTHON:-python3}
    command -v "$python" >/dev/null || { echo "error: $python is not on PATH; install Python 3.10+ with venv" >&2; exit 1; }
    echo "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
    cp "$requirements" "$venv/weft-installed"
fi
[ "${1:-}" = "--install" ] && exit 0
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$venv/bin/python" -m weft_build "$@"
