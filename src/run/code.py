"""The code a run ran, recorded at each attempt's start so that bin/reproduce.py can rebuild it exactly: the git
commit, whether the tree differed from it, and git_diff.patch, which holds the uncommitted changes of tracked files
and every untracked file git does not ignore (as new files: a module or config that was never committed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from src.run import layout

MAX_UNTRACKED_BYTES = 1 << 20  # an untracked file larger than this (data, not code) is listed, not copied


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=layout.CODE_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def untracked() -> list[str]:
    """Files in the repository that git neither tracks nor ignores, relative to it."""
    listed = git("ls-files", "--others", "--exclude-standard", "-z")
    return sorted(p for p in (listed or "").split("\0") if p)


def new_file_diff(path: str) -> str:
    """A patch that creates `path` (git's own format: `git apply` creates it)."""
    diff = subprocess.run(
        ["git", "diff", "--no-index", "--binary", "--", "/dev/null", path],
        cwd=layout.CODE_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return diff.stdout  # exit code 1: there are differences


def record(run_dir: Path) -> dict[str, Any]:
    """Write git_diff.patch; return meta.json's fields (git_commit, git_dirty, untracked: what the patch adds) and
    say which untracked files the run's code includes (one warning line)."""
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    changed = git("status", "--porcelain", "--untracked-files=no")
    new = untracked()
    copied = [
        p
        for p in new
        if (layout.CODE_ROOT / p).is_file() and (layout.CODE_ROOT / p).stat().st_size <= MAX_UNTRACKED_BYTES
    ]
    patch = (git("diff", "HEAD", "--binary") or "") + "".join(new_file_diff(p) for p in copied)
    layout.write_atomic(run_dir / layout.GIT_DIFF, patch)
    if new:
        too_big = sorted(set(new) - set(copied))
        shown = ", ".join(new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
        aside = f" ({len(too_big)} over {MAX_UNTRACKED_BYTES >> 20} MB not copied)" if too_big else ""
        print(f"warning: untracked files in the code: {shown}; recorded in {layout.GIT_DIFF}{aside}", file=sys.stderr)
    return {
        "git_commit": commit.strip(),
        "git_dirty": bool((changed or "").strip()) or bool(new),
        "untracked": new,
    }
