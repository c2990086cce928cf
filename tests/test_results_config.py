"""load_C on tricky gin, and the results API's independence from training code."""

import subprocess
import sys

import pytest

from src.errors import UserError
from src.gin_bindings import parse_bindings
from tests.conftest import ROOT

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
    from src.gin_bindings import _parse_literal_bindings, _parse_with_gin

    operative = (ROOT / "tests" / "data" / "operative_config.gin").read_text()
    fast = _parse_literal_bindings(operative)
    assert fast is not None and fast == _parse_with_gin(operative)
    assert fast["training_loop.callbacks"] == ["progress_log"] and fast["training_loop.gradient_clip_val"] is None
    assert _parse_literal_bindings(TRICKY) is None  # macros and references: gin's parser
