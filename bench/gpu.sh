#!/usr/bin/env bash
# Every GPU figure of bench/README.md's GPU section in one run (< 8 min on an H200): bench/gpu.py's tables go to
# OUT/gpu.md, its profiles to OUT/profile.txt. Needs torch, Lightning, pandas, matplotlib, scikit-learn and
# tensorboard; gin-config and python-dotenv may come as wheels in .whl/ (installed into /tmp/site).
#   bash bench/gpu.sh OUT [bench/gpu.py options, e.g. --sections ways,compile --rounds 2]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/gpu_out}
shift || true
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /' || true
exec "$PY" bench/gpu.py --out "$out" "$@"
