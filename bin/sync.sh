#!/usr/bin/env bash
# bin/sync.sh DEST [--watch]: copy the code to a cluster or another machine with rsync, e.g.
#   bin/sync.sh me@cluster:~/project            # once
#   bin/sync.sh me@cluster:~/project --watch    # again after every change (watchman-wait or inotifywait)
# Never copies results, data, .venv, .env or caches; files deleted here are deleted there too.
set -euo pipefail
usage() { echo "usage: bin/sync.sh DEST [--watch]   (DEST: [user@]host:path or a local folder)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    ""|-*) usage >&2; exit 2 ;;  # DEST is never an option: rsync would read it as one
esac
dest=$1; watch=${2:-}
if [ $# -gt 2 ] || { [ -n "$watch" ] && [ "$watch" != "--watch" ]; }; then usage >&2; exit 2; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
excludes=(--include=/results/README.md --exclude='/results/*' --exclude=/data/ --exclude=/.venv/ --exclude=/.env --exclude=.git/
          --exclude=__pycache__/ --exclude=.pytest_cache/ --exclude=.ruff_cache/ --exclude='experiments/*/*/logs/')

sync() { rsync -az --delete "${excludes[@]}" "$root/" "$dest"; echo "$(date +%T) synced to $dest"; }

sync
[ "$watch" = "--watch" ] || exit 0
if command -v watchman-wait >/dev/null; then
    while watchman-wait "$root" -p 'bin/**' 'src/**' 'configs/**' 'experiments/**' 'tests/**' >/dev/null; do sync; done
elif command -v inotifywait >/dev/null; then
    while inotifywait -qq -r -e modify,create,delete,move --exclude '/(results|data|\.venv|\.git)/' "$root"; do sync; done
else
    echo "bin/sync.sh: --watch needs watchman (watchman-wait) or inotify-tools (inotifywait)" >&2; exit 1
fi
