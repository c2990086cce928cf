# Source me: `source e.sh`. Activates the environment and exports the project's variables.
# Variables already set (e.g. by .env or your shell) win over the defaults below.
_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"

# Machine-specific paths and secrets (git-ignored); see .env.example. Variables already exported in your shell
# win over .env, as in the Python loader (src/cli.py): the exports are saved before .env and restored after it.
if [ -f "$_root/.env" ]; then
    _exported="$(export -p)"
    set -a; . "$_root/.env"; set +a
    eval "$_exported"
    unset _exported
fi

if [ -f "$_root/.venv/bin/activate" ]; then
    . "$_root/.venv/bin/activate"
elif command -v conda >/dev/null 2>&1 && conda env list 2>/dev/null | grep -q "^lightning-gin-template "; then
    conda activate lightning-gin-template
else
    echo "e.sh: no environment yet; run 'make setup' (pip) or 'conda env create -f e.yml'" >&2
fi

export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export DATA_DIR="${DATA_DIR:-$_root/data}"
export RESULTS_DIR="${RESULTS_DIR:-$_root/results}"

# Inline plots in iTerm2 (pip package itermplot): uncomment.
# export MPLBACKEND="module://itermplot" ITERMPLOT=rv

unset _root
