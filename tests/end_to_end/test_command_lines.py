"""The command lines end to end: training then evaluating, --print-config, repeated configs and bindings, and bin/runs.py
on a real terminal and into a pipe."""

import json
import os
import re
import select
import subprocess
import sys

import pytest

from src.cli.training import train_main
from src.run import layout
from tests.helpers import FAST, ROOT, mixed_runs


def test_train_then_evaluate_end_to_end(tmp_path, env):
    run = tmp_path / "cli_run"
    bindings = "#".join([*FAST, "training_loop.n_epochs = 2"])
    train = subprocess.run(
        [sys.executable, "bin/train.py", str(run), "configs/cnn.gin#configs/debug.gin", "-b", bindings],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert (run / layout.FINISHED).exists()
    assert sorted(p.name for p in (run / layout.INPUT_CONFIGS).iterdir()) == ["cnn.gin", "debug.gin"]
    assert "step 1/" in (run / layout.STDOUT).read_text()  # progress lines reach stdout.txt
    meta = json.loads((run / layout.META).read_text())
    assert meta["argv"][0] == "bin/train.py" and "cli_run" in meta["command"]

    evaluate = subprocess.run(
        [sys.executable, "bin/evaluate.py", str(run), "--checkpoint", "best"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluate.returncode == 0, evaluate.stderr
    assert "Tip:" not in evaluate.stderr + evaluate.stdout and "srun" not in evaluate.stderr  # quiet, as training
    result = json.loads((run / "eval_results_best.json").read_text())
    after_training = json.loads((run / layout.EVAL_RESULTS).read_text())  # best.ckpt, tested at the end
    assert result["checkpoint"] == "best" and result["test_acc"] == after_training["test_acc"]


def test_print_config_prints_what_the_run_would_use_and_writes_nothing(tmp_path, env):
    out = subprocess.run(
        [
            sys.executable,
            "bin/train.py",
            str(tmp_path / "run"),
            "configs/cnn.gin",
            "-b",
            "W=4#cnn.width=%W",  # a macro for a typed parameter
            "-b",
            "training_loop.accelerator='gpu'",  # a GPU config, shown on a machine without one
            "--print-config",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "cnn.width = %W\n" in out.stdout and "supervised.lr = 0.003\n" in out.stdout  # bound
    assert "training_loop.accelerator = 'gpu'\n" in out.stdout
    assert "digits.toy = False\n" in out.stdout and "supervised.loss = 'cross_entropy'\n" in out.stdout  # defaults
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_repeated_bindings_and_configs_all_take_effect(tmp_path):
    run = tmp_path / "run"
    configs = [str(ROOT / "configs/cnn.gin"), str(ROOT / "configs/debug.gin")]  # two CONFIGS arguments
    fast = "#".join(b for b in FAST if "n_epochs" not in b)
    code = train_main(
        [str(run), *configs, "-b", fast, "-b", "supervised.lr = 0.0123", "-b", "training_loop.n_epochs = 1"]
    )
    assert code == 0
    operative = (run / layout.CONFIG).read_text()
    assert "supervised.lr = 0.0123" in operative  # the first -b was lost before
    assert "training_loop.n_epochs = 1" in operative
    assert "training_loop.limit_train_batches = 5" in operative  # from the second config file
    lines = (run / layout.BINDINGS).read_text().splitlines()
    assert lines == [*fast.split("#"), "supervised.lr = 0.0123", "training_loop.n_epochs = 1"]
    assert sorted(p.name for p in (run / layout.INPUT_CONFIGS).iterdir()) == ["cnn.gin", "debug.gin"]


@pytest.mark.slow
def test_later_binding_overrides_earlier(tmp_path):
    """Order is kept: the last -b wins, as with '#'."""
    from src import config

    config.parse([str(ROOT / "configs/cnn.gin")], ["supervised.lr = 0.5", "supervised.lr = 0.25"])
    import gin

    assert gin.query_parameter("supervised.lr") == 0.25


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminal")
def test_bin_runs_on_a_real_terminal(tmp_path, env):
    """bin/runs.py with a pseudo-terminal as stdout: fitted to COLUMNS, the dropped columns named."""
    master, slave = os.openpty()
    env = {**env, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "xterm"}
    env.pop("TTY_COMPATIBLE", None)
    env.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "bin/runs.py", str(mixed_runs(tmp_path))], cwd=ROOT, env=env, stdout=slave, stderr=slave
    )
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode()).splitlines()
    assert max(map(len, lines[:-1])) <= 100
    assert lines[-1].startswith("not shown, the terminal is too narrow: ")
    assert len([line for line in lines if line.startswith("│")]) == 3


def test_output_piped_into_head_stops_quietly(env):
    """`bin/runs.py | head`: the reader leaves early; no error line, the exit code of a Unix tool killed by SIGPIPE."""
    script = (
        "import sys\nfrom src.cli.common import Parser, run_main\n"
        "sys.exit(run_main(lambda args: [print('row', i) for i in range(10**6)], Parser(prog='bin/runs.py'), []))\n"
    )
    done = subprocess.run(
        ["bash", "-c", f'set -o pipefail; "{sys.executable}" -c "$0" | head -2', script],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert (done.stdout, done.stderr, done.returncode) == ("row 0\nrow 1\n", "", 141)
