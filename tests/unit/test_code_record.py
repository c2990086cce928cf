"""What a run records of its code and its arithmetic (src/run/code.py, src/run/environment.py): enough for
bin/reproduce.py to rebuild the exact code, untracked files included, and compute with the same threads."""

import json
import subprocess

from src.run import code, environment, layout


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_untracked_files_are_recorded_and_rebuilt_by_the_patch(tmp_path, monkeypatch, capsys):
    """A new module that was never committed: git_dirty, listed, and in git_diff.patch as a new file, so that the
    patch applied to a checkout of the commit rebuilds it (before, the run said 'clean' and reproduce failed)."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "old.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("results/\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    (repo / "src" / "sine_series.py").write_text("def sine():\n    return 0\n")
    (repo / "src" / "old.py").write_text("x = 2\n")
    (repo / "results").mkdir()
    (repo / "results" / "ignored.txt").write_text("not code")
    monkeypatch.setattr(layout, "CODE_ROOT", repo)
    run = tmp_path / "run"
    run.mkdir()
    recorded = code.record(run)
    assert recorded["git_dirty"] and recorded["untracked"] == ["src/sine_series.py"]
    assert "warning: untracked files in the code: src/sine_series.py" in capsys.readouterr().err
    checkout = tmp_path / "checkout"
    git(repo, "worktree", "add", "-q", "--detach", str(checkout), recorded["git_commit"])
    git(checkout, "apply", str(run / layout.GIT_DIFF))
    assert (checkout / "src" / "sine_series.py").read_text() == "def sine():\n    return 0\n"
    assert (checkout / "src" / "old.py").read_text() == "x = 2\n" and not (checkout / "results").exists()


def test_threads_and_determinism_are_recorded_and_read_back(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = environment.threads()
    assert threads["torch"] == torch.get_num_threads() and threads["variables"]["OMP_NUM_THREADS"] == "1"
    assert set(environment.determinism()) == {"algorithms", "cudnn_deterministic", "cudnn_benchmark"}
    (tmp_path / layout.META).write_text(
        json.dumps({"attempts": [{"threads": {"torch": 3}}, {"threads": {"torch": 2}}]})
    )
    assert environment.recorded_threads(tmp_path) == 3  # the first attempt's: the run keeps it
    (tmp_path / layout.META).write_text(json.dumps({"attempts": [{"threads": {"torch": "x"}}]}))
    assert environment.recorded_threads(tmp_path) is None


def test_diff_runs_shows_threads_that_differ(tmp_path):
    from src.analysis.runs_table import diff_environment

    for name, count in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        meta = {"attempts": [{"threads": {"torch": count, "interop": 2, "variables": {}}}], "hostname": "h"}
        (tmp_path / name / layout.META).write_text(json.dumps(meta))
    rows = {what: (a, b) for what, a, b in diff_environment(tmp_path / "a", tmp_path / "b")}
    assert '"torch": 1' in rows["threads"][0] and '"torch": 2' in rows["threads"][1]


def test_a_reproduction_computes_with_the_runs_thread_count(tmp_path, monkeypatch):
    """bin/reproduce.py trains with the threads the run recorded, whatever this shell's OMP_NUM_THREADS says."""
    from src.analysis import reproduce

    run = tmp_path / "run"
    run.mkdir()
    (run / layout.META).write_text(json.dumps({"attempts": [{"threads": {"torch": 1}}], "cwd": str(tmp_path)}))
    seen = {}

    def fake_run(command, cwd, env, stderr, text):
        seen.update(env)
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    plan = reproduce.Plan(run, tmp_path / "repro", tmp_path, "c" * 40, None, [], [], [])
    reproduce.train(plan, tmp_path)
    assert seen["OMP_NUM_THREADS"] == "1" and seen["MKL_NUM_THREADS"] == "1"
