#!/usr/bin/env bash
# Create .venv and install dbembed with everything it needs, on a machine that has only
# Python >= 3.11, pip and gcc.  torch is pinned to its CPU build (an unpinned torch pulls
# gigabytes of CUDA packages).  Usage: bash scripts/setup.sh [extras]   (default extras: all)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" || \
    .venv/bin/python -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
# The constraint keeps every other package from replacing the CPU torch (a dependency that asks for
# torchvision or a newer torch would otherwise pull the multi-GB CUDA build).
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" > "$constraints"
.venv/bin/python -m pip install -q -e ".[${extras}]" -c "$constraints"
.venv/bin/python - <<'PY'
import importlib.metadata as md, sys
v = md.version("torch")
if not v.startswith("2.13.0"):
    sys.exit(f"setup.sh: torch {v} was installed; expected the CPU build 2.13.0")
PY
