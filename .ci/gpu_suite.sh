#!/usr/bin/env bash
# The project's ONE GPU suite: `pudnet bench --speed` (ResNet-18 on cifar100-set) and `pudnet bench --preset gpu` (ResNet-18
# rows on cifar100-set, cifar100-to-cifar10 and fashion-set, every baseline, a ResNet-34 row, Table VI ablations), about
# 8.5 minutes on an H100, records + logs under OUT.
#   bash .ci/gpu_suite.sh OUT [DATA] [extra pudnet bench options]
# DATA: a folder with the shared-datasets layout (default $PUDNET_DATA or ../shared/datasets).
# On the lent GPU machine (torch there, no fastcore/fastprogress): wheels in .whl/ are installed first;
# the data travels in parts made by .ci/pack_gpu_data.py (see results/README.md, "Running the GPU suite on a lent machine").
# The device's copy of the tree may carry the git metadata of an older commit: name the commit that runs,
#   PUDNET_COMMIT=<hash> bash .ci/gpu_suite.sh OUT DATA, so that the records say it.
set -uo pipefail
OUT=${1:?usage: bash .ci/gpu_suite.sh OUT [DATA] [options]}; shift
DATA=${1:-${PUDNET_DATA:-../shared/datasets}}; [ $# -gt 0 ] && shift
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c "import fastcore, fastprogress" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PUDNET_DATA=$DATA PYTHONUNBUFFERED=1
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
# speed first (about 1.5 minutes): predict time and memory, meta-training tasks/s, the race against Adam (nbs/24_speed);
# its PudNet is meta-trained there for a few steps, the records say so
# (PUDNET_SPEED_ARGS replaces its options, e.g. for the CPU smoke test)
timeout 150 python3 -c "import sys; from pudnet.cli import main; sys.exit(main())" bench --speed --out "$OUT/speed" \
  ${PUDNET_SPEED_ARGS:---protocols cifar100-set --arch resnet18 --n_tasks 5} 2>&1 | tee "$OUT/speed.log"
# then the bench, its budget shortened by the speed run's time (a later --budget in the options wins)
python3 -c "import sys; from pudnet.cli import main; sys.exit(main())" bench --preset gpu --budget 400 --out "$OUT" "$@" 2>&1 | tee "$OUT/console.log"
