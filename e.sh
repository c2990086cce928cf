# Source me: `source e.sh`. Activates the environment and exports the project's variables.
# Variables already set (by your shell or .env) win over the defaults below.
_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"

if [ -f "$_root/.venv/bin/activate" ]; then
    . "$_root/.venv/bin/activate"
elif command -v conda >/dev/null 2>&1 && conda env list 2>/dev/null | grep -q "^lightning-gin-template "; then
    conda activate lightning-gin-template
else
    echo "e.sh: no environment yet; run 'make setup' (pip) or 'conda env create -f e.yml'" >&2
fi

# Machine-specific paths and secrets (git-ignored; NAME=value lines, see .env.example), read by python-dotenv as
# every bin/ script reads them (src/cli/common.py): values are taken literally ($, spaces and $(...) are never
# expanded or run; only ${NAME} is replaced, as dotenv does), and a variable already exported wins over its line.
if [ -f "$_root/.env" ]; then
    _exports="$(python3 - "$_root/.env" <<'PYTHON'
import os, re, shlex, sys
try:
    from dotenv import dotenv_values, load_dotenv
except ImportError:
    sys.exit("e.sh: .env not loaded: python-dotenv is not installed here (run 'make setup')")
before = set(os.environ)
load_dotenv(sys.argv[1], override=False)
for name in dotenv_values(sys.argv[1], interpolate=False):
    if name in before or name not in os.environ:
        continue
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        print(f"export {name}={shlex.quote(os.environ[name])}")
    else:
        print(f"e.sh: .env: {name!r} is not a shell variable name; skipped", file=sys.stderr)
PYTHON
)" && eval "$_exports"
    unset _exports
fi

export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export DATA_DIR="${DATA_DIR:-$_root/data}"
export RESULTS_DIR="${RESULTS_DIR:-$_root/results}"

# Inline plots in iTerm2: `pip install -e '.[iterm]'` (itermplot), then uncomment.
# export MPLBACKEND="module://itermplot" ITERMPLOT=rv

unset _root
