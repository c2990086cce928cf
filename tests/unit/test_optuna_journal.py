"""The study's journal file (src/searches/optuna_journal.py): Optuna's JournalFileBackend with a torn last record cut
off before the next append or read, and damage before the end as one line (issue 27.3). The prepare-level
behaviour is in tests/end_to_end/test_optuna.py."""

import json

import pytest

from src.errors import UserError
from src.searches.optuna_journal import Journal

RECORD = {"op_code": 0, "worker_id": "w", "study_name": "exp/bayes", "directions": [1]}


def line(record):
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("long", [False, True])
def test_the_last_line_is_found_and_judged_however_long(tmp_path, long):
    """A whole last record of any length is left alone; a torn one (no newline) is found at its start, also when it
    is longer than the block read first."""
    path = tmp_path / "optuna.journal"
    last = {**RECORD, "study_name": "x" * (20_000 if long else 5)}
    path.write_bytes(line(RECORD) + line(last))
    journal = Journal(str(path))
    assert journal.torn_tail() is None
    path.write_bytes(line(RECORD) + line(last)[:-3])
    journal = Journal(str(path))
    assert journal.torn_tail() == len(line(RECORD))
    assert [log["op_code"] for log in journal.read_logs(0)] == [0]  # read: the torn tail is cut first
    assert path.read_bytes() == line(RECORD)


def test_appending_after_a_torn_record_starts_a_line_of_its_own(tmp_path, capsys):
    path = tmp_path / "optuna.journal"
    path.write_bytes(line(RECORD) + b'{"op_code":4,"wor')
    journal = Journal(str(path))
    journal.append_logs([{**RECORD, "op_code": 2}])
    assert path.read_bytes() == line(RECORD) + line({**RECORD, "op_code": 2})
    assert (tmp_path / "optuna.journal.torn").read_bytes() == b'{"op_code":4,"wor\n'
    assert capsys.readouterr().err.startswith(f"warning: {path} ended in a torn record (17 bytes: ")


@pytest.mark.parametrize(
    "bad, why",
    [(b"not json\n", "not JSON: Expecting value"), (b"[1, 2]\n", "not a record of Optuna's journal")],
)
def test_a_bad_line_before_the_end_is_one_line_naming_it(tmp_path, bad, why):
    path = tmp_path / "optuna.journal"
    path.write_bytes(line(RECORD) + bad + line(RECORD))
    with pytest.raises(UserError) as error:
        list(Journal(str(path)).read_logs(0))
    message = str(error.value)
    assert message.startswith(f"The Optuna study {path}, line 2, is damaged ({why}")
    assert "keep only the lines before it (`head -n 1`)" in message and "\n" not in message
