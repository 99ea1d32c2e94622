#!/usr/bin/env bash
# Set up and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# The web page test drives Debian's headless Chromium; install it when we can (root + apt), else it skips.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the browser test will be skipped"
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m ruff check src tests benchmarks
.venv/bin/python -m mypy src
.venv/bin/lint-imports  # the layers contract in pyproject.toml (docs/ARCHITECTURE.md)
.venv/bin/python -m pytest -q "$@"
