"""load_C on tricky gin, and the results API's independence from training code."""

import json
import subprocess
import sys

import pytest

from src.config.bindings import included_text, parse_bindings
from src.errors import UserError
from tests.helpers import ROOT

TRICKY = """
# a comment
LR = 0.05
WIDTHS = [16,
          32,   # multi-line list with a comment
          64]
training_loop.model = 'cnn'
training_loop.callbacks = ['progress_log',
                           'lr_schedule']
supervised.lr = %LR
cnn.width = %WIDTHS
train/supervised.weight_decay = 1e-4
lr_schedule.schedule = [(0, 1.0),
                        (30, 0.1)]
some.reference = @cnn
some.call = @cnn()
nested/scope/mlp.hidden = (128, 64)
block.value = {'a': 1, 'b': [1, 2]}
"""


def test_parse_bindings_handles_scopes_macros_multiline():
    c = parse_bindings(TRICKY)
    assert c["supervised.lr"] == 0.05
    assert c["LR"] == 0.05
    assert c["cnn.width"] == [16, 32, 64]
    assert c["training_loop.callbacks"] == ["progress_log", "lr_schedule"]
    assert c["train/supervised.weight_decay"] == 1e-4
    assert c["lr_schedule.schedule"] == [(0, 1.0), (30, 0.1)]
    assert c["some.reference"] == "@cnn"
    assert c["some.call"] == "@cnn()"
    assert c["nested/scope/mlp.hidden"] == (128, 64)
    assert c["block.value"] == {"a": 1, "b": [1, 2]}


def test_included_text_follows_includes_relative_then_from_the_repository(tmp_path):
    (tmp_path / "base.gin").write_text("supervised.lr = 0.1\ninclude 'missing.gin'\n")
    (tmp_path / "mine.gin").write_text("include \"configs/cnn.gin\"\ninclude 'base.gin'  # mine\ncnn.n_blocks = 1\n")
    bindings = parse_bindings(included_text(tmp_path / "mine.gin"))
    assert bindings["supervised.lr"] == 0.1 and bindings["cnn.n_blocks"] == 1  # the includer's value comes last
    assert (
        bindings["training_loop.data"]
        == parse_bindings((ROOT / "configs" / "cnn.gin").read_text())["training_loop.data"]
    )
    (tmp_path / "loop.gin").write_text("include 'loop.gin'\nsupervised.lr = 0.2\n")
    assert parse_bindings(included_text(tmp_path / "loop.gin"))["supervised.lr"] == 0.2  # stops, never recurses forever


def test_load_C_reads_config_gin(tmp_path):
    from src.results import load_C

    (tmp_path / "config.gin").write_text(TRICKY)
    assert load_C(tmp_path)["cnn.width"] == [16, 32, 64]


def test_load_C_and_load_H_reject_non_run_folder(tmp_path):
    from src.results import load_C, load_H

    with pytest.raises(UserError, match="not a run folder"):
        load_C(tmp_path)
    with pytest.raises(UserError, match="not a run folder"):
        load_H(tmp_path / "missing")


def test_results_imports_no_training_code():
    code = "import sys, src.results; print(sorted(m for m in ('torch', 'pytorch_lightning', 'src.training_loop') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fast_path_agrees_with_gins_parser_on_an_operative_config():
    from src.config.bindings import _parse_literal_bindings, _parse_with_gin

    operative = (ROOT / "tests" / "data" / "operative_config.gin").read_text()
    fast = _parse_literal_bindings(operative)
    assert fast is not None and fast == _parse_with_gin(operative)
    assert fast["training_loop.callbacks"] == ["progress_log"] and fast["training_loop.gradient_clip_val"] is None
    assert _parse_literal_bindings(TRICKY) is None  # macros and references: gin's parser


