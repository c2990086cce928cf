"""Data sets: shapes, stable splits, per-epoch shuffling; CIFAR-10 reader and downloader on generated archives."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.data import DATA
from src.data.cifar10 import augment
from src.data.download import download
from src.data.in_memory import EpochBatchSampler
from src.errors import UserError
from tests.helpers import make_cifar_archive


def test_digits_shapes_and_sizes():
    dm = DATA.get("digits")(batch_size=32)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 1197, "valid": 300, "test": 300}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 and y.shape == (32,)
    assert 0 <= x.min() and x.max() <= 1
    toy = DATA.get("digits")(toy=True)
    assert {k: len(v) for k, v in toy.splits.items()} == {"train": 200, "valid": 50, "test": 50}


def test_digits_file_equals_scikit_learns_loader():
    from sklearn.datasets import load_digits

    from src.data.digits import read_digits

    images, labels = read_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.data) and np.array_equal(labels, reference.target)


def test_digits_splits_are_stable_and_disjoint():
    a, b = DATA.get("digits")(seed=0), DATA.get("digits")(seed=5)  # the training seed does not move the split
    for name in ("train", "valid", "test"):
        assert torch.equal(a.splits[name].x, b.splits[name].x)
    assert sum(len(split) for split in a.splits.values()) == 1797
    assert a.splits["train"].y[:20].tolist() != sorted(a.splits["train"].y[:20].tolist())  # shuffled before the cut


def test_epoch_sampler_depends_only_on_seed_and_epoch():
    s = EpochBatchSampler(10, batch_size=4, shuffle=True, seed=1)
    first = [b.tolist() for b in s]
    s.set_epoch(1)
    second = [b.tolist() for b in s]
    s.set_epoch(0)
    assert [b.tolist() for b in s] == first != second
    assert sorted(sum(first, [])) == list(range(10)) and len(s) == 3 == len(first)
    assert len(EpochBatchSampler(10, 4, shuffle=False, drop_last=True)) == 2


def test_download_and_read_cifar10(tmp_path, served):
    www, base = served
    archive, md5 = make_cifar_archive(www)
    data_dir = tmp_path / "data"
    folder = download("cifar10", data_dir, url=f"{base}/{archive.name}", md5=md5, quiet=True)
    assert folder == data_dir / "cifar-10-batches-py" and (folder / "test_batch").is_file()
    assert not list(data_dir.glob("*.part")) and not list(data_dir.glob(".unpack-*"))

    dm = DATA.get("cifar10")(root=str(data_dir), n_valid=10, batch_size=8)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 50, "valid": 10, "test": 12}
    raw, y = next(iter(dm.train_dataloader()))  # the loader only indexes: uint8 stays uint8 (4x less to copy)
    assert raw.shape == (8, 3, 32, 32) and raw.dtype == torch.uint8 and y.dtype == torch.long
    x, _ = next(dm.batches("test"))  # normalised as the model sees it (on the device, in training)
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 0.5
    # the second call finds the folder and downloads nothing
    assert download("cifar10", data_dir, url=f"{base}/missing", md5=md5, quiet=True) == folder


def test_download_bad_checksum_keeps_nothing(tmp_path, served):
    www, base = served
    archive, _ = make_cifar_archive(www)
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="Checksum mismatch"):
        download("cifar10", data_dir, url=f"{base}/{archive.name}", md5="0" * 32, quiet=True)
    assert list(data_dir.iterdir()) == []


def test_download_unreachable_is_one_clear_error(tmp_path, served):
    _, base = served
    with pytest.raises(UserError, match="Cannot download"):
        download("cifar10", tmp_path / "data", url=f"{base}/nope.tar.gz", quiet=True)
    assert not list((tmp_path / "data").glob("*"))


def test_cifar10_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="bin/download_data.py cifar10"):
        DATA.get("cifar10")(root=str(tmp_path)).prepare_data()


def test_cifar10_corrupt_batch_is_reported(tmp_path, served):
    www, base = served
    archive, md5 = make_cifar_archive(www)
    folder = download("cifar10", tmp_path, url=f"{base}/{archive.name}", md5=md5, quiet=True)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(UserError, match="data_batch_3 is corrupt"):
        DATA.get("cifar10")(root=str(tmp_path)).prepare_data()


def test_cifar10_reader_refuses_code_in_pickles(tmp_path, served):
    www, base = served
    archive, md5 = make_cifar_archive(www)
    folder = download("cifar10", tmp_path, url=f"{base}/{archive.name}", md5=md5, quiet=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(UserError, match="corrupt"):
        DATA.get("cifar10")(root=str(tmp_path)).prepare_data()


def test_cifar10_toy_and_augmentation(tmp_path, served):
    www, base = served
    archive, md5 = make_cifar_archive(www, n_per_batch=130)
    download("cifar10", tmp_path, url=f"{base}/{archive.name}", md5=md5, quiet=True)
    toy = DATA.get("cifar10")(root=str(tmp_path), toy=True)
    assert {k: len(v) for k, v in toy.splits.items()} == {"train": 500, "valid": 100, "test": 100}
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    torch.manual_seed(0)
    outs = [augment(x) for _ in range(5)]
    assert all(out.shape == x.shape for out in outs)
    assert any(not torch.equal(out, x) for out in outs)
    # each output image is one 32x32 window of its (maybe flipped) zero-padded image
    windows = [
        [F.pad(image, (4, 4, 4, 4))[:, top : top + 32, left : left + 32] for top in range(9) for left in range(9)]
        for image in (x[0], x[0].flip(2), x[1], x[1].flip(2))
    ]
    for out in outs:
        for i in range(2):
            assert any(torch.equal(out[i], w) for w in windows[2 * i] + windows[2 * i + 1])


def test_in_memory_data_lives_on_a_gpu_by_default_when_it_fits(monkeypatch):
    from src.data.in_memory import resident

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (4_000, 8_000))  # free, total bytes
    assert resident(None, gpu, 1_000) and not resident(None, gpu, 1_001)  # a quarter of the free memory at most
    assert not resident(None, cpu, 10) and resident(None, torch.device("mps"), 10**12)
    assert resident(True, gpu, 10**12) and not resident(False, gpu, 10)  # as asked, either way
    with pytest.raises(UserError, match="device_resident must be True, False or None"):
        DATA.get("digits")(device_resident="yes")


def test_device_resident_batches_are_indexed_where_the_data_lives():
    from src.data.in_memory import EpochBatchSampler

    on_meta = EpochBatchSampler(10, 4, shuffle=True, seed=3, device=torch.device("meta"))
    batches = list(on_meta)
    assert [b.device.type for b in batches] == ["meta"] * 3 and len(on_meta) == 3
    on_cpu = [b.tolist() for b in EpochBatchSampler(10, 4, shuffle=True, seed=3)]
    assert [len(b) for b in on_cpu] == [b.shape[0] for b in batches]  # the same order, drawn on the CPU


def test_device_resident_moves_the_data_to_the_training_device():
    from types import SimpleNamespace

    dm = DATA.get("digits")(toy=True, device_resident=True)
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")), training=True)
    dm.setup("fit")
    assert {split.x.device.type for split in dm.splits.values()} == {"meta"}
    x, y = next(iter(dm.train_dataloader()))  # indexed where the data lives: nothing to copy per step
    assert x.device.type == "meta" and x.shape == (64, 1, 8, 8)


def test_a_worker_killed_while_handing_over_a_batch_is_one_line():
    """A worker killed between sending a batch and the training process taking it: the training process fails on
    the broken connection (not on DataLoader's own check, which has not seen the death yet). That is the same one
    line as any other dead worker, and the workers are shut down; the same error with every worker alive is not
    the data's, and propagates as it is."""
    import multiprocessing
    import os
    import signal
    import types

    from src.data.workers import raise_loader_failure

    worker = multiprocessing.get_context("fork").Process(target=lambda: os.kill(os.getpid(), signal.SIGKILL))
    worker.start()
    shut = []
    iterator = types.SimpleNamespace(_workers=[worker], _shutdown_workers=lambda: shut.append(True))
    loader = types.SimpleNamespace(_iterator=iterator)
    with pytest.raises(UserError) as error:
        raise_loader_failure(ConnectionResetError(104, "Connection reset by peer"), [loader], "/data/x")
    assert str(error.value).startswith(
        f"a data loader worker reading /data/x died (DataLoader worker (pid(s) {worker.pid})"
    )
    assert "run the same command again to resume" in str(error.value) and shut == [True]

    def join_interrupted(timeout):  # torch's SIGCHLD handler raises DataLoader's own error inside the wait
        raise RuntimeError(f"DataLoader worker (pid {worker.pid}) is killed by signal: Killed. ")

    seen = types.SimpleNamespace(pid=worker.pid, exitcode=-9, join=join_interrupted)
    with pytest.raises(UserError, match=rf"died \(DataLoader worker \(pid\(s\) {worker.pid}\) exited"):
        raise_loader_failure(EOFError(), [types.SimpleNamespace(_iterator=types.SimpleNamespace(_workers=[seen]))], "x")

    alive = multiprocessing.get_context("fork").Process(target=signal.pause)
    alive.start()
    try:
        loader = types.SimpleNamespace(_iterator=types.SimpleNamespace(_workers=[alive]))
        raise_loader_failure(ConnectionResetError(104, "Connection reset by peer"), [loader], "/data/x")  # no raise
        raise_loader_failure(ValueError("a bug in the model"), [loader], "/data/x")
    finally:
        alive.kill()
        alive.join()
