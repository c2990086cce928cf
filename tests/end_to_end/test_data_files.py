"""Data beyond memory: the file-backed (torchdata) and streaming (litdata) data modules with worker processes resume
exactly mid-epoch (SIGUSR1, SIGKILL at random points, 2-process DDP), train as the in-memory data does, and turn bad
input into one line naming the folder and the command to run."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from src.data.prepared import DataFolderError
from src.errors import UserError, one_line
from src.run import layout
from src.run.status import status_of
from tests.helpers import FAST, ROOT

TIMING = ["epoch_time", "examples_per_s"]  # the only columns that may differ between equal runs
BINDINGS = [*FAST, "cnn.dropout = 0.2", "training_loop.n_epochs = 3"]  # toy: 7 batches of 32 an epoch
MODULES = {
    "files": ("configs/cnn_files.gin", "digits_files"),
    "stream": ("configs/cnn_stream.gin", "digits_stream"),
}


def data_bindings(kind: str, workers: int = 2) -> list[str]:
    name = MODULES[kind][1]
    return [f"{name}.toy = True", f"{name}.batch_size = 32", f"{name}.num_workers = {workers}"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A DATA_DIR of this module's own (the toy folders are prepared into it on first use)."""
    folder = tmp_path_factory.mktemp("data")
    before = os.environ.get("DATA_DIR")
    os.environ["DATA_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["DATA_DIR"]
    else:
        os.environ["DATA_DIR"] = before


def train_here(run, config: str, bindings: list[str]) -> dict:
    """A training in this process (as the `train` fixture, usable by module-scoped fixtures)."""
    import gin

    from src import config as gin_config
    from src.training_loop import training_loop

    try:
        gin_config.parse([str(ROOT / config)], bindings)
        return training_loop(str(run), config_files=[str(ROOT / config)], bindings=bindings)
    finally:
        gin.clear_config()


@pytest.fixture(scope="module")
def references(data_dir, tmp_path_factory):
    """Uninterrupted runs, one per module (2 workers each), trained once for the tests below; the folders are
    prepared on first use by them."""
    runs = {}
    for kind, (config, _) in MODULES.items():
        runs[kind] = tmp_path_factory.mktemp("reference") / kind
        train_here(runs[kind], config, [*BINDINGS, *data_bindings(kind)])
    return runs


def history(run) -> pd.DataFrame:
    return pd.read_csv(run / layout.HISTORY).drop(columns=TIMING)


def weights(run, name: str = layout.LAST_CKPT) -> dict:
    return torch.load(run / name, weights_only=True)["state_dict"]


def assert_same_run(reference, run) -> None:
    """history.csv (all but timing), the test metrics and last.ckpt's weights, bit for bit."""
    pd.testing.assert_frame_equal(history(reference), history(run), check_exact=True)
    assert json.loads((reference / layout.EVAL_RESULTS).read_text()) == json.loads(
        (run / layout.EVAL_RESULTS).read_text()
    )
    expected, found = weights(reference), weights(run)
    assert expected.keys() == found.keys()
    assert all(torch.equal(expected[k], found[k]) for k in expected)


def warm_train(point: str, args: list[str], log) -> int:
    """bin/train.py ARGS with tests/kill_at.py's POINT, forked from a process that has imported torch and Lightning
    (src/runners/warm.py: ~4 s less per start); the exit code (-9: SIGKILL)."""
    from src.runners.warm import WarmProcess

    process = WarmProcess([point, *args], dict(os.environ), ROOT, log, entry="tests.kill_at:main")
    return process.wait(timeout=300)


def test_file_backed_digits_train_exactly_as_in_memory_digits(references, train, tmp_path, data_dir):
    """The same examples, splits and (seed, epoch) order from files as from memory: the same run, bit for bit; the
    folder was prepared on first use, in shards."""
    train(tmp_path / "memory", *BINDINGS[len(FAST) :])
    reference = references["files"]
    pd.testing.assert_frame_equal(history(tmp_path / "memory"), history(reference), check_exact=True)
    memory = json.loads((tmp_path / "memory" / layout.EVAL_RESULTS).read_text())
    assert memory == json.loads((reference / layout.EVAL_RESULTS).read_text())
    assert len(list((data_dir / "digits_files_toy").glob("train-*.x.npy"))) == 4  # 200 examples, 64 a shard
    assert (data_dir / "digits_stream_toy" / "prepared.json").is_file()


@pytest.mark.parametrize("kind", ["files", "stream"])
def test_preempted_and_killed_runs_with_workers_end_as_an_uninterrupted_one(references, tmp_path, kind):
    """SIGUSR1 mid-epoch: preempted.ckpt at that batch's end, exit 130; then SIGKILL at random steps (with 2 workers
    reading); the last re-run ends with the same history, test metrics and weights as the uninterrupted run."""
    config, _ = MODULES[kind]
    run = tmp_path / "run"
    args = [str(run), config, "-b", "#".join([*BINDINGS, *data_bindings(kind)])]
    steps = int(history(references[kind])["step"].iloc[0])  # per epoch
    rng = random.Random(28)
    code = warm_train(f"usr1:{steps + 3}", args, tmp_path / "usr1.log")  # mid-way through the second epoch
    log = (tmp_path / "usr1.log").read_text()
    assert code == 130, log[-3000:]
    assert f"preempted: saved {run / layout.PREEMPTED_CKPT} after step {steps + 3}" in log
    assert torch.load(run / layout.PREEMPTED_CKPT, weights_only=True)["global_step"] == steps + 3
    for point in (f"step:{rng.randint(1, steps - 3)}", f"step:{rng.randint(steps, 2 * steps - 4)}"):
        code = warm_train(point, args, tmp_path / "kill.log")  # resumed mid-epoch, then killed
        assert code == -signal.SIGKILL, (tmp_path / "kill.log").read_text()[-3000:]
    assert warm_train("step:1000", args, tmp_path / "final.log") == 0, (tmp_path / "final.log").read_text()[-3000:]
    assert status_of(run) == "finished" and not (run / layout.PREEMPTED_CKPT).exists()
    assert_same_run(references[kind], run)
    starts = [a["start_epoch"] for a in json.loads((run / layout.META).read_text())["attempts"]]
    assert len(starts) == 4 and starts[1] == 1  # the first re-run resumed inside the second epoch


def test_an_object_store_url_is_read_through_litdatas_cache(references, train, tmp_path, data_dir):
    """`local:FOLDER` makes litdata read a folder as it reads s3:// or gs:// (index and chunks downloaded into the
    cache): the same batches, so the same first epoch."""
    url = f"local:{data_dir / 'digits_stream_toy'}"
    cache = tmp_path / "cache"
    train(tmp_path / "run", *BINDINGS[len(FAST) :], *data_bindings("stream"), "training_loop.n_epochs = 1",
          f"digits_stream.input_dir = '{url}'", f"digits_stream.cache_dir = '{cache}'",
          configs=(MODULES["stream"][0],))  # fmt: skip
    pd.testing.assert_frame_equal(history(tmp_path / "run"), history(references["stream"]).iloc[:1], check_exact=True)
    assert list(cache.rglob("chunk-*.bin")), "the chunks came through the cache"


@pytest.mark.parametrize("kind", ["files", "stream"])
def test_ddp_two_processes_preempted_mid_epoch_end_as_uninterrupted(references, tmp_path, data_dir, kind):
    """2 processes on the CPU, each reading its share of every epoch with 2 workers: a SIGUSR1 mid-epoch, then the
    re-run, end as the uninterrupted 2-process run."""
    bindings = [
        *BINDINGS,
        *data_bindings(kind),
        "training_loop.n_epochs = 2",
        "training_loop.accelerator = 'cpu'",
        "training_loop.devices = 2",
        "training_loop.strategy = 'ddp'",
        "preemption.ddp_every_n_steps = 1",
        # litdata hands each process whole batches of the 50 validation examples: with 32 a batch one gets none
        *(["digits_stream.batch_size = 16"] if kind == "stream" else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def train_ddp(run, point: str = "step:1000") -> subprocess.CompletedProcess:
        cmd = [sys.executable, "tests/kill_at.py", point, str(run), MODULES[kind][0], "-b", "#".join(bindings)]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    reference, run = tmp_path / "reference", tmp_path / "run"
    out = train_ddp(reference)
    assert out.returncode == 0, out.stderr[-3000:]
    steps = list(pd.read_csv(reference / layout.HISTORY)["step"])
    if kind == "files":
        assert steps == [4, 8]  # 100 examples a process: 4 batches of 32
    stop = steps[0] + 2  # every process warned at that step: the second epoch's second batch
    out = train_ddp(run, f"usr1:{stop}")
    assert out.returncode == 130, out.stderr[-3000:]
    assert "preempted: saved" in out.stderr and f"after step {stop}" in out.stderr
    out = train_ddp(run)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(reference, run)


# --- bad input: one line naming the folder and what to run; no run folder ---------------------------------------


def damage(folder, how: str, kind: str) -> str:
    """Damage a copy of a prepared folder; the words the error must contain."""
    marker = "index.json" if kind == "files" else "prepared.json"
    if how == "half-written":
        (folder / marker).unlink()
        return "is incomplete"
    if how == "truncated":
        shard = sorted(folder.glob("train-*.x.npy") if kind == "files" else folder.glob("train/chunk-*.bin"))[1]
        shard.write_bytes(shard.read_bytes()[:100])
        return f"{shard.name}"
    found = json.loads((folder / marker).read_text())
    (folder / marker).write_text(json.dumps({**found, "version": 0}))
    return "version 0 data, and this code reads"


@pytest.mark.parametrize("kind", ["files", "stream"])
@pytest.mark.parametrize("how", ["missing", "half-written", "truncated", "other version"])
def test_bad_data_folder_is_one_line_before_any_run_folder(references, train, tmp_path, data_dir, kind, how):
    name = MODULES[kind][1]
    folder = tmp_path / "data"
    if how != "missing":
        shutil.copytree(data_dir / f"{name}_toy", folder)
    words = "does not exist" if how == "missing" else damage(folder, how, kind)
    option = "root" if kind == "files" else "input_dir"
    run = tmp_path / "run"
    with pytest.raises(DataFolderError) as error:
        train(run, *data_bindings(kind), f"{name}.{option} = '{folder}'", configs=(MODULES[kind][0],))
    message = one_line(error.value)  # as bin/train.py prints it (without gin's context line)
    assert "\n" not in message and str(folder) in message and words in message
    assert f"bin/prepare_data.py {name} --toy --out {folder}`" in message
    assert not run.exists()


@pytest.mark.parametrize("kind", ["files", "stream"])
def test_a_worker_that_dies_is_one_line_and_the_rerun_resumes(references, train, tmp_path, monkeypatch, kind):
    """Loader workers killed mid-epoch (as the OOM killer would), while reading: one line naming the data and what to
    run; the run folder holds FAILED and whole checkpoints only, and the same command finishes the run."""
    import litdata

    from src.data.array_shards import ShardedSplit
    from src.training.callbacks.preemption import Preemption

    trigger, main = tmp_path / "kill workers", os.getpid()
    dataset = ShardedSplit if kind == "files" else litdata.StreamingDataset
    read, hook = dataset.__getitem__, Preemption.on_train_batch_end

    def read_or_die(self, index):
        if os.getpid() != main and trigger.exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return read(self, index)

    def warn_the_workers(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (1, 1):
            trigger.touch()  # every read from now on kills the worker that does it
        hook(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(dataset, "__getitem__", read_or_die)
    monkeypatch.setattr(Preemption, "on_train_batch_end", warn_the_workers)
    run, name = tmp_path / "run", MODULES[kind][1]
    bindings = [*BINDINGS[len(FAST) :], *data_bindings(kind), "training_loop.n_epochs = 2"]
    with pytest.raises(UserError) as error:
        train(run, *bindings, configs=(MODULES[kind][0],))
    message = one_line(error.value)
    assert "a data loader worker reading" in message and f"{name}_toy died (DataLoader worker (pid" in message
    assert "run the same command again to resume" in message
    assert status_of(run) == "failed" and not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    trigger.unlink()
    train(run, *bindings, configs=(MODULES[kind][0],))
    assert status_of(run) == "finished"
    assert list(pd.read_csv(run / layout.HISTORY)["epoch"]) == [1, 2]


def test_prepare_data_command(tmp_path, data_dir):
    from src.cli.data import prepare_main

    out = tmp_path / "digits_stream"
    assert prepare_main(["digits_stream", "--toy", "--out", str(out)]) == 0
    assert json.loads((out / "prepared.json").read_text())["source"] == {"name": "digits_stream", "toy": True}
    assert prepare_main(["digits_filez"]) == 2  # a typo: one line, with the valid names


def test_a_streamed_epoch_deserialises_each_example_once(tmp_path):
    """litdata's default decodes windows of up to 256 items of a chunk, and its workers then use few of them (on
    CIFAR-10: 1.7x the workers' time, 12x the items decoded): the stream decodes only the items it is asked for,
    and gets the same batches."""
    import multiprocessing

    from litdata.streaming.serializers import NumpySerializer

    from src.data.files import digits_arrays
    from src.data.streaming import DigitsStream, write

    folder = tmp_path / "one_chunk_per_split"  # (digits_stream's own chunks of 8 would hide any window)
    write(folder, digits_arrays(toy=False), {"name": "digits_stream", "toy": False})
    decoded = multiprocessing.get_context("fork").Value("l", 0)  # counted in the (forked) workers

    def epoch(batch_decode: int | str) -> list[torch.Tensor]:
        data = DigitsStream(num_workers=2, input_dir=str(folder))
        data.batch_decode = batch_decode
        data.prepare_data()
        decoded.value = 0
        return [y for _, y in data.train_dataloader()]

    deserialize = NumpySerializer.deserialize

    def counted(self, data):
        with decoded.get_lock():
            decoded.value += 1
        return deserialize(self, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NumpySerializer, "deserialize", counted)
        labels = epoch(DigitsStream.batch_decode)
        assert decoded.value == sum(len(y) for y in labels) == 1197  # the training split, each example once
        assert all(torch.equal(a, b) for a, b in zip(epoch("auto"), labels, strict=True))  # the same batches
        assert decoded.value > 5 * 1197  # litdata's default, for contrast


def test_a_stream_worker_killed_while_handing_over_a_batch_is_one_line(data_dir):
    """The training process can fail on the broken hand-over (ConnectionResetError) before DataLoader notices the
    death: the stream module still finds its dead worker and says so in one line (CI saw this race once)."""
    import multiprocessing

    from src.data.streaming import DigitsStream

    data = DigitsStream(toy=True, batch_size=8, num_workers=2)
    data.prepare_data()
    batches = iter(data.train_dataloader())
    next(batches)
    workers = multiprocessing.active_children()
    assert len(workers) == 2
    # torch's SIGCHLD handler would raise DataLoader's own error at a random point here: the race is the case where
    # the broken connection comes first (that handler's error inside the check: tests/unit/test_data.py)
    torch_handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        os.kill(workers[0].pid, signal.SIGKILL)
        with pytest.raises(UserError) as error:
            data.on_exception(ConnectionResetError(104, "Connection reset by peer"))
    finally:
        signal.signal(signal.SIGCHLD, torch_handler)
    assert f"digits_stream_toy died (DataLoader worker (pid(s) {workers[0].pid}) exited" in one_line(error.value)
    assert not any(worker.is_alive() for worker in workers)  # shut down with the failure


def test_stream_workers_live_across_epochs_and_serve_litdatas_own_batches(data_dir):
    """The stream's workers are started once and told each epoch (litdata's own loader starts new ones every epoch:
    a third of the stream's throughput on 2 cores): the same batches as litdata's loader, epoch after epoch, also
    when Lightning stops an epoch before the workers reach its end, and after a state loaded mid-epoch, into a new
    loader or into one whose workers are running."""
    import itertools
    import multiprocessing

    from litdata import StreamingDataLoader, StreamingDataset

    from src.data.streaming import DigitsStream

    data = DigitsStream(toy=True, batch_size=8, num_workers=2)
    data.prepare_data()
    folder = f"{data.location}/train"

    def take(batches, n: int | None = None) -> list[list[int]]:  # an epoch (a loader) or its next n batches
        return [y.tolist() for _, y in itertools.islice(batches, n if n is not None else len(batches))]

    litdatas = StreamingDataLoader(StreamingDataset(folder, shuffle=True, seed=0, batch_decode=1), batch_size=8,
                                   num_workers=2, multiprocessing_context="fork")  # fmt: skip
    expected = [take(litdatas) for _ in range(4)]
    assert expected[0] != expected[1]  # (shuffled anew each epoch)

    loader = data.train_dataloader()
    assert take(loader) == expected[0]
    workers = multiprocessing.active_children()
    assert len(workers) == 2
    epoch = iter(loader)
    assert take(epoch, 10) == expected[1][:10]
    state = loader.state_dict()
    assert take(epoch, 3) == expected[1][10:13]  # and stopped there
    assert take(loader) == expected[2]
    assert multiprocessing.active_children() == workers  # the same two, all along

    loader.load_state_dict(state)  # while its workers run: new ones, which resume the state
    assert take(loader) == expected[1][10:]
    assert take(loader) == expected[2]
    resumed = DigitsStream(toy=True, batch_size=8, num_workers=2).train_dataloader()  # a new process's
    resumed.load_state_dict(state)
    assert take(resumed) == expected[1][10:]
    assert take(resumed) == expected[2]
    assert take(resumed) == expected[3]
    running = multiprocessing.active_children()
    assert len(running) == 4  # (the loader's second two, and the resumed one's)
    del loader, epoch, resumed, data
    assert not any(worker.is_alive() for worker in running)  # shut down when let go of (not at a garbage collection)


def test_stream_workers_do_not_gather_threads_over_epochs_stopped_early(tmp_path, data_dir):
    """A remote data set's reader has a download thread, which litdata stops at the end of an epoch: a persistent
    worker whose epochs Lightning stops before their end (at `len` batches, or a limit) stops it as the next starts
    (one more thread every such epoch otherwise)."""
    import itertools
    import multiprocessing

    from src.data.streaming import DigitsStream

    DigitsStream(toy=True).prepare_data()  # (the default folder, on first use)
    data = DigitsStream(toy=True, batch_size=8, num_workers=2, cache_dir=str(tmp_path / "cache"),
                        input_dir=f"local:{data_dir / 'digits_stream_toy'}")  # fmt: skip
    data.prepare_data()
    loader = data.train_dataloader()

    def threads() -> list[int]:
        return [len(os.listdir(f"/proc/{worker.pid}/task")) for worker in multiprocessing.active_children()]

    def epochs_stopped_early(n: int) -> None:
        for _ in range(n):
            assert len(list(itertools.islice(loader, 5))) == 5  # of 12

    epochs_stopped_early(2)
    first = threads()
    epochs_stopped_early(10)

    def bounded(counts: list[int]) -> bool:
        return len(counts) == 2 and all(n <= m + 1 for n, m in zip(counts, first, strict=True))

    deadline = time.monotonic() + 30  # a stopped thread ends within its next wait (later on a loaded machine)
    while not bounded(later := threads()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bounded(later), (first, later)  # (10 more each otherwise)
