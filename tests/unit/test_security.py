"""Untrusted inputs without training (issue 13): which gin statements a received config may hold, which links a run
folder may hold, no value can break out of a generated script's line, and error lines are masked. The received
run folders themselves (trained) are tests/end_to_end/test_received_folders.py's."""

import pytest

from src.errors import UserError
from tests.helpers import ROOT


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
