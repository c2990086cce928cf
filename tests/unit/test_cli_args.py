"""bin/train.py's arguments: repeated -b and CONFIGS accumulate; gin typos are one line that says what is valid."""

import subprocess

import pytest

from src.cli.training import train_main
from tests.helpers import ROOT


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "0x" not in err[0], err[0]
    return err[0]


@pytest.mark.parametrize(
    "binding, expected",
    [
        (
            "digits.batch_sze = 64",
            "Bad gin config in binding 'digits.batch_sze = 64': digits has no parameter 'batch_sze'. "
            "Did you mean 'batch_size'? Valid parameters of digits: batch_size, toy, device_resident (given by the run, "
            "not bound in gin: seed).",
        ),
        ("train/digits.batch_sze = 64", "Did you mean 'batch_size'?"),
        (
            "training_loop.model=mlp",
            "mlp is not quoted: write training_loop.model='mlp' (strings need quotes).",
        ),
        (
            "training_loop.callbacks = [progress_log, 'heartbeat', lr_schedule]",
            "write training_loop.callbacks = ['progress_log', 'heartbeat', 'lr_schedule']",
        ),
        ("digts.toy = True", "Nothing configurable is named 'digts'. Did you mean 'digits'? Configurable names: "),
        ("training_loop.model = @mlpp", "Did you mean 'mlp'?"),
        ("training_loop.model = @mlp", "Give the model by name, in quotes: 'mlp', not @mlp."),
        ("supervised.lr = %LR", "Macro %LR is used but never defined: add a line `LR = <value>`"),
    ],
)
def test_gin_typo_is_one_clear_line(tmp_path, capsys, binding, expected):
    run = tmp_path / "run"
    assert train_main([str(run), str(ROOT / "configs/cnn.gin"), "-b", "digits.toy = True", "-b", binding]) == 2
    assert expected in one_error_line(capsys)
    assert not run.exists()


def test_unknown_parameter_lists_the_configurables_parameters(tmp_path, capsys):
    """The valid parameters come from the configurable's signature, whatever it is, less those the run offers
    (binding them is an error: the run's value would win)."""
    import inspect

    from src.data import DATA
    from src.data.digits import Digits

    assert train_main([str(tmp_path / "r"), str(ROOT / "configs/cnn.gin"), "-b", "digits.bach = 1"]) == 2
    listed, _, offered = one_error_line(capsys).split("Valid parameters of digits: ")[1].partition(" (given by the run")
    parameters = [p for p in inspect.signature(Digits).parameters if p != "self"]
    assert listed.split(", ") == [p for p in parameters if p not in DATA.offers]
    assert offered == f", not bound in gin: {', '.join(p for p in parameters if p in DATA.offers)})."


def test_typo_in_a_config_file_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.gin"
    bad.write_text("digits.toy = True\n\ntraining_loop.callbacks = ['progress_log',\n    heartbeat]\n")
    assert train_main([str(tmp_path / "r"), f"{ROOT / 'configs/cnn.gin'}#{bad}"]) == 2
    assert f"Bad gin config in {bad}, line 4: heartbeat is not quoted" in one_error_line(capsys)
    bad.write_text("digits.toy = True\ncnn.widht = 3\n")
    assert train_main([str(tmp_path / "r"), str(ROOT / "configs/cnn.gin"), str(bad)]) == 2
    assert f"Bad gin config in {bad}, line 2: cnn has no parameter 'widht'. Did you mean 'width'?" in one_error_line(
        capsys
    )


def test_sync_help_prints_usage_and_copies_nothing(tmp_path):
    for flag in ("--help", "-h"):
        out = subprocess.run(
            ["bash", str(ROOT / "bin/sync.sh"), flag], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("usage: bin/sync.sh DEST [--watch]")
        assert list(tmp_path.iterdir()) == []  # rsync did not run with the flag as its destination
