"""Untrusted run folders and dangerous inputs (issue 13): reading a received run folder never runs code, a save
folder never overwrites the repository nor hides runs, no value can break out of a generated script's line, and
error lines are masked."""

import os
import shutil
from pathlib import Path

import pytest

from src.errors import UserError
from src.run import layout
from src.run import lock as run_lock
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run on toy digits (shared: the tests below copy it)."""
    import gin

    from src import config
    from src.training_loop import training_loop
    from tests.helpers import FAST

    run = tmp_path_factory.mktemp("trained") / "run"
    files = [str(ROOT / "configs/cnn.gin")]
    bindings = [*FAST, "training_loop.n_epochs = 1"]
    config.parse(files, bindings)
    training_loop(str(run), config_files=files, bindings=bindings)
    gin.clear_config()
    return run


def received(trained, tmp_path, payload: str) -> tuple[Path, Path]:
    """A copy of the trained run whose config.gin starts with `payload`; (run, marker file the payload creates)."""
    run = tmp_path / "received"
    shutil.copytree(trained, run)
    marker = tmp_path / "PWNED"
    config = run / layout.CONFIG
    config.write_text(payload.format(marker=marker) + "\n" + config.read_text())
    return run, marker


DYNAMIC = """\
from __gin__ import dynamic_registration
import os
os.system.command = 'touch {marker}'
supervised.lr = @os.system()"""


def test_the_template_own_config_loads(trained):
    from src.config.bindings import check_run_config, known_configurable
    from src.results import load_model

    check_run_config((trained / layout.CONFIG).read_text(), trained / layout.CONFIG, known_configurable)
    assert not load_model(trained).training


def test_loading_a_received_run_never_runs_its_code(trained, tmp_path, monkeypatch, capsys):
    from src.cli.training import evaluate_main
    from src.results import load_data, load_model

    run, marker = received(trained, tmp_path, DYNAMIC)
    for load in (load_model, load_data):
        with pytest.raises(UserError, match=r"config\.gin, line 1: refused to read an import") as error:
            load(run)
        assert "\n" not in str(error.value)
    assert evaluate_main([str(run)]) == 2
    assert "config.gin, line 1: refused" in capsys.readouterr().err
    assert not marker.exists()

    # second route: a module next to the runs, importable because its folder is on sys.path (the repository root
    # is, and results/ lies inside it)
    package = tmp_path / "shared_runs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shutil.rmtree(run)
    run, marker = received(trained, tmp_path, "import shared_runs.helper")
    with pytest.raises(UserError, match=r"line 1: refused to read an import \('import shared_runs.helper'\)"):
        load_model(run)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, refused",
    [
        ("supervised.lr = @os.system()", "a reference to @os.system"),
        ("digits.batch_size = @mlflow()", r"a reference to @mlflow \(gin would call it while reading\)"),
        ("supervised.optimizer = @cnn", "a reference to @cnn"),
        ("os.system.command = 'ls'", "a binding of 'os.system'"),
        ("include '/tmp/elsewhere.gin'", "an include"),
        ("supervised.lr = foo(1)", "unreadable gin config"),
    ],
)
def test_a_received_config_holds_only_registered_bindings_of_literals(trained, tmp_path, payload, refused):
    from src.results import load_model

    run, _ = received(trained, tmp_path, payload)
    with pytest.raises(UserError, match=rf"{layout.CONFIG}, line 1: .*{refused}"):
        load_model(run)


def test_macros_scopes_and_literals_of_registered_configurables_are_read():
    from src import config
    from src.config.bindings import check_run_config, known_configurable

    config.register_everything()
    text = "LR = 0.01\nsupervised.lr = %LR\nscope/cnn.width = 8\ntraining_loop.callbacks = ['progress_log']\n"
    check_run_config(text, "config.gin", known_configurable)


def test_links_that_stay_inside_a_subfolder_of_the_run_are_fine(tmp_path):
    from src.run.session import check_plain

    run = tmp_path / "run"
    (run / "wandb" / "run-1").mkdir(parents=True)
    (run / "wandb" / "latest-run").symlink_to("run-1")  # as wandb writes them
    (run / "wandb" / "run-1" / "debug-core.log").symlink_to(tmp_path / "wandb_cache" / "core.log")
    (run / "tensorboard" / "version_1").mkdir(parents=True)
    (run / "tensorboard" / "latest").symlink_to("version_1")
    check_plain(run)
    (run / "tensorboard" / "escape").symlink_to("../..")  # the folder above the run
    with pytest.raises(UserError, match="escape is a link out of it"):
        check_plain(run)
    (run / "tensorboard" / "escape").unlink()
    (run / "stdout.txt").symlink_to("LOCK")  # inside, but a top-level file the run opens by name
    with pytest.raises(UserError, match="stdout.txt is a link at its top level"):
        check_plain(run)


def test_a_lock_or_heartbeat_that_is_no_plain_file_marks_its_run_damaged_and_the_others_load(trained, tmp_path):
    from src.results import load_runs

    for name in ("fifo", "folder", "ok"):
        shutil.copytree(trained, tmp_path / name)
        (tmp_path / name / layout.FINISHED).unlink()
        (tmp_path / name / layout.HEARTBEAT).write_text("5\n")
    (tmp_path / "fifo" / run_lock.LOCK).unlink(missing_ok=True)
    os.mkfifo(tmp_path / "fifo" / run_lock.LOCK)  # opening it to read would block for ever
    (tmp_path / "folder" / layout.HEARTBEAT).unlink()
    (tmp_path / "folder" / layout.HEARTBEAT).mkdir()
    runs = load_runs(tmp_path).set_index("run")
    assert runs.loc[str(tmp_path / "fifo"), "status"] == "damaged"
    assert "LOCK" in runs.loc[str(tmp_path / "fifo"), "damaged"]
    assert runs.loc[str(tmp_path / "folder"), "status"] == "dead"  # its heartbeat tells nothing: not running
    assert runs.loc[str(tmp_path / "ok"), "status"] == "dead"  # a free lock: the process is gone


@pytest.mark.parametrize("bad", ["x\ntouch PWNED", "x\rtouch PWNED", "x\u2028y"])
def test_no_line_break_reaches_a_batch_file(tmp_path, bad):
    from src.runners.batch import Job, write_batch

    ok = Job((str(tmp_path / "run"), "configs/cnn.gin"))
    with pytest.raises(UserError, match="contains a line break"):
        write_batch(tmp_path / "batch.sh", [ok], f"results in {bad}")
    with pytest.raises(UserError, match="contains a line break"):
        write_batch(tmp_path / "batch.sh", [Job((str(tmp_path / bad), "configs/cnn.gin"))], "title")
    with pytest.raises(UserError, match="contains a line break"):
        write_batch(tmp_path / bad / "batch.sh", [ok], "title")
    assert not (tmp_path / "batch.sh").exists()


def test_a_results_dir_with_a_line_break_writes_no_batch_file(tmp_path, monkeypatch):
    from src.searches.experiment import grid, prepare

    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "template_config.gin").write_text("include 'configs/cnn.gin'\n")
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "res\ntouch PWNED"))
    with pytest.raises(UserError, match="contains a line break"):
        prepare(folder, "tiny", grid({"supervised.lr": [0.1]}))
    assert not (folder / "tiny" / "batch.sh").exists()


def test_no_line_break_reaches_a_slurm_header(tmp_path):
    from src.runners.batch import Job, write_batch
    from src.runners.slurm import Array, SlurmOptions, array_script

    batch = write_batch(tmp_path / "batch.sh", [Job((str(tmp_path / "run"), "configs/cnn.gin"))], "t")
    one = Array(0, 0, [0])
    assert "#SBATCH --job-name=fine\n" in array_script(batch, [Job(("r", "c"))], one, SlurmOptions(job_name="fine"))
    for options in (SlurmOptions(job_name="x\n#SBATCH --wrap=evil"), SlurmOptions(partition="gpu\rx")):
        with pytest.raises(UserError, match="The SLURM option .* contains a line break"):
            array_script(batch, [Job(("r", "c"))], one, options)
    with pytest.raises(UserError, match="The setup line .* contains a line break"):
        array_script(batch, [Job(("r", "c"))], one, SlurmOptions(setup=("module load x\ntouch PWNED",)))


def test_a_secret_in_a_bad_value_is_masked_in_the_error_line(tmp_path, monkeypatch, capsys):
    from src.cli.training import train_main

    secret = "mysecret-3f9a7c2e"
    monkeypatch.setenv("MY_API_TOKEN", secret)
    code = train_main(
        [str(tmp_path / "run"), str(ROOT / "configs/cnn.gin"), "-b", f"supervised.optimizer = '{secret}'"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Unknown optimizer '***'" in err and secret not in err
