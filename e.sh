# Source me: `source e.sh`. Activates the environment and exports the project's variables.
# Variables already set (e.g. by .env or your shell) win over the defaults below.
_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"

# Machine-specific paths and secrets (git-ignored; NAME=value lines, see .env.example). A variable already exported
# in your shell wins over its .env line, as in the Python loader (src/cli/).
if [ -f "$_root/.env" ]; then
    while IFS= read -r _line || [ -n "$_line" ]; do
        _line="${_line#export }"
        case "$_line" in [A-Za-z_]*=*) ;; *) continue ;; esac   # comments, blank lines
        printenv "${_line%%=*}" >/dev/null || eval "export $_line"
    done <"$_root/.env"
    unset _line
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
