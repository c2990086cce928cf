"""bin/ scripts: end to end in a subprocess, and bad inputs (in-process: one line, non-zero exit, nothing left)."""

import pytest

from src.cli.training import download_main, evaluate_main, train_main
from src.run import layout
from tests.helpers import ROOT


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["-b", "training_loop.model = 'cnnn'"], "Unknown model 'cnnn'. Did you mean 'cnn'?"),
        (["-b", "training_loop.data = 'digitz'"], "Unknown data set 'digitz'"),
        (["-b", "training_loop.callbacks = ['heartbeet']"], "Did you mean 'heartbeat'?"),
        (["-b", "training_loop.loggers = ['tensorbord']"], "Unknown logger 'tensorbord'"),
        (["-b", "cnn.widht = 3"], "widht"),
        (["-b", "no_such_thing.x = 3"], "no_such_thing"),
        (["-b", "training_loop.n_epochs = "], "Bad gin config"),
        (["-b", "training_loop.n_epochs = 0"], "n_epochs must be a positive integer, got 0"),
        (["-b", "training_loop.n_epochs = -3"], "got -3"),
        (["-b", "digits.batch_size = 0"], "batch_size must be a positive integer, got 0"),
        (["-b", "supervised.optimizer = 'adamm'"], "Unknown optimizer 'adamm'"),
        (["-b", "a = %b#b = %a#supervised.lr = %a"], "macros refer to each other in a circle (a = %b, b = %a)"),
        (["-b", "a = [%b]#b = {'x': %c}#c = %a"], "in a circle (a = %b, b = %c, c = %a): give one a value."),
    ],
)
def test_train_bad_input_is_one_line(tmp_path, capsys, extra, expected):
    run = tmp_path / "run"
    code = train_main([str(run), str(ROOT / "configs/cnn.gin"), *extra])
    assert code != 0
    assert expected in one_error_line(capsys)
    assert not run.exists()  # nothing half-created for a run that never started


def test_train_missing_config_file(tmp_path, capsys):
    assert train_main([str(tmp_path / "run"), "configs/nope.gin"]) == 2
    assert "Config file 'configs/nope.gin' does not exist" in one_error_line(capsys)


def test_train_save_dir_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert train_main([str(target), str(ROOT / "configs/cnn.gin")]) == 2
    assert "is a file" in one_error_line(capsys)


def test_train_missing_cifar10(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "empty"))
    code = train_main([str(tmp_path / "run"), str(ROOT / "configs/cnn_full.gin")])
    assert code == 2 and "bin/download_data.py cifar10" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_debug_flag_shows_traceback(tmp_path):
    with pytest.raises(Exception, match="cnnn"):
        train_main(
            [str(tmp_path / "run"), str(ROOT / "configs/cnn.gin"), "-b", "training_loop.model='cnnn'", "--debug"]
        )


def test_evaluate_without_checkpoint(tmp_path, capsys):
    assert evaluate_main([str(tmp_path)]) == 2
    assert "is not a run folder" in one_error_line(capsys)
    (tmp_path / layout.CONFIG).write_text("training_loop.n_epochs = 1\n")
    assert evaluate_main([str(tmp_path)]) == 2
    assert "has no best.ckpt" in one_error_line(capsys)
    assert evaluate_main([str(tmp_path), "--checkpoint", "worst"]) == 2
    assert "Valid checkpoint names: best, last" in one_error_line(capsys)


def test_download_unknown_name(tmp_path, capsys):
    assert download_main(["imagenet", "--data-dir", str(tmp_path)]) == 2
    assert "Valid data set names: cifar10" in one_error_line(capsys)


def test_download_reads_data_dir_from_env_file(tmp_path, monkeypatch, capsys):
    """DATA_DIR set only in .env (loaded after the arguments are parsed) is where the data is looked for."""
    from src.cli import common

    (tmp_path / "cifar-10-batches-py").mkdir()  # already there: nothing to download
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(common, "load_env_file", lambda: monkeypatch.setenv("DATA_DIR", str(tmp_path)))
    assert download_main(["cifar10"]) == 0
    assert f"cifar10 ready in {tmp_path / 'cifar-10-batches-py'}" in capsys.readouterr().out


def test_running_out_of_memory_is_one_line_saying_so(capsys):
    """Issue 27.14: an allocator's failure (here oneDNN's, as under `ulimit -v`) is no bug of the code that hit it."""
    import argparse

    from src.cli.common import run_main

    def main(args):
        raise RuntimeError("could not create a primitive")

    assert run_main(main, argparse.ArgumentParser(), []) == 1
    assert one_error_line(capsys) == (
        "error: out of memory (RuntimeError: could not create a primitive): give the process more memory "
        "(ulimit -v, the job's --mem) or use less (a smaller batch or model)."
    )
