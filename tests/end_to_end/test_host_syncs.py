"""No host synchronisation per training step from anything the template adds (counted on a CPU: tests/host_syncs.py).

On a GPU a step takes milliseconds and the host must stay ahead of the device: one `.item()` or blocking transfer per
step makes the host wait for the whole queue and leaves the GPU idle while it launches the next step. The template's
periodic reads (the loss for the log line, the NaN check, the trackers' step loss) happen every N steps only."""

import pytest

from tests.helpers import fake_cifar_folder
from tests.host_syncs import HostSyncs

RARE = [  # every periodic read out of a 40-step epoch: what is left is per step, or per epoch
    "finite_loss.check_every_n_steps = 1000",
    "progress_log.every_n_steps = 1000",
    "tracker_metrics.step_loss_every = 1000",
]


def syncs_of(train, run, *bindings):
    with HostSyncs() as counted:
        metrics = train(run, *RARE, "training_loop.n_epochs = 2", "training_loop.limit_val_batches = 2", *bindings)
    limit = next(int(b.split("=")[1]) for b in bindings if b.startswith("training_loop.limit_train_batches"))
    assert metrics["step"] == 2 * limit  # it trained what it was asked to
    return counted.sites()


@pytest.mark.parametrize("data", ["digits", "cifar10"])
def test_no_host_sync_per_training_step(train, tmp_path, data):
    bindings = ["digits.toy = False", "digits.batch_size = 8"]
    if data == "cifar10":
        root = fake_cifar_folder(tmp_path / "data")
        bindings = [
            "training_loop.data = 'cifar10'",
            f"cifar10.root = '{root}'",
            "cifar10.batch_size = 8",
            "cifar10.n_valid = 64",
        ]
    few = syncs_of(train, tmp_path / "few", *bindings, "training_loop.limit_train_batches = 10")
    many = syncs_of(train, tmp_path / "many", *bindings, "training_loop.limit_train_batches = 40")
    extra = {site: n - few.get(site, 0) for site, n in many.items()}
    per_step = {site: n for site, n in extra.items() if n >= 30}  # 60 more steps: a per-step site has >= 60 more
    assert per_step == {}, f"host syncs that grow with the number of steps (site: extra calls for 60 more): {per_step}"
    assert sum(many.values()) < 60  # per epoch and per run only: a few dozen


def test_periodic_reads_happen_every_n_steps_only(train, tmp_path):
    every_10 = syncs_of(
        train,
        tmp_path / "run",
        "digits.toy = False",
        "digits.batch_size = 8",
        "training_loop.limit_train_batches = 40",
        "progress_log.every_n_steps = 10",
    )
    quiet = syncs_of(
        train,
        tmp_path / "quiet",
        "digits.toy = False",
        "digits.batch_size = 8",
        "training_loop.limit_train_batches = 40",
    )
    extra = sum(every_10.values()) - sum(quiet.values())
    assert extra == 8, every_10 - quiet  # one read of the loss per log line: steps 10, 20, ..., 80
