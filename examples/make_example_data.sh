#!/usr/bin/env bash
# Writes the example load-test data used by the README quickstart:
# 6 SQLite files x 200 rows under examples/data (chat, orders, support, catalog schemas,
# English + Japanese, one WAL file) and 20 planted query/row pairs in examples/data/planted.json.
# Deterministic: seed 1 always gives the same rows. Needs: pip install 'dbembed[generate]'.
set -euo pipefail
cd "$(dirname "$0")/.."
dbembed generate examples/data --files 6 --rows 200 --seed 1 --planted examples/data/planted.json "$@"
