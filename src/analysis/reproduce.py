"""bin/reproduce.py RUN: train a run again from what its folder holds, and say whether the result is the same.

The recorded commit is checked out into a temporary `git worktree` (removed afterwards), the recorded
git_diff.patch applied, and that checkout's own bin/train.py trains the stored input configs and bindings into a
new run folder (default `<RUN>.repro`); then src/analysis/compare.py compares the two. What would make the result
differ (other package versions, another device kind, masked secrets in the diff) is said before training; what
makes a reproduction impossible (an unknown commit, a diff that does not apply) is an error, and nothing is trained.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from src.config.bindings import INCLUDE, parse_bindings
from src.errors import UserError, one_line
from src.run import environment, layout, reading
from src.run.secrets import MASK
from src.run.session import check_save_dir
from src.run.status import status_of

if TYPE_CHECKING:
    from src.analysis.compare import Difference


@dataclass
class Plan:
    """Everything a reproduction needs, read from the run folder and checked against the repository."""

    run: Path
    into: Path
    repo: Path
    commit: str
    patch: Path | None  # None when the run had no uncommitted change
    configs: list[Path]
    bindings: list[str]
    caveats: list[str] = field(default_factory=list)  # why the result may not be identical


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True)


def repository(repo: str | Path | None) -> Path:
    """The top folder of the git repository `repo` (default: the one this code lives in)."""
    path = Path(repo) if repo else layout.CODE_ROOT
    found = git(path, "rev-parse", "--show-toplevel") if path.is_dir() else None
    if found is None or found.returncode != 0:
        raise UserError(f"{str(path)!r} is not a git repository: pass --repo with a clone of the run's repository.")
    return Path(found.stdout.strip())


def input_configs(run: Path, meta: dict) -> tuple[list[Path], list[str]]:
    """The stored copies of the input configs in their command-line order (from meta.json's argv when the run came
    from bin/train.py, else the order in which they were written), and caveats."""
    stored = [p for p in (run / layout.INPUT_CONFIGS).glob("*") if p.is_file()]
    stored.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not stored:
        raise UserError(
            f"{run} holds no input configs ({layout.INPUT_CONFIGS}/ is missing or empty): cannot retrain it."
        )
    argv = meta.get("argv") or []
    if len(stored) > 1 and len(argv) > 2 and Path(argv[0]).name == "train.py":
        # Named as src/run/layout.save_inputs names them: a repeated file name gets its index as a prefix.
        names, used = [], set()
        for i, path in enumerate(part for part in argv[2].split("#") if part.strip()):
            name = Path(path.strip()).name
            names.append(name if name not in used else f"{i}_{name}")
            used.add(name)
        by_name = {p.name: p for p in stored}
        if sorted(names) == sorted(by_name):
            return [by_name[n] for n in names], []
    caveat = [f"the order of the {len(stored)} input configs is not recorded: using the order they were written in"]
    return stored, caveat if len(stored) > 1 else []


def text(path: Path) -> str:
    """A file of the run folder (src/run/reading.py: a regular file of bounded size); one line if it is damaged."""
    try:
        return reading.read_text(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is damaged ({str(e).splitlines()[0]}): the run cannot be reproduced from it.") from e


def recorded_patch(run: Path, meta: dict, caveats: list[str]) -> Path | None:
    """The run's git_diff.patch if it holds a change (None without one), checked against meta.json: a patch is
    code that the reproduction runs, so one the record says the run did not have is refused, not applied."""
    path = run / layout.GIT_DIFF
    if not path.exists() and not path.is_symlink():
        if meta.get("git_dirty"):
            caveats.append(f"the run's code had uncommitted changes but {layout.GIT_DIFF} is missing")
        return None
    if not text(path).strip():
        return None
    if meta.get("git_dirty") is False:
        raise UserError(
            f"{path} changes {', '.join(patched_files(path)) or 'files'}, but {run / layout.META} says the run's code "
            "was clean (git_dirty false): refusing to run code the run did not record. Remove the patch to "
            "reproduce the clean commit."
        )
    return path


def patched_files(patch: Path) -> list[str]:
    """The files a patch changes (its `+++ b/` and `rename to` lines; `--- a/` of deleted ones)."""
    found: dict[str, None] = {}
    for line in text(patch).splitlines():
        for prefix in ("+++ b/", "--- a/", "rename to "):
            if line.startswith(prefix):
                found[line.removeprefix(prefix).strip()] = None
    return list(found)


def patch_caveats(patch: Path) -> list[str]:
    """Masked secrets in git_diff.patch cannot be restored: the code would hold '***' where the secret was."""
    lines = [i for i, line in enumerate(text(patch).splitlines(), 1) if MASK in line and line[:1] in "+- "]
    if not lines:
        return []
    return [f"{patch} has a masked secret ({MASK}) on line(s) {', '.join(map(str, lines[:5]))}: it cannot be restored"]


def includes(configs: list[Path]) -> list[tuple[Path, str]]:
    """(config, included path) for every `include` line of the input configs."""
    return [(config, match["path"]) for config in configs for match in INCLUDE.finditer(text(config))]


def environment_caveats(run: Path, meta: dict) -> list[str]:
    """Package versions, Python version and device kind of the run against this machine."""
    caveats = []
    recorded, complete = environment.recorded_packages(run)
    here = environment.installed_packages()
    changed = environment.package_differences(recorded, here, None if complete else set(recorded))
    if changed:
        listed = ", ".join(f"{name} {a} -> {b}" for name, a, b in changed)
        caveats.append(f"package versions differ (run -> here): {listed}")
    if not complete:
        caveats.append(f"the run recorded only {len(recorded)} package versions (no {layout.PACKAGES})")
    python = meta.get("versions", {}).get("python")
    if python and python != platform.python_version():
        caveats.append(f"Python differs (run -> here): {python} -> {platform.python_version()}")
    accelerator = parse_bindings(text(run / layout.CONFIG)).get("training_loop.accelerator", "auto")
    device = environment.expected_device(str(accelerator))
    if meta.get("device") is None:
        caveats.append(f"the run did not record its device kind; here: {device}")
    elif meta["device"] != device:
        caveats.append(f"device kind differs (run -> here): {meta['device']} -> {device}")
    return caveats


def plan(run: str | Path, into: str | Path | None = None, repo: str | Path | None = None) -> Plan:
    """Read and check what the reproduction needs; UserError for what makes it impossible."""
    run = Path(run)
    if not layout.is_run_dir(run):
        raise UserError(f"{str(run)!r} is not a run folder (no {layout.CONFIG} inside).")
    if status_of(run) != "finished":
        raise UserError(f"{str(run)!r} is {status_of(run)}, not finished: there is no final result to compare.")
    into = Path(into) if into else run.with_name(run.name + ".repro")
    if into.resolve() == run.resolve():
        raise UserError(f"--into {str(into)!r} is the run itself: choose another folder.")
    if into.is_symlink() or (into.exists() and (not into.is_dir() or any(into.iterdir()))):
        raise UserError(
            f"{str(into)!r} already exists: a reproduction trains into a new folder (a run found there would be "
            "compared as it is, which proves nothing). Delete it, or choose another --into."
        )
    repo = repository(repo)
    check_save_dir(into)  # as bin/train.py would: the code of this repository and of the run's are no place for it
    if any(into.resolve().is_relative_to(repo / name) for name in layout.CODE_FOLDERS):
        raise UserError(f"--into {str(into)!r} lies in the code of the repository {repo}: choose a folder outside it.")
    meta = layout.read_meta(run, strict=True)
    commit = meta.get("git_commit")
    if not commit:
        raise UserError(f"{run / layout.META} records no git commit: the code that trained the run is unknown.")
    if git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise UserError(f"Commit {commit} (from {run / layout.META}) is not in the repository {repo}: fetch it first.")
    caveats: list[str] = []
    patch = recorded_patch(run, meta, caveats)
    configs, order = input_configs(run, meta)
    stored_bindings = text(run / layout.BINDINGS) if (run / layout.BINDINGS).exists() else ""
    bindings = [line for line in stored_bindings.splitlines() if line.strip()]
    changes = [a for a in meta.get("attempts", []) if a.get("config_changes")]
    if changes:
        caveats.append(f"the run continued {len(changes)} time(s) with a changed config (meta.json config_changes)")
    caveats += [
        f"{config.name} includes {path}, outside the repository: its content now is used, not the run's"
        for config, path in includes(configs)
        if Path(path).is_absolute()
    ]
    masked = [p.name for p in configs if MASK in text(p)] + [layout.BINDINGS] * any(MASK in b for b in bindings)
    if masked:
        verb = "holds" if len(masked) == 1 else "hold"
        caveats.append(f"{', '.join(masked)} {verb} a masked secret ({MASK}): it cannot be restored")
    caveats += order + (patch_caveats(patch) if patch else []) + environment_caveats(run, meta)
    return Plan(run, into, repo, commit, patch, configs, bindings, caveats)


@contextmanager
def checkout(plan: Plan) -> Iterator[Path]:
    """A temporary worktree of the plan's commit with its diff applied; removed on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="reproduce-"))
    tree = folder / "checkout"
    try:
        added = git(plan.repo, "worktree", "add", "--detach", "--quiet", str(tree), plan.commit)
        if added.returncode != 0:
            raise UserError(f"Cannot check out {plan.commit} into a worktree: {one_line(added.stderr, '; ')}")
        if plan.patch is not None:
            applied = git(tree, "apply", "--whitespace=nowarn", str(plan.patch.resolve()))
            if applied.returncode != 0:
                masked = " (it holds masked secrets, which cannot be restored)" if patch_caveats(plan.patch) else ""
                why = one_line(applied.stderr, "; ")
                raise UserError(f"{plan.patch} does not apply to commit {plan.commit[:12]}{masked}: {why}")
        for config, path in includes(plan.configs):
            if not Path(path).is_absolute() and not (tree / path).is_file():
                raise UserError(
                    f"{config} includes {path!r}, which commit {plan.commit[:12]} (with {layout.GIT_DIFF}) does not "
                    "hold: files that were not committed (untracked) are not recorded in a run folder."
                )
        yield tree
    finally:
        git(plan.repo, "worktree", "remove", "--force", str(tree))
        git(plan.repo, "worktree", "prune")
        shutil.rmtree(folder, ignore_errors=True)


