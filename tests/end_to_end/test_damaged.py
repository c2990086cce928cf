"""Damaged and moved run folders, full disks (issue 13): each damaged file has a fallback or a one-line error
naming it, never a failure on every re-run; a moved run resumes exactly; a full disk says so."""

import errno
import json
import os
import re
import shutil

import pytest
import torch

from src.errors import UserError
from src.run import layout
from src.run.status import status_of
from tests.helpers import assert_same_runs

# best.ckpt stays at the first epoch: a resumed run that lost its best score would overwrite it with a later one
FIRST_IS_BEST = ("checkpoint.monitor = 'epoch'", "checkpoint.mode = 'min'")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 3-epoch run whose best epoch is the first."""
    import gin

    from src import config
    from src.training_loop import training_loop
    from tests.helpers import FAST, ROOT

    run = tmp_path_factory.mktemp("straight") / "run"
    files = [str(ROOT / "configs/cnn.gin")]
    bindings = [*FAST, *FIRST_IS_BEST]
    config.parse(files, bindings)
    training_loop(str(run), config_files=files, bindings=bindings)
    gin.clear_config()
    return run


def test_a_moved_run_resumes_as_if_never_moved(train, straight, tmp_path):
    first = tmp_path / "cluster" / "run"
    train(first, *FIRST_IS_BEST, "training_loop.n_epochs = 2")
    moved = tmp_path / "laptop" / "run"
    moved.parent.mkdir()
    shutil.move(first, moved)  # `mv`, rsync: the checkpoints still name the old folder
    train(moved, *FIRST_IS_BEST)
    assert torch.load(moved / layout.BEST_CKPT, weights_only=True)["epoch"] == 0
    assert_same_runs(straight, moved)
    assert not first.exists()


def test_a_damaged_best_checkpoint_is_tested_from_the_last_one_once(train, straight, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / layout.FINISHED).unlink()
    best = run / layout.BEST_CKPT
    best.write_bytes(best.read_bytes()[:1000])  # truncated
    train(run, *FIRST_IS_BEST)
    results = json.loads((run / layout.EVAL_RESULTS).read_text())
    assert results["checkpoint"] == "last" and "best.ckpt is damaged" in results["note"]
    assert "warning: best.ckpt is damaged" in capsys.readouterr().err
    assert status_of(run) == "finished"
    train(run, *FIRST_IS_BEST)  # a re-run finds the run finished: no failure
    assert status_of(run) == "finished"


@pytest.mark.parametrize("content", ['{"test_acc": 0.', "\x00\xff", "[1, 2]"])
def test_a_damaged_eval_results_of_a_finished_run_is_tested_again(train, straight, tmp_path, capsys, content):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / layout.EVAL_RESULTS).write_text(content)
    metrics = train(run, *FIRST_IS_BEST)
    assert "eval_results.json is damaged" in capsys.readouterr().err
    assert json.loads((run / layout.EVAL_RESULTS).read_text()) == json.loads(
        (straight / layout.EVAL_RESULTS).read_text()
    )
    assert metrics["test_acc"] == json.loads((straight / layout.EVAL_RESULTS).read_text())["test_acc"]
    assert status_of(run) == "finished"
    assert_same_runs(straight, run)


@pytest.mark.parametrize("content", ['{"attempts": [', "\x00\xff garbage", "[1, 2]"])
def test_a_damaged_meta_json_is_set_aside_and_started_anew(train, straight, tmp_path, capsys, content):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / layout.FINISHED).unlink()
    (run / layout.META).write_text(content)
    train(run, *FIRST_IS_BEST, "training_loop.n_epochs = 4")
    assert "meta.json is damaged" in capsys.readouterr().err
    assert (run / (layout.META + ".damaged")).read_text() == content
    meta = json.loads((run / layout.META).read_text())
    assert len(meta["attempts"]) == 1 and status_of(run) == "finished"


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "\x00\xff garbage\n1,2\n",  # no epoch column
        lambda text: text.replace("\n3,", "\nabc,", 1),  # a non-numeric last epoch
    ],
)
def test_a_damaged_history_is_rewritten_from_the_checkpoint(train, straight, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(straight, run)  # finished: the re-run reads history.csv to see whether it is done
    (run / layout.HISTORY).write_text(damage((run / layout.HISTORY).read_text()))
    train(run, *FIRST_IS_BEST)
    assert "history.csv is damaged" in capsys.readouterr().err
    assert_same_runs(straight, run)
    train(run, *FIRST_IS_BEST)  # and the next re-run has nothing to do
    assert "already finished" in capsys.readouterr().out


def test_a_damaged_config_gin_is_a_one_line_error_naming_it(train, straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / layout.FINISHED).unlink()
    (run / layout.CONFIG).write_bytes(b"\x00\xff\xfe garbage = = \n")
    with pytest.raises(UserError) as e:
        train(run, *FIRST_IS_BEST, "training_loop.n_epochs = 4")
    first_line = str(e.value).splitlines()[0]  # what bin/train.py prints (gin adds context lines below)
    assert re.fullmatch(
        r".*/config\.gin, line 1: unreadable gin config \(.*\); restore it, or delete it .*", first_line
    )


def test_a_full_disk_says_so_and_the_run_resumes_exactly(train, straight, tmp_path, monkeypatch):
    from src.training.callbacks import checkpoint

    run = tmp_path / "run"
    real_save, saves = torch.save, []

    def full_at_the_second_epoch(obj, f):  # as torch.save fails when the disk fills: a partial write, then an error
        saves.append(obj.get("epoch"))
        if obj.get("epoch") == 1:
            f.write(b"PK partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 15168 vs 15064")
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", full_at_the_second_epoch)
    monkeypatch.setattr(layout, "LOW_SPACE", 2**62)  # the file system reads as full
    with pytest.raises(UserError, match=r"No space left on device while writing .*\.ckpt: free some space"):
        train(run, *FIRST_IS_BEST)
    assert 1 in saves and not list(run.glob(".*.tmp"))
    assert "No space left on device" in (run / layout.FAILED).read_text()
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    train(run, *FIRST_IS_BEST)
    assert_same_runs(straight, run)


def test_enospc_while_writing_a_text_file(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(layout.DiskFull, match=r"No space left on device while writing .*history\.csv"):
        layout.write_atomic(tmp_path / layout.HISTORY, "epoch\n1\n")
    assert list(tmp_path.iterdir()) == []


def test_a_write_failing_with_space_left_is_not_called_a_full_disk(tmp_path, monkeypatch):
    from src.training.callbacks.checkpoint import RunCheckpointIO

    def broken(obj, f):
        raise RuntimeError("unexpected pos 1 vs 2")

    monkeypatch.setattr(torch, "save", broken)
    monkeypatch.setattr(layout, "LOW_SPACE", 0)
    with pytest.raises(RuntimeError, match="unexpected pos") as e:
        RunCheckpointIO().save_checkpoint({}, tmp_path / layout.LAST_CKPT)
    assert not isinstance(e.value, UserError) and list(tmp_path.iterdir()) == []
