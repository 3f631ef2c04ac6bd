#!/usr/bin/env bash
# The project's test command (README): the notebooks' inline tests, then the pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
nbdev_test --n_workers 2 --do_print --timing
python -m pytest tests -q -p no:cacheprovider --durations=15
