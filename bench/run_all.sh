#!/usr/bin/env bash
# Run every benchmark of bench/ (~25 min on 2 cores), printing markdown tables; a copy goes to bench/last_run.md.
#   bash bench/run_all.sh                 # from the repository root, with .venv set up (make setup)
#   BENCH_REPEATS=3 bash bench/run_all.sh # fewer repetitions (default 5; the sweep does SWEEP_REPEATS=3)
# bench/profile_step.py needs py-spy (requirements-dev.txt); it is skipped where py-spy cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${BENCH_OUT:-bench/last_run.md}"
{
    echo "# bench/run_all.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src bin configs 2>/dev/null || echo ' (src/bin/configs modified)')"
    "$PY" - <<'PYEOF'
import sys; sys.path.insert(0, "bench")
from common import machine
m = machine()
print(f"\n{m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, pytorch-lightning {m['pytorch-lightning']}")
PYEOF
    for script in harness_overhead interleaved_epochs lightning_floor step_phases profile_step startup data_pipeline results_scale sweep memory; do
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
