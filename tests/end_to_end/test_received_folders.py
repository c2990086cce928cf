"""Untrusted run folders and dangerous inputs (issue 13): reading a received run folder never runs code, a save
folder never overwrites the repository nor hides runs, no value can break out of a generated script's line, and
error lines are masked."""

import os
import shutil
import subprocess
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


def test_resuming_a_received_run_never_runs_its_code(train, trained, tmp_path):
    run, marker = received(trained, tmp_path, DYNAMIC)
    (run / layout.FINISHED).unlink()
    with pytest.raises(UserError, match=r"config\.gin, line 1: refused to read an import"):
        train(run, "training_loop.n_epochs = 2")
    assert not marker.exists()


def test_a_save_folder_never_holds_the_repository_nor_lies_in_its_code(train, tmp_path):
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    for save_dir in (ROOT, ROOT / "src", ROOT / "configs" / "mine", ROOT.parent):
        with pytest.raises(UserError, match="SAVE_DIR .*(the repository or a folder above it|inside the repository)"):
            train(save_dir)
    assert not (ROOT / "configs" / "mine").exists() and not (ROOT / "src" / layout.CONFIG).exists()
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before


def test_a_folder_that_holds_runs_is_no_save_folder(train, tmp_path):
    inner = tmp_path / "results" / "exp" / "sweep" / "run"
    inner.mkdir(parents=True)
    (inner / layout.CONFIG).write_text("training_loop.seed = 0\n")
    for parent in (tmp_path / "results", tmp_path / "results" / "exp"):
        with pytest.raises(UserError, match="already holds runs"):
            train(parent)
        assert not layout.is_run_dir(parent)


def test_a_run_folder_whose_configs_links_elsewhere_writes_nothing_there(train, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / layout.FINISHED).unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(run / layout.INPUT_CONFIGS)
    (run / layout.INPUT_CONFIGS).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(
        UserError,
        match="configs is a link out of it: a run folder holds only plain files and folders",
    ):
        train(run, "training_loop.n_epochs = 2")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", [run_lock.LOCK, layout.STDOUT, layout.STDERR, "tensorboard"])
def test_resuming_a_received_folder_with_a_link_writes_nothing_through_it(train, trained, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / layout.FINISHED).unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(victim)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(UserError, match=f"{name} is a link out of it: a run folder holds only plain files"):
        train(run, "training_loop.n_epochs = 2")
    assert victim.read_text() == "precious\n" and sorted(p.name for p in run.iterdir()) == before


def deflated(checkpoint: Path, inflate_to: int) -> None:
    """Rewrite `checkpoint` as a forged one: its records deflated, and its first tensor declared (and packed) as
    `inflate_to` zero bytes: torch.load would unpack it, about 1000 bytes for each byte of the file."""
    import zipfile

    with zipfile.ZipFile(checkpoint) as source:
        records = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as forged:
        for name, data in records:
            forged.writestr(name, bytes(inflate_to) if name.endswith("/data/0") else data)


def test_a_checkpoint_that_would_unpack_beyond_its_size_is_refused_before_loading(train, trained, tmp_path, capsys):
    """Issue 27.8: a small received checkpoint must not allocate memory out of proportion to its size."""
    from src.analysis.compare import compare_weights
    from src.run import checkpoints

    run = tmp_path / "received"
    shutil.copytree(trained, run)
    for name in (layout.BEST_CKPT, layout.LAST_CKPT):
        deflated(run / name, 20_000_000)
        assert (run / name).stat().st_size < 100_000
    why = checkpoints.problem(run / layout.BEST_CKPT)
    assert why is not None and "holds compressed records" in why and "torch.save never writes" in why
    with pytest.raises(UserError, match=r"Cannot load .*best\.ckpt safely .*compressed records"):
        checkpoints.weights(run / layout.BEST_CKPT)
    with pytest.raises(UserError, match=r"best\.ckpt safely"):
        compare_weights(trained, run, layout.BEST_CKPT, 0.0)
    (run / layout.FINISHED).unlink()
    train(run, "training_loop.n_epochs = 2")  # the forged last.ckpt is set aside: trained afresh, not loaded
    assert "last.ckpt is unusable (holds compressed records" in capsys.readouterr().err
    assert (run / (layout.LAST_CKPT + layout.UNUSABLE_SUFFIX)).is_file()
    assert checkpoints.problem(run / layout.LAST_CKPT) is None


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