def test_literal_fast_path_equals_ast_literal_eval():
    import ast

    from src.config.bindings import _literal

    texts = ["0", "-3", "10", "1_000", "+1", "-0", "1.5", "-0.25", ".5", "1.", "1e-05", "3E+2", "-1e5", "1e", "0.003"]
    texts += ["'abc'", '"a b"', "''", "'it''s'", r"'a\nb'", "'é'", "True", "False", "None", "[1, 'x']", "(1,)"]
    texts += ["{'a': 1}", "007", "abc", "'open", "1 2", "--1", "1e5.0"]
    for text in texts:
        try:
            expected = ast.literal_eval(text)
        except (ValueError, SyntaxError) as e:
            with pytest.raises(type(e)):
                _literal(text)
            continue
        got = _literal(text)
        assert got == expected and type(got) is type(expected), text


def test_summarize_reads_best_and_final_metrics(tmp_path):
    from src.results import summarize

    (tmp_path / "history.csv").write_text(
        "epoch,train_loss,valid_acc,lr\n1,0.9,0.5,0.1\n2,nan,0.75,0.1\n3,0.4,,0.1\n4,0.6\n"  # NaN, empty, short row
    )
    (tmp_path / "eval_results.json").write_text('{"test_acc": 0.7, "checkpoint": "best"}')
    directions = {"train_loss": "min", "valid_acc": "max", "test_acc": "max"}
    (tmp_path / "metrics.json").write_text(json.dumps({"main": "valid_acc", "directions": directions}))
    assert summarize(tmp_path) == {
        "epochs": 4,
        "at_best_epoch": 2,  # the best valid_acc: best.ckpt's epoch
        "best_train_loss": 0.4,
        "final_train_loss": 0.6,
        "best_valid_acc": 0.75,
        "final_valid_acc": 0.75,
        "at_best_valid_acc": 0.75,  # train_loss is NaN at epoch 2: no at_best_train_loss
        "eval_test_acc": 0.7,
    }
    (tmp_path / "history.csv").write_text("")  # a run killed before its first epoch
    assert summarize(tmp_path) == {"epochs": 0, "eval_test_acc": 0.7}


def test_summarize_skips_blank_lines(tmp_path):
    from src.results import summarize

    (tmp_path / "history.csv").write_text("\nepoch,valid_acc\n1,0.5\n\n2,0.6\n\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"main": "valid_acc", "directions": {"valid_acc": "max"}}))
    assert summarize(tmp_path) == {
        "epochs": 2, "at_best_epoch": 2, "best_valid_acc": 0.6, "final_valid_acc": 0.6, "at_best_valid_acc": 0.6
    }  # fmt: skip


def test_at_best_is_every_metric_at_the_selected_checkpoint_s_epoch(tmp_path):
    """A multi-term loss (a VAE): best.ckpt follows valid_loss, so the checkpoint's KL is the KL of valid_loss's best
    epoch (the first of equal values, as Lightning keeps it), not the best KL of any epoch; a bound checkpoint.monitor
    and mode choose the epoch instead; load_runs reads them from config.gin."""
    from src.results import load_runs, summarize
    from tests.helpers import fake_run

    history = {"epoch": [1, 2, 3, 4], "valid_loss": [3.0, 2.0, 2.0, 2.5], "valid_kl": [0.078, 1.5, 2.86, 3.0]}
    run = fake_run(tmp_path / "vae", {"training_loop.module": "vae"}, history, {"valid_loss": "min", "valid_kl": "min"})
    summary = summarize(run)
    assert summary["best_valid_kl"] == 0.078 and summary["at_best_epoch"] == 2
    assert summary["at_best_valid_kl"] == 1.5 and summary["at_best_valid_loss"] == 2.0
    assert summarize(run, monitor="valid_kl", mode="max")["at_best_valid_loss"] == 2.5
    (run / "config.gin").write_text("checkpoint.monitor = 'valid_kl'\ncheckpoint.mode = 'max'\n")
    row = load_runs(run).iloc[0]
    assert row["at_best_epoch"] == 4 and row["at_best_valid_kl"] == 3.0
