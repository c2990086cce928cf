"""bin/runs.py and bin/diff_runs.py tables: whole when piped, fitted to a terminal by dropping columns, and
diff columns labelled by the shortest path suffix that tells the runs apart."""

import json
import re

from src.cli.runs import diff_runs_main, runs_main
from tests.helpers import WIDE, fake_run, mixed_runs


def test_diff_runs_labels_columns_by_the_shortest_distinct_path_suffix(tmp_path, capsys):
    a = fake_run(tmp_path / "tune" / "lr=0.01_dropout=0.0", {"supervised.lr": 0.01, "cnn.dropout": 0.0})
    b = fake_run(tmp_path / "tune" / "lr=0.001_dropout=0.5", {"supervised.lr": 0.001, "cnn.dropout": 0.5})
    assert diff_runs_main([str(a), str(b)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("┃"))
    assert re.split(r"\s*┃\s*", header.strip("┃ ")) == ["binding", "lr=0.01_dropout=0.0", "lr=0.001_dropout=0.5"]

    c = fake_run(tmp_path / "other" / "lr=0.01_dropout=0.0", {"supervised.lr": 0.02, "cnn.dropout": 0.0})
    assert diff_runs_main([str(a), str(c)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert re.split(r"\s*┃\s*", header.strip("┃ ")) == [
        "binding",
        "tune/lr=0.01_dropout=0.0",
        "other/lr=0.01_dropout=0.0",
    ]
    row = next(line for line in out.splitlines() if "supervised.lr" in line)
    assert re.split(r"\s*│\s*", row.strip("│ ")) == ["supervised.lr", "0.01", "0.02"]


def test_path_labels():
    from src.analysis.runs_table import path_labels

    assert path_labels(["/r/x/a/run", "/r/y/a/run"]) == ["x/a/run", "y/a/run"]
    assert path_labels(["/r/x/a", "/r/x/a/b"]) == ["a", "b"]
    assert path_labels(["/r/exp/0.1", "/r/exp/0.5"]) == ["0.1", "0.5"]


def test_piped_runs_table_is_never_cut(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert runs_main([str(mixed_runs(tmp_path))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "…" not in "".join(lines)
    rows = [line for line in lines if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in rows] == ["run0", "run1", "run2"]  # one line per run: no wrapping
    for j, row in enumerate(rows):
        assert all(f"value_{i}_{j}_quite_long" in row for i in range(12))
    assert max(map(len, lines)) > 12 * len("value_0_0_quite_long")


def test_runs_table_on_a_terminal_drops_columns_not_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stdout is a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    assert runs_main([str(mixed_runs(tmp_path))]) == 0
    lines = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out).splitlines()
    assert max(map(len, lines[:-1])) <= 120
    header = next(line for line in lines if line.startswith("┃"))
    shown = [h.strip() for h in header.strip("┃").split("┃")]
    assert shown[:2] == ["run", "status"] and {"epochs", "best_valid_acc", "best_valid_loss"} <= set(shown)
    assert "lr" in shown  # the first binding stays, the rightmost go first
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 3  # cells are not wrapped
    dropped = lines[-1].removeprefix("not shown, the terminal is too narrow: ").split(" (")[0].split(", ")
    assert dropped[-1] == "age" and len(dropped) > 3
    bindings = [k.split(".")[1] for k in WIDE]  # headed by the parameter name alone
    assert sorted(dropped + shown) == sorted(
        ["run", "status", "lr", *bindings, "epochs", "best_valid_acc", "best_valid_loss", "age"]
    )


def test_runs_table_shows_every_task_main_metric(tmp_path, capsys):
    """A regression run (main metric valid_mse) next to a classification run: both main metrics and their test
    results are columns, not only the classification ones."""
    import csv

    reg = fake_run(
        tmp_path / "reg", {"supervised.loss": "mse"}, "epoch,valid_loss,valid_mse,valid_mae\n1,0.9,0.9,0.7\n"
    )
    directions = {"valid_mse": "min", "valid_loss": "min", "valid_mae": "min"}
    (reg / "metrics.json").write_text(json.dumps({"main": "valid_mse", "directions": directions}))
    (reg / "eval_results.json").write_text(json.dumps({"test_mse": 0.8, "test_mae": 0.6}))
    cls = fake_run(tmp_path / "cls", {"supervised.loss": "cross_entropy"})
    (cls / "eval_results.json").write_text(json.dumps({"test_acc": 0.7}))
    assert runs_main([str(tmp_path), "--csv"]) == 0
    header = next(csv.reader(capsys.readouterr().out.splitlines()))
    metrics = [c for c in header if c.startswith(("best_", "eval_"))]
    assert metrics == ["best_valid_acc", "best_valid_mse", "best_valid_loss", "eval_test_acc", "eval_test_mse"]


def test_runs_table_does_not_count_a_list_and_the_same_tuple_as_varying(tmp_path, capsys):
    fake_run(tmp_path / "a", {"supervised.lr": 0.1, "training_loop.callbacks": ("progress_log",)})
    fake_run(tmp_path / "b", {"supervised.lr": 0.2, "training_loop.callbacks": ["progress_log"]})
    assert runs_main([str(tmp_path), "--csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "supervised.lr" in header and "training_loop.callbacks" not in header


def test_a_macro_named_like_a_column_never_hides_it(tmp_path):
    from src.results import load_runs

    run = fake_run(tmp_path / "run", {"supervised.lr": 0.1})
    with open(run / "config.gin", "a") as f:
        f.write("status = 'finished'\nepochs = 99\nrun = 'elsewhere'\n")  # gin macros
    (run / "FINISHED").unlink()
    row = load_runs(tmp_path).iloc[0]
    assert (row["run"], row["status"], row["epochs"], row["supervised.lr"]) == (str(run), "pending", 2, 0.1)
