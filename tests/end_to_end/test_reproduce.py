"""bin/reproduce.py: a run trained again from its folder alone (commit, diff, input configs, bindings) in a clean
checkout, and compared; packages.txt and the environment rows of bin/diff_runs.py.

The runs are trained by the bin/train.py of a throwaway git repository holding this working tree's code, so the
commit and diff they record do not depend on the developer's uncommitted state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from src.cli import runs as cli_runs
from src.run import layout
from src.run.environment import installed_packages, parse_packages
from tests.helpers import assert_same_runs

FAST = (
    "digits.toy = True#digits.batch_size = 32#cnn.width = 8#training_loop.loggers = []"
    "#training_loop.num_sanity_val_steps = 0#training_loop.n_epochs = 2#training_loop.accelerator = 'cpu'"
)


def git(repo, *args):
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def train_in(repo, run, config, extra_env=None):
    """Train with the repository's own bin/train.py, from its root, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(repo), **(extra_env or {})}
    subprocess.run(
        [sys.executable, "bin/train.py", str(run), str(config), "-b", FAST],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    assert (run / layout.FINISHED).is_file()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository whose one commit is this working tree's code (bin/, src/, configs/)."""
    repo = tmp_path_factory.mktemp("repo")
    for folder in ("bin", "src", "configs"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".gitignore", repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    return repo


@pytest.fixture(scope="module")
def clean_run(repo, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "clean"
    train_in(repo, run, "configs/cnn.gin")
    return run


def copy_run(run, to):
    shutil.copytree(run, to)
    return to


def dirty(run):
    """The run's meta.json says its code had uncommitted changes (so that a git_diff.patch written here is its)."""
    meta = json.loads((run / layout.META).read_text())
    (run / layout.META).write_text(json.dumps({**meta, "git_dirty": True}))
    return run


def worktrees(repo):
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


@pytest.mark.slow
def test_a_finished_run_is_reproduced_identically(repo, clean_run, tmp_path):
    from src.analysis.reproduce import reproduce

    packages = parse_packages((clean_run / layout.PACKAGES).read_text())
    assert packages == installed_packages() and "torch" in packages and "pytorch-lightning" in packages

    plan, found = reproduce(clean_run, into=tmp_path / "repro", repo=repo)
    assert plan.caveats == [] and plan.patch is None
    assert found == []
    assert_same_runs(clean_run, tmp_path / "repro")
    meta = json.loads((tmp_path / "repro" / layout.META).read_text())
    assert meta["git_commit"] == git(repo, "rev-parse", "HEAD").strip() and meta["device"] == "cpu"
    assert len(worktrees(repo)) == 1  # the temporary checkout is gone


@pytest.mark.slow
def test_an_uncommitted_change_is_applied(repo, tmp_path, capsys):
    """The run's code differs from its commit in configs/cnn.gin, which its input config includes: the reproduction
    gets that change from git_diff.patch alone (the working tree is reverted before reproducing)."""
    from src.analysis.reproduce import reproduce

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    cnn = clone / "configs" / "cnn.gin"
    cnn.write_text(cnn.read_text().replace("supervised.lr = 0.003", "supervised.lr = 0.02"))
    (tmp_path / "mine.gin").write_text("include 'configs/cnn.gin'\ncnn.n_blocks = 1\n")
    train_in(clone, tmp_path / "run", tmp_path / "mine.gin")
    git(clone, "checkout", "--", ".")
    assert git(clone, "status", "--porcelain", "--untracked-files=no") == ""

    plan, found = reproduce(tmp_path / "run", into=tmp_path / "repro", repo=clone)
    assert plan.patch is not None and "supervised.lr = 0.02" in plan.patch.read_text()
    assert "git_diff.patch changes 1 file(s), run as part of the code: configs/cnn.gin\n" in capsys.readouterr().out
    assert found == []
    assert_same_runs(tmp_path / "run", tmp_path / "repro")
    for run in ("run", "repro"):
        assert "supervised.lr = 0.02" in (tmp_path / run / layout.CONFIG).read_text()
        assert "cnn.n_blocks = 1" in (tmp_path / run / layout.CONFIG).read_text()
    assert (tmp_path / "repro" / layout.GIT_DIFF).read_text() == (tmp_path / "run" / layout.GIT_DIFF).read_text()
    assert len(worktrees(clone)) == 1


def reproduce_cli(capsys, *argv):
    code = cli_runs.reproduce_main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.mark.slow
def test_an_unknown_commit_or_a_diff_that_does_not_apply_is_one_line(repo, clean_run, tmp_path, capsys):
    unknown = copy_run(clean_run, tmp_path / "unknown")
    meta = json.loads((unknown / layout.META).read_text())
    (unknown / layout.META).write_text(json.dumps({**meta, "git_commit": "0123456789" * 4}))
    code, out = reproduce_cli(capsys, unknown, "--repo", repo)
    assert code == 2 and out.err.splitlines() == [
        f"error: Commit {'0123456789' * 4} (from {unknown / layout.META}) is not in the repository {repo}: "
        "fetch it first."
    ]

    bad = dirty(copy_run(clean_run, tmp_path / "bad"))
    (bad / layout.GIT_DIFF).write_text(
        "diff --git a/configs/cnn.gin b/configs/cnn.gin\n--- a/configs/cnn.gin\n+++ b/configs/cnn.gin\n"
        "@@ -1,2 +1,2 @@\n-a line that is not there\n+another\n context\n"
    )
    code, out = reproduce_cli(capsys, bad, "--repo", repo)
    lines = out.err.splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in out.err + out.out
    assert lines[0].startswith(f"error: {bad / layout.GIT_DIFF} does not apply to commit ")
    assert "patch does not apply" in lines[0]

    untracked = copy_run(clean_run, tmp_path / "untracked")
    (untracked / "configs" / "cnn.gin").write_text("include 'configs/mine.gin'\n")  # never committed
    code, out = reproduce_cli(capsys, untracked, "--repo", repo)
    assert code == 2 and out.err.splitlines() == [
        f"error: {untracked / 'configs' / 'cnn.gin'} includes 'configs/mine.gin', which commit "
        f"{git(repo, 'rev-parse', 'HEAD')[:12]} (with git_diff.patch) does not hold: files that were not committed "
        "(untracked) are not recorded in a run folder."
    ]
    assert "GPU available" not in out.err + out.out  # nothing trained
    assert not any((tmp_path / f"{run}.repro").exists() for run in ("unknown", "bad", "untracked"))
    assert len(worktrees(repo)) == 1


@pytest.mark.slow
def test_a_masked_secret_in_the_diff_is_said_before_training(clean_run, repo, tmp_path):
    from src.analysis.reproduce import plan

    run = dirty(copy_run(clean_run, tmp_path / "run"))
    (run / layout.GIT_DIFF).write_text(
        "diff --git a/configs/cnn.gin b/configs/cnn.gin\n--- a/configs/cnn.gin\n+++ b/configs/cnn.gin\n"
        "@@ -1 +1,2 @@\n # A small CNN\n+# token: ***\n"
    )
    caveats = plan(run, repo=repo).caveats
    assert len(caveats) == 1 and "masked secret (***) on line(s) 6: it cannot be restored" in caveats[0]
    (run / layout.BINDINGS).write_text((run / layout.BINDINGS).read_text() + "wandb.api_key = '***'\n")
    caveats = plan(run, repo=repo).caveats
    assert caveats[0] == "bindings.txt holds a masked secret (***): it cannot be restored" and len(caveats) == 2


@pytest.mark.slow
def test_a_changed_package_version_is_listed_then_compared(repo, clean_run, tmp_path, capfd):
    run = copy_run(clean_run, tmp_path / "old")
    packages = (run / layout.PACKAGES).read_text()
    torch_line = next(line for line in packages.splitlines() if line.startswith("torch=="))
    (run / layout.PACKAGES).write_text(packages.replace(torch_line, "torch==1.0.0") + "gone-package==0.1\n")

    code, out = reproduce_cli(capfd, run, "--repo", repo)
    assert code == 0  # identical: only the record was changed
    assert out.out.splitlines()[-1].startswith("identical: history.csv (2 epochs: ")
    warning = (
        "warning: may not be identical: package versions differ (run -> here): "
        f"gone-package 0.1 -> <none>, torch 1.0.0 -> {torch_line.split('==')[1]}"
    )
    err = out.err.splitlines()
    assert warning in err and err.index(warning) < next(i for i, line in enumerate(err) if "GPU available" in line)
    assert_same_runs(run, tmp_path / "old.repro")  # the default --into


def test_differences_are_listed_with_their_size(clean_run, tmp_path, capsys):
    import torch

    from src.analysis.compare import differences
    from src.analysis.reproduce import Plan, print_result

    other = copy_run(clean_run, tmp_path / "other")
    history = (other / layout.HISTORY).read_text().splitlines()
    header, rows = (
        history[0].split(","),
        [dict(zip(history[0].split(","), r.split(","), strict=True)) for r in history[1:]],
    )
    rows[1]["valid_loss"] = str(float(rows[1]["valid_loss"]) + 0.001)
    rows[0]["epoch_time"] = "99.0"  # a timing: never compared
    (other / layout.HISTORY).write_text("\n".join([",".join(header), *(",".join(r[c] for c in header) for r in rows)]))
    results = json.loads((other / layout.EVAL_RESULTS).read_text())
    (other / layout.EVAL_RESULTS).write_text(json.dumps({**results, "test_acc": results["test_acc"] + 0.5}))
    checkpoint = torch.load(other / layout.LAST_CKPT, weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name] + 0.0001
    torch.save(checkpoint, other / layout.LAST_CKPT)

    found = differences(clean_run, other)
    assert [(d.file, d.item) for d in found] == [
        (layout.HISTORY, "valid_loss (epoch 2)"),
        (layout.EVAL_RESULTS, "test_acc"),
        (layout.LAST_CKPT, name),
    ]
    assert [round(d.difference, 6) for d in found] == [0.001, 0.5, 0.0001]
    assert [d.item for d in differences(clean_run, other, tolerance=0.01)] == ["test_acc"]
    assert differences(clean_run, other, tolerance=1.0) == []

    plan = Plan(clean_run, other, tmp_path, "", None, [], [])
    assert print_result(found, plan, 0.0) == 1
    assert "3 differences" in capsys.readouterr().out
    assert print_result([], plan, 1.0) == 0
    assert capsys.readouterr().out.startswith("identical within 1: history.csv")


def test_diff_runs_shows_the_environment(clean_run, tmp_path, capsys):
    from src.analysis.runs_table import diff_environment

    other = copy_run(clean_run, tmp_path / "other")
    meta = json.loads((other / layout.META).read_text())
    (other / layout.META).write_text(json.dumps({**meta, "hostname": "node7", "device": "cuda (NVIDIA H200)"}))
    (other / layout.PACKAGES).write_text((other / layout.PACKAGES).read_text() + "extra-package==2.0\n")
    (other / layout.GIT_DIFF).write_text("diff --git a/x b/x\n")
    rows = diff_environment(clean_run, other)
    assert rows[:2] == [("host", meta["hostname"], "node7"), ("device", "cpu", "cuda (NVIDIA H200)")]
    assert rows[2][0] == layout.GIT_DIFF and rows[2][1] == "none" and rows[2][2].startswith("1 lines, sha1 ")
    assert rows[3:] == [("package extra-package", "<none>", "2.0")]
    assert diff_environment(clean_run, clean_run) == []

    assert cli_runs.diff_runs_main([str(clean_run), str(other)]) == 0
    out = capsys.readouterr().out
    assert "same operative config" in out and "4 environment differences" in out and "node7" in out


DAMAGED_META = {
    "not an object": b"[]",
    "not UTF-8": b"\xff\xfe\x00",
    "versions of the wrong type": b'{"versions": "x", "attempts": 3, "argv": 5, "cwd": []}',
}


@pytest.mark.parametrize("content", DAMAGED_META.values(), ids=DAMAGED_META.keys())
def test_a_damaged_meta_json_is_named_or_read_as_empty(tmp_path, capsys, content):
    """bin/diff_runs.py goes on without a damaged meta.json; bin/reproduce.py, which needs its commit, says in one
    line that meta.json is damaged or records no commit. Built by hand: nothing is trained."""
    runs = []
    for name in ("a", "b"):
        run = tmp_path / name
        (run / layout.INPUT_CONFIGS).mkdir(parents=True)
        (run / layout.CONFIG).write_text("training_loop.n_epochs = 1\n")
        (run / layout.INPUT_CONFIGS / "x.gin").write_text("training_loop.n_epochs = 1\n")
        (run / layout.FINISHED).touch()
        runs.append(run)
    (runs[0] / layout.META).write_bytes(content)
    (runs[1] / layout.META).write_text(json.dumps({"hostname": "node7", "versions": {"python": "3.0", "torch": "1"}}))
    assert cli_runs.diff_runs_main([str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert "node7" in out and "3.0" in out and "torch" in out
    assert layout.stopped_early(runs[0]) is None

    code, out = reproduce_cli(capsys, runs[0], "--repo", ROOT)
    assert code == 2 and len(out.err.splitlines()) == 1 and "Traceback" not in out.err
    assert f"error: {runs[0] / layout.META} " in out.err
    assert ("is damaged" in out.err) == (content != DAMAGED_META["versions of the wrong type"])


CHANGE = (
    "diff --git a/configs/cnn.gin b/configs/cnn.gin\n--- a/configs/cnn.gin\n+++ b/configs/cnn.gin\n"
    "@@ -1 +1,2 @@\n # A small CNN\n+import os\n"
)


def test_a_reproduction_trains_into_a_new_folder_outside_the_code(repo, clean_run, tmp_path, capsys):
    """Issue 27.5: a received folder that brings its own finished `.repro` (or any folder at --into) is never
    compared as it is: that would call a run identical without training it; --into in the code is refused as
    bin/train.py refuses it; a training that fails before its folder exists names no log file that is not there."""
    run = copy_run(clean_run, tmp_path / "received")
    copy_run(clean_run, tmp_path / "received.repro")  # "identical" to the run, trained by nobody here
    code, out = reproduce_cli(capsys, run, "--repo", repo)
    assert code == 2 and out.err.splitlines() == [
        f"error: {str(tmp_path / 'received.repro')!r} already exists: a reproduction trains into a new folder (a run "
        "found there would be compared as it is, which proves nothing). Delete it, or choose another --into."
    ]
    assert "identical" not in out.out
    for inside in (ROOT / "src" / "repro", repo / "configs" / "repro"):
        code, out = reproduce_cli(capsys, run, "--repo", repo, "--into", inside)
        assert code == 2 and len(out.err.splitlines()) == 1 and "repository" in out.err, out.err
        assert not inside.exists()

    broken = copy_run(clean_run, tmp_path / "broken")
    (broken / layout.BINDINGS).write_text("no_such_configurable.x = 1\n")
    code, out = reproduce_cli(capsys, broken, "--repo", repo)
    error = out.err.splitlines()[-1]
    assert code == 2 and error.startswith("error: The reproduction's training failed (exit code 2): error: ")
    assert "no_such_configurable" in error and layout.STDERR not in error
    assert not (tmp_path / "broken.repro").exists()


def test_a_patch_the_record_does_not_know_or_that_is_no_file_is_refused(repo, clean_run, tmp_path, capsys):
    """Issue 27.13: a git_diff.patch is code the reproduction runs: in a run whose meta.json says its code was clean
    it is refused, naming the files it would change; one that is no regular file is damaged, never skipped."""
    forged = copy_run(clean_run, tmp_path / "forged")
    (forged / layout.GIT_DIFF).write_text(CHANGE)
    code, out = reproduce_cli(capsys, forged, "--repo", repo)
    assert code == 2 and out.err.splitlines() == [
        f"error: {forged / layout.GIT_DIFF} changes configs/cnn.gin, but {forged / layout.META} says the run's code "
        "was clean (git_dirty false): refusing to run code the run did not record. Remove the patch to reproduce "
        "the clean commit."
    ]
    fifo = dirty(copy_run(clean_run, tmp_path / "fifo"))
    (fifo / layout.GIT_DIFF).unlink(missing_ok=True)
    os.mkfifo(fifo / layout.GIT_DIFF)
    code, out = reproduce_cli(capsys, fifo, "--repo", repo)
    assert code == 2 and out.err.splitlines() == [
        f"error: {fifo / layout.GIT_DIFF} is damaged ({fifo / layout.GIT_DIFF} is not a regular file): the run "
        "cannot be reproduced from it."
    ]
    assert not any((tmp_path / f"{name}.repro").exists() for name in ("forged", "fifo"))
    assert len(worktrees(repo)) == 1


@pytest.mark.slow
def test_a_sweep_job_with_one_thread_reproduces_identically_in_a_shell_with_more(repo, tmp_path, monkeypatch):
    """Issue 26.1: the local runner gives each job OMP_NUM_THREADS=1 (cores // jobs); reproduced in a shell that
    says 2 (or nothing), the run is trained with the 1 thread it recorded, so the result is identical (it used to
    differ in every metric)."""
    from src.analysis.reproduce import reproduce

    run = tmp_path / "job"
    train_in(repo, run, "configs/cnn.gin", {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    meta = json.loads((run / layout.META).read_text())
    assert meta["attempts"][0]["threads"]["torch"] == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    plan, found = reproduce(run, into=tmp_path / "repro", repo=repo)
    assert found == []
    assert_same_runs(run, tmp_path / "repro")
    repro = json.loads((tmp_path / "repro" / layout.META).read_text())
    assert repro["attempts"][0]["threads"]["torch"] == 1
