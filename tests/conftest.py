"""Shared test helpers: the repository root and a fast in-process training on toy digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Small and fast: toy digits, a narrow CNN, no sanity check, no TensorBoard.
FAST = [
    "digits.toy = True",
    "digits.batch_size = 32",
    "cnn.width = 8",
    "training_loop.loggers = []",
    "training_loop.num_sanity_val_steps = 0",
    "training_loop.n_epochs = 3",
]


@pytest.fixture
def train():
    """train(save_dir, *bindings, configs=("configs/cnn.gin",)) -> metrics, in this process."""

    def run(save_dir, *bindings, configs=("configs/cnn.gin",)):
        from src import config
        from src.training_loop import training_loop

        files = [str(ROOT / c) for c in configs]
        all_bindings = [*FAST, *bindings]
        config.parse(files, all_bindings)
        return training_loop(str(save_dir), config_files=files, bindings=all_bindings)

    return run


def evaluate_by_hand(run, checkpoint: str, split: str, batch_size: int):
    """(mean loss, accuracy) of a digits run's saved weights on a split, each example weighted once (gin must hold
    the run's data bindings)."""
    import torch
    import torch.nn.functional as F

    from src.data import DATA
    from src.results import load_model

    data = DATA.get("digits")(seed=0)
    model, x, y = load_model(run, checkpoint), data.splits[split].x, data.splits[split].y
    with torch.no_grad():
        logits = torch.cat(
            [model(data.transform(x[i : i + batch_size], train=False)) for i in range(0, len(y), batch_size)]
        )
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


@pytest.fixture
def env():
    """Environment for subprocesses running bin/ scripts."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "DATA_DIR": os.environ.get("DATA_DIR", "data")}


def lock_holder(run) -> subprocess.Popen:
    """Another process holding the run folder's lock (as a training would), until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from src import run_lock; run_lock.acquire({str(run)!r}); "
            "print('locked', flush=True); time.sleep(300)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture(autouse=True)
def fresh_gin_config():
    """Bindings parsed by one test (e.g. digits.toy = True) must not leak into the next."""
    yield
    import gin

    gin.clear_config()


# --- Markers: `make test-fast` deselects `slow` and `slurm` -------------------------------------------------------
# Set here, by file and test name, so that the test files need no edits. Slow: 8 s or more each on 2 shared CPU
# cores (`make test` prints the slowest 15: move a test here when it shows up there).
SLURM_FILES = {"test_slurm.py"}
SLOW_TESTS = {
    "test_cli.py": ["test_train_then_evaluate_end_to_end"],
    "test_data.py": ["test_resnet_trains_on_generated_cifar10"],
    "test_experiments.py": [
        "test_a_run_another_process_trains_is_skipped_not_failed",
        "test_bash_batch_runs_every_line_and_reports_failures",
        "test_local_runner_ctrl_c_stops_children_and_they_resume",
        "test_local_runner_parallel_skips_finished_and_counts_failures",
        "test_report_on_partial_results",
        "test_runs_and_diff_runs",
    ],
    "test_loggers.py": [
        "test_mlflow_params_metrics_and_resume_in_the_same_run",
        "test_neptune_offline_params_and_metrics",
        "test_secrets_never_reach_the_run_folder",
        "test_tensorboard_has_hparams_and_epoch_metrics",
    ],
    "test_reliability.py": [
        "test_a_stale_preemption_checkpoint_is_not_resumed_and_goes",
        "test_checkpoint_with_pickled_code_is_refused_safely",
        "test_config_guard",
        "test_corrupt_last_checkpoint_falls_back_to_previous",
        "test_ddp_on_cpu_two_processes",
        "test_no_valid_checkpoint_starts_afresh",
        "test_one_writer_per_run_folder",
        "test_preemption_warning_stops_at_a_batch_end_and_the_resumed_run_is_identical",
        "test_sigkill_at_many_points_then_rerun_equals_uninterrupted",
    ],
    "test_setup.py": ["test_cnn_config_reaches_95_percent_on_digits"],
    "test_training.py": [
        "test_history_dropped_past_the_checkpoint",
        "test_last_checkpoint_is_written_every_epoch",
        "test_lr_schedule_multiplies_lr",
        "test_results_api_on_trained_runs",
        "test_resume_equals_uninterrupted_run",
        "test_training_learns_and_fills_the_run_folder",
    ],
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = item.path.name
        if file in SLURM_FILES:
            item.add_marker(pytest.mark.slurm)
        if getattr(item, "originalname", item.name) in SLOW_TESTS.get(file, ()):
            item.add_marker(pytest.mark.slow)
