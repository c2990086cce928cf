#!/usr/bin/env bash
# make bench-smoke (CI runs it): every benchmark once at tiny sizes, so that one which no longer runs on the tree
# fails here instead of rotting unseen. Its figures mean nothing; `make bench` measures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 BENCH_SMOKE=1 MPLBACKEND=Agg
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for script in harness_overhead startup results_scale sweep memory data_throughput; do
    echo "== bench/$script.py"
    "$PY" "bench/$script.py" >"$out/$script.log" 2>&1 || { tail -n 30 "$out/$script.log"; exit 1; }
    grep '^|' "$out/$script.log" | tail -n 2
done
echo "== bench/gpu.py --smoke (on this machine's device)"
"$PY" bench/gpu.py --smoke --sections profile,ways --out "$out/gpu" >"$out/gpu.log" 2>&1 || { tail -n 30 "$out/gpu.log"; exit 1; }
grep -q '^| template | torch.profiler' "$out/gpu/gpu.md" || { cat "$out/gpu/gpu.md"; exit 1; }
if grep -q 'failed' "$out/gpu/gpu.md"; then cat "$out/gpu/gpu.md"; exit 1; fi
echo "== bench/compare_commits.py HEAD"
"$PY" bench/compare_commits.py HEAD >"$out/compare.log" 2>&1 || { tail -n 30 "$out/compare.log"; exit 1; }
grep '^|' "$out/compare.log" | tail -n 2
echo "bench smoke: every benchmark ran"