def train(plan: Plan, tree: Path) -> None:
    """Run the checkout's own bin/train.py (its code, not this one) on the stored inputs."""
    meta = layout.read_meta(plan.run)
    data = os.environ.get("DATA_DIR") or str(Path(meta.get("cwd") or ".") / "data")
    command = [
        sys.executable,
        str(tree / "bin" / "train.py"),
        str(plan.into.resolve()),
        "#".join(str(p.resolve()) for p in plan.configs),
        "-b",
        "#".join(plan.bindings),
    ]
    env = {**os.environ, "PYTHONPATH": str(tree), "DATA_DIR": os.path.abspath(data)}
    if (threads := environment.recorded_threads(plan.run)) is not None:  # what the run computed with
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(command, cwd=tree, env=env, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        why = errors[-1] if errors else (done.stderr.strip().splitlines() or ["no output"])[-1]
        where = f"; its log: {plan.into / layout.STDERR}" if (plan.into / layout.STDERR).is_file() else ""
        raise UserError(f"The reproduction's training failed (exit code {done.returncode}): {why}{where}")


def reproduce(
    run: str | Path, into: str | Path | None = None, tolerance: float = 0.0, repo: str | Path | None = None
) -> tuple[Plan, list[Difference]]:
    """Retrain `run` into `into` and return (plan, differences): no differences means identical."""
    from src.analysis.compare import differences

    if not tolerance >= 0:
        raise UserError(f"--tolerance must be a number >= 0, got {tolerance}.")
    reproduction = plan(run, into, repo)
    described = f"commit {reproduction.commit[:12]}" + (f" + {layout.GIT_DIFF}" if reproduction.patch else "")
    print(f"reproducing {reproduction.run} ({described}) into {reproduction.into}", flush=True)
    if reproduction.patch is not None:
        files = patched_files(reproduction.patch)
        listed = ", ".join(files)
        print(f"{layout.GIT_DIFF} changes {len(files)} file(s), run as part of the code: {listed}", flush=True)
    for caveat in reproduction.caveats:
        print(f"warning: may not be identical: {caveat}", file=sys.stderr, flush=True)
    with checkout(reproduction) as tree:
        train(reproduction, tree)
    return reproduction, differences(reproduction.run, reproduction.into, tolerance)


def print_result(found: list, plan: Plan, tolerance: float) -> int:
    """'identical' (exit code 0) or a table of what differs and by how much (exit code 1)."""
    import pandas as pd

    from src.analysis.compare import summary
    from src.analysis.tables import print_frame

    within = f" within {tolerance:g}" if tolerance else ""
    if not found:
        print(f"identical{within}: {summary(plan.run)}")
        return 0
    rows = [(d.file, d.item, d.original, d.reproduced, "-" if d.difference is None else d.difference) for d in found]
    frame = pd.DataFrame(rows, columns=["file", "item", "original", "reproduced", "|difference|"])
    title = f"{len(found)} difference{'s' if len(found) > 1 else ''}{within}: {plan.run} (original), {plan.into}"
    print_frame(frame, title)
    return 1
