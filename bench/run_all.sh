#!/usr/bin/env bash
# Run the regression guards of bench/ (< 10 min on 2 idle cores), printing markdown tables; a copy goes to
# bench/last_run.md. gpu.py (a GPU machine: bench/gpu.sh) and compare_commits.py are not run; see bench/README.md.
#   bash bench/run_all.sh                 # from the repository root, with .venv set up (make setup)
#   BENCH_REPEATS=5 bash bench/run_all.sh # more repetitions (default here 3; the sweeps do SWEEP_REPEATS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 BENCH_REPEATS="${BENCH_REPEATS:-3}"
OUT="${BENCH_OUT:-bench/last_run.md}"
{
    echo "# bench/run_all.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src bin configs 2>/dev/null || echo ' (src/bin/configs modified)')"
    "$PY" - <<'PYEOF'
import sys; sys.path.insert(0, "bench")
from common import machine
m = machine()
print(f"\n{m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, pytorch-lightning {m['pytorch-lightning']}")
PYEOF
    for script in harness_overhead startup results_scale sweep memory data_throughput; do
        echo
        echo "## $script"
        echo
        "$PY" -c "import sys; sys.path.insert(0, 'bench'); from common import speed_index; print(f'(CPU speed index before: {speed_index():.0f} ms per 10^6 Python additions, lower is faster)')"
        echo
        start=$SECONDS
        "$PY" "bench/$script.py"
        echo
        echo "($script: $((SECONDS - start)) s)"
    done
    end_commit="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src bin configs 2>/dev/null || echo ' (src/bin/configs modified)')"
    echo
    echo "commit at the end: $end_commit (other people edit the tree: a different commit means a mixed run)"
} 2>&1 | tee "$OUT"
