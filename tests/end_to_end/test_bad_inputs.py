"""The bad-input catalogue: every mistake is one clear line naming the bad value (and the valid choices where
there is a list), a non-zero exit, no traceback, and no half-created run folder."""

import pickle

import pytest

from src.cli import runners, runs, training
from src.errors import UserError
from tests.helpers import ROOT

CNN = str(ROOT / "configs/cnn.gin")


def call(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse errors
        return e.code


@pytest.fixture
def place(tmp_path, monkeypatch):
    """Fixtures the cases refer to by name, all under tmp_path."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "bad.gin").write_text("training_loop.n_epochs = [1,\n")
    (tmp_path / "trained").mkdir()
    (tmp_path / "trained" / "last.ckpt").write_bytes(b"x")
    (tmp_path / "run_no_ckpt").mkdir()
    (tmp_path / "run_no_ckpt" / "config.gin").write_text("training_loop.n_epochs = 1\n")
    (tmp_path / "broken_run").mkdir()
    (tmp_path / "broken_run" / "config.gin").write_text("training_loop.n_epochs = = 1\n")
    (tmp_path / "empty.sh").write_text("#!/usr/bin/env bash\nset -u\n")
    (tmp_path / "one_job.sh").write_text(f"job {tmp_path}/r {CNN}\n")
    corrupt = tmp_path / "data" / "cifar-10-batches-py"
    corrupt.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (corrupt / name).write_bytes(pickle.dumps({b"data": b"short", b"labels": [1, 2]}))
    return tmp_path


CLI_CASES = [
    # bin/train.py
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.model='cnnn'"],
        "Unknown model 'cnnn'. Did you mean 'cnn'? Valid model names: ",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.data='mnist'"],
        "Unknown data set 'mnist'. Valid data set names: ",
    ),
    ("train", ["{t}/r", CNN, "-b", "training_loop.callbacks=['early_stoping']"], "Did you mean 'early_stopping'?"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.loggers=['tensorbord']"], "Unknown logger 'tensorbord'"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.module='unsupervised'"], "Unknown module 'unsupervised'"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.profiler='simpel'"], "Did you mean 'simple'?"),
    ("train", ["{t}/r", CNN, "-b", "cnn.widht = 3"], "widht"),
    # Trainer flags Lightning accepts, then fails on deep inside the run (ZeroDivisionError) or runs silently with
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.accumulate_grad_batches=0"],
        "accumulate_grad_batches must be a positive integer, got 0.",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.val_check_interval=0"],
        "val_check_interval must be a positive number",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.check_val_every_n_epoch=0"],
        "check_val_every_n_epoch must be a positive integer or None, got 0.",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.gradient_clip_val=-1"],
        "gradient_clip_val must be a number >= 0 or None, got -1.",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.num_sanity_val_steps=-5"],
        "num_sanity_val_steps must be an integer >= -1",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.inference_mode='yes'"],
        "inference_mode must be True or False, got 'yes'.",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.max_steps=3"],
        "the template trains whole epochs (training_loop.n_epochs)",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.max_time={'seconds': -1}"],
        "is no positive duration: every attempt would stop",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.num_threads=-2"],
        "training_loop.num_threads must be a positive integer, got -2.",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.limit_val_batches=0"],
        "turns validation off, but best.ckpt is chosen by valid_acc",
    ),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.callbacks=['lr_monitor']#training_loop.loggers=[]"],
        "lr_monitor logs to the trackers and training_loop.loggers is empty",
    ),
    ("train", ["{t}/r", CNN, "-b", "supervised.lr = 'a'"], "supervised.lr must be a number, got 'a'."),
    ("train", ["{t}/r", CNN, "-b", "digits.batch_size = 8.5"], "digits.batch_size must be an integer, got 8.5."),
    ("train", ["{t}/r", CNN, "-b", "no_such_thing.x = 3"], "no_such_thing"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.n_epochs = "], "Bad gin config"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.n_epoch = 3"], "training_loop.n_epoch. Did you mean 'n_epochs'?"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.precison = '16'"], "Did you mean 'precision'?"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.devcies = 1"], "own (model, data, module, n_epochs, resume, allow_"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.max_epochs = 3"], "use training_loop.n_epochs instead"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.limit_train_batches = 0"], "limit_train_batches = 0 trains nothing"),
    ("train", ["{t}/r", CNN, "-b", "supervised.loss = 'hinge'"], "Unknown loss 'hinge'. Valid loss names: "),
    ("train", ["{t}/r", CNN, "-b", "supervised.loss = 'crossentropy'"], "Did you mean 'cross_entropy'?"),
    # a parameter the run supplies itself: the binding would be silently overridden
    ("train", ["{t}/r", CNN, "-b", "digits.seed = 5"], "digits.seed is given by the run (training_loop.seed): bind"),
    ("train", ["{t}/r", CNN, "-b", "cnn.n_outputs = 3"], "cnn.n_outputs is given by the data (its model_kwargs)"),
    ("train", ["{t}/r", CNN, "-b", "digits.sed = 5"], "digits: batch_size, toy, device_resident (given by the run"),
    # values of the right parameter that cannot work
    ("train", ["{t}/r", CNN, "-b", "training_loop.seed = 'a'"], "training_loop.seed must be an integer, got 'a'."),
    ("train", ["{t}/r", CNN, "-b", "training_loop.callbacks = 'progress_log'"], "must be a list, got 'progress_"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.precision = 'bf17'"], "training_loop.precision = 'bf17' is not vali"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.strategy = 'dp2'"], "training_loop.strategy = 'dp2' is not valid"),
    ("train", ["{t}/r", CNN, "-b", "checkpoint.monitor = 'valid_mae'"], "'valid_mae' is not a metric the module logs"),
    ("train", ["{t}/r", CNN + "#{t}/bad.gin"], "bad.gin"),
    ("train", ["{t}/r", "configs/missing.gin"], "Config file 'configs/missing.gin' does not exist."),
    ("train", ["{t}/r", ""], "No config file given"),
    ("train", ["{t}/a_file", CNN], "is a file, not a folder"),
    ("train", ["{t}/a_file/r", CNN], "Cannot create SAVE_DIR"),
    (
        "train",
        ["{t}/r", CNN, "-b", "training_loop.n_epochs = 0"],
        "training_loop.n_epochs must be a positive integer, got 0.",
    ),
    ("train", ["{t}/r", CNN, "-b", "training_loop.n_epochs = -2"], "got -2"),
    ("train", ["{t}/r", CNN, "-b", "training_loop.n_epochs = 'ten'"], "got 'ten'"),
    ("train", ["{t}/r", CNN, "-b", "digits.batch_size = 0"], "batch_size must be a positive integer, got 0."),
    (
        "train",
        ["{t}/r", CNN, "-b", "supervised.optimizer = 'adamm'"],
        "Unknown optimizer 'adamm'. Did you mean 'adam'? Valid optimizer names: adam, adamw, sgd.",
    ),
    ("train", ["{t}/r", CNN, "-b", "supervised.lr = -0.1"], "lr must be a positive number, got -0.1."),
    ("train", ["{t}/r", str(ROOT / "configs/cnn_full.gin"), "-b", "cifar10.root=None"], "data_batch_1 is corrupt"),
    ("train", ["{t}/r", str(ROOT / "configs/cnn_full.gin"), "-b", "cifar10.root='{t}/nowhere'"], "CIFAR-10 not found"),
    ("train", ["{t}/trained", CNN, "-b", "training_loop.resume=False"], "already holds a checkpoint (last.ckpt)"),
    ("train", ["{t}/r"], "the following arguments are required: CONFIGS"),
    # bin/evaluate.py
    ("evaluate", ["{t}/a_file"], "is not a run folder"),
    ("evaluate", ["{t}/run_no_ckpt"], "has no best.ckpt"),
    (
        "evaluate",
        ["{t}/run_no_ckpt", "--checkpoint", "worst"],
        "Unknown checkpoint 'worst'. Valid checkpoint names: best, last.",
    ),
    # bin/download_data.py
    ("download", ["imagenet"], "Unknown data set 'imagenet' (to download). Valid data set names: cifar10."),
    # bin/find_lr.py
    ("find_lr", [CNN, "--steps", "0", "--out", "{t}/lr"], "the test needs at least 2 steps (--steps), got 0."),
    ("find_lr", [CNN, "--steps", "-5", "--out", "{t}/lr"], "the test needs at least 2 steps (--steps), got -5."),
    (
        "find_lr",
        [CNN, "--max-lr", "inf", "--out", "{t}/lr"],
        "must satisfy 0 < min_lr < max_lr < inf, got 1e-06 and inf",
    ),
    ("find_lr", ["#", "--out", "{t}/lr"], "No config file given"),
    ("find_lr", [CNN, "--out", str(ROOT / "src")], "lies in the repository's code: choose a folder under"),
    ("find_lr", [CNN, "--out", "{t}/a_file"], "is a file, not a folder: choose another."),
    # runners
    ("run_local", ["{t}/empty.sh"], "is not a batch file: it has no job lines and no `job` function."),
    ("run_local", ["{t}/missing.sh"], "does not exist"),
    ("run_local", ["{t}/one_job.sh", "--jobs", "0"], "--jobs must be at least 1, got 0."),
    ("run_local", ["{t}/one_job.sh", "--jobs", "two"], "argument --jobs/-j: invalid int value: 'two'"),
    ("run_local", ["{t}/one_job.sh", "--gpus", "0"], "--gpus '0': no GPU '0' on this machine. GPUs here: none"),
    ("run_local", ["{t}/one_job.sh", "--gpus-per-job", "1"], "--gpus-per-job 1: not enough GPUs (nvidia-smi is"),
    ("run_local", ["{t}/one_job.sh", "--jobs-per-gpu", "0"], "--jobs-per-gpu must be at least 1, got 0."),
    ("run_slurm", ["{t}/one_job.sh"], "SLURM is not installed here: `sbatch` is not on PATH"),
    ("run_slurm", ["{t}/one_job.sh", "--max-jobs", "0"], "--max-jobs must be at least 1, got 0."),
    ("run_slurm", ["{t}/one_job.sh", "--time", "4h"], "--time '4h' is not a time SLURM reads: use minutes, MM:SS,"),
    # browsing
    ("runs", ["{t}/nowhere"], "is not a folder"),
    ("diff_runs", ["{t}/run_no_ckpt", "{t}/a_file"], "is not a run folder"),
    ("diff_runs", ["{t}/run_no_ckpt", "{t}/broken_run"], "not valid gin"),
]
MAINS = {
    "train": training.train_main,
    "evaluate": training.evaluate_main,
    "download": training.download_main,
    "find_lr": training.find_lr_main,
    "run_local": runners.run_local_main,
    "run_slurm": runners.run_slurm_main,
    "runs": runs.runs_main,
    "diff_runs": runs.diff_runs_main,
}


def test_typo_of_a_training_loop_parameter_lists_only_what_users_set(capsys):
    from src.training_loop import INTERNAL

    assert call(training.train_main, ["unused", CNN, "-b", "training_loop.devcies = 1"]) == 2
    valid = capsys.readouterr().err.split("Valid: ")[1]
    assert "seed" in valid and not [name for name in INTERNAL if name in valid]


@pytest.mark.parametrize("script, argv, expected", CLI_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CLI_CASES)])
def test_cli_bad_input(place, capsys, monkeypatch, script, argv, expected):
    monkeypatch.setenv("PATH", str(place / "no-bin"))  # no sbatch here, whatever the machine has
    argv = [a.replace("{t}", str(place)) for a in argv]
    before = sorted(p.name for p in place.iterdir())
    code = call(MAINS[script], argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 if script == "train" else code != 0  # README: a mistake in the input exits 2
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in place.iterdir()) == before  # no half-created run folder


def test_experiment_main_bad_inputs(tmp_path, capsys):
    from src.cli.experiment import experiment_main
    from src.searches.experiment import grid

    (tmp_path / "template_config.gin").write_text("")
    searches = {"small": grid({"supervised.lr": [0.1]})}
    assert call(lambda a: experiment_main(tmp_path, searches, argv=a), ["prepare", "--name", "huge"]) == 2
    assert capsys.readouterr().err.strip() == "error: Unknown search 'huge'. Valid search names: small."
    assert call(lambda a: experiment_main(tmp_path, searches, argv=a), ["launch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: argument command: invalid choice: 'launch'") and "\n" not in err


@pytest.mark.parametrize(
    "function, path, expected",
    [
        ("load_H", "a_file", "is not a run folder"),
        ("load_C", "nowhere", "is not a run folder"),
        ("load_C", "broken_run", "not valid gin"),
        ("load_model", "run_no_ckpt", "has no best.ckpt"),
        ("load_runs", "nowhere", "does not exist"),
    ],
)
def test_results_api_bad_input(place, function, path, expected):
    from src import results

    with pytest.raises(UserError) as error:
        getattr(results, function)(place / path)
    assert expected in str(error.value) and "\n" not in str(error.value)
