"""Browsing received run folders (issue 27.6): a record that is no regular file (a FIFO, a link to a device), is too
large, or nests too deep makes its run `damaged`, naming the file; the other runs load, and nothing hangs or reads
without bound."""

import json
import os
import signal
from pathlib import Path

import pytest

from src.cli.runs import diff_runs_main, runs_main
from src.results import load_runs
from src.run import layout, reading
from tests.helpers import fake_run

RECORDS = [layout.HISTORY, layout.META, layout.EVAL_RESULTS, layout.METRICS]


@pytest.fixture(autouse=True)
def no_hang():
    """A reader that blocks (a FIFO opened for reading) fails the test instead of hanging the suite."""

    def hung(*_):
        raise TimeoutError("a reader hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    good, bad = (fake_run(tmp_path / name, {"supervised.lr": lr}) for name, lr in (("good", 0.1), ("bad", 0.2)))
    for run in (good, bad):
        (run / layout.META).write_text(json.dumps({"attempts": [{"pid": 1}], "hostname": "h"}))
        (run / layout.EVAL_RESULTS).write_text(json.dumps({"test_acc": 0.5}))
    return good, bad


def make_hostile(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")  # read until memory runs out
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)  # valid JSON: a RecursionError naming no file
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(reading.LIMIT + 1)  # sparse: no disk used


HOSTILE = [(name, kind) for name in RECORDS for kind in ("fifo", "device", "huge")] + [
    (name, "deep") for name in RECORDS if name.endswith(".json")
]


@pytest.mark.parametrize(("name", "kind"), HOSTILE)
def test_a_hostile_record_marks_its_run_damaged_and_the_others_load(tmp_path, capsys, name, kind):
    good, bad = two_runs(tmp_path)
    make_hostile(bad / name, kind)
    runs = load_runs(tmp_path).set_index("run")
    assert runs.loc[str(good), "status"] == "finished"
    assert runs.loc[str(bad), "status"] == "damaged"
    assert str(bad / name) in runs.loc[str(bad), "damaged"]
    assert runs_main([str(tmp_path)]) == 0
    assert "damaged" in capsys.readouterr().out
    code = diff_runs_main([str(good), str(bad)])  # a difference table, or one line naming the damaged file
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 0 or (code == 2 and str(bad / name) in err and len(err.strip().splitlines()) == 1)


def test_reading_bounds():
    with pytest.raises(reading.Unreadable, match="is not a regular file"):
        reading.read_text("/dev/null")
    assert json.loads(json.dumps([[[1]]])) == reading.read_json(_written("[[[1]]]"))
    with pytest.raises(reading.Unreadable, match=f"nests deeper than {reading.DEPTH} levels"):
        reading.read_json(_written("[" * (reading.DEPTH + 1) + "]" * (reading.DEPTH + 1)))
    with pytest.raises(reading.Unreadable, match="larger than"):
        reading.read_text(_written("x" * 11), limit=10)


def _written(text: str) -> Path:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    return Path(f.name)
