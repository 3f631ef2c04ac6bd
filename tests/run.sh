#!/usr/bin/env bash
# The project's test command (README): the notebooks' inline tests, then the pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# two notebooks at a time, each with half the cores' torch threads: with torch's default (a thread per core) the two
# workers oversubscribe the cores and spin; measured on 2 cores, the notebooks' tests took 763 s that way and 350 s
# with one thread each
OMP_NUM_THREADS=$(python -c 'import os; print(max(1, os.cpu_count() // 2))') nbdev_test --n_workers 2 --do_print --timing
python -m pytest tests -q -p no:cacheprovider --durations=15
