#!/usr/bin/env bash
# Set up, generate the bundled example data, index it, and search it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DATA="${DBEMBED_DEMO_DATA:-examples/data}"
.venv/bin/dbembed generate "$DATA" --files 6 --rows 200 --seed 1 --planted "$DATA/planted.json"
# --settle 0: the files were written a second ago; in production the default 60 s leaves
# files that are still being written for the next run.
.venv/bin/dbembed run "$DATA" --settle 0
.venv/bin/dbembed search "refund for a damaged order" -k 5
.venv/bin/dbembed status
