"""Helpers shared by the benchmarks: statistics, machine description, timed subprocesses, fake CIFAR-10.

Every figure is the median of BENCH_REPEATS runs (default 5) with min-max; A-vs-B comparisons alternate A, B, A, B
in the same invocation, after one discarded warm-up of each.
"""

from __future__ import annotations

import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# The CIFAR-10-sized workload of harness_overhead, compile and memory: 2 epochs of 25 training batches on a fake
# cifar-10-batches-py (fake_cifar), validation and test limited to 5 batches.
CIFAR_BINDINGS = (
    "training_loop.data='cifar10'",
    "training_loop.n_epochs=2",
    "training_loop.limit_train_batches=25",
    "training_loop.limit_val_batches=5",
    "training_loop.limit_test_batches=5",
)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# BENCH_SMOKE=1 (make bench-smoke, CI): every guard once at tiny sizes, no waiting for idle cores: the figures mean
# nothing, but a benchmark that no longer runs on the tree fails there instead of rotting unseen.
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
# In smoke mode: 2 training epochs of a few batches and a fake CIFAR-10 of 5,000 + 1,000 images (hence n_valid).
SMOKE_BINDINGS = (
    "training_loop.n_epochs=2",
    "training_loop.limit_train_batches=3",
    "training_loop.limit_val_batches=1",
    "training_loop.limit_test_batches=1",
    "cifar10.n_valid=500",
)


def repeats(default: int = 5) -> int:
    return 1 if SMOKE else int(os.environ.get("BENCH_REPEATS", default))


def smoke_sized(bindings: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The bindings, made tiny in smoke mode (later bindings win)."""
    return (*bindings, *SMOKE_BINDINGS) if SMOKE else tuple(bindings)


def med(values) -> float:
    return statistics.median(values)


def fmt(values, unit: str = "", digits: int = 2) -> str:
    """'median (min–max) unit' of a list of measurements."""
    return (
        f"{med(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f}){' ' + unit if unit else ''}"
        f" n={len(values)}"
    )


def row(*cells) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


def header(*cells) -> None:
    row(*cells)
    row(*["---"] * len(cells))


def env(**extra: str) -> dict[str, str]:
    """The environment of a benchmarked subprocess: the repository on PYTHONPATH, unbuffered output."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def timed(cmd: list[str], check: bool = True, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, completed process) of a command run from the repository root, output captured."""
    kwargs.setdefault("env", env())
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - start
    if check and done.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done


def busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat, all cores)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf("SC_CLK_TCK")  # user nice system irq softirq steal


def own_seconds() -> float:
    """CPU seconds of this process and of its finished children."""
    return sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )


DISTURBED = []  # one entry per measurement that other processes disturbed even after its retries


# seconds this script may spend waiting for idle cores, in all
WAIT_BUDGET = [0.0 if SMOKE else float(os.environ.get("BENCH_WAIT_BUDGET", 120))]


def wait_idle(max_wait: float = 60.0, window: float = 0.5, threshold: float = 0.1) -> None:
    """Wait (at most `max_wait` s, within the script's budget) until the cores are >= 90% idle over `window` s."""
    start = time.time()
    while time.time() - start < min(max_wait, WAIT_BUDGET[0]):
        before = busy_seconds()
        time.sleep(window)
        if busy_seconds() - before < threshold * window * (os.cpu_count() or 1):
            break
    WAIT_BUDGET[0] = max(WAIT_BUDGET[0] - max(time.time() - start - window, 0.0), 0.0)  # (no wait: no refund)


def guarded(fn, retries: int = 3, label: str | None = None):
    """fn(), re-run (up to `retries` times) when other processes used more than a little CPU meanwhile.

    The machine is shared (2 cores; other people run test suites): a run that competed for the cores is not
    a measurement of this code. Foreign CPU = all CPU used on the machine - CPU of this process and its children.
    """
    for _ in range(retries + 1 if WAIT_BUDGET[0] > 0 else 1):
        wait_idle()
        busy, own, start = busy_seconds(), own_seconds(), time.perf_counter()
        result = fn()
        wall = time.perf_counter() - start
        foreign = (busy_seconds() - busy) - (own_seconds() - own)
        if foreign < max(0.3, 0.03 * wall):
            return result
    DISTURBED.append(f"{label or getattr(fn, '__name__', fn)}: {foreign:.1f} CPU-s of other processes in {wall:.1f} s")
    return result


def alternate(a, b, n: int, warmup: bool = True, labels: tuple[str, str] = ("A", "B")) -> tuple[list, list]:
    """Results of a(), b(), a(), b(), ... (n each, each guarded), after one discarded call of each when `warmup`."""
    results = alternate_many(dict(zip(labels, (a, b), strict=True)), n, warmup)
    return results[labels[0]], results[labels[1]]


def alternate_many(fns: dict, n: int, warmup: bool = True, guard: bool = True) -> dict[str, list]:
    """{label: results} of each fn in turn, n rounds (each call guarded, or only preceded by `wait_idle` without
    `guard`), after one discarded round when `warmup`."""
    if warmup and not SMOKE:
        for fn in fns.values():
            fn()
    results: dict[str, list] = {label: [] for label in fns}
    for _ in range(n):
        for label, fn in fns.items():
            if guard:
                results[label].append(guarded(fn, label=label))
            else:
                wait_idle()
                results[label].append(fn())
    return results


def disturbed_note() -> None:
    """A line saying which measurements were disturbed by other processes despite the retries (if any)."""
    if DISTURBED:
        print(f"\n{len(DISTURBED)} measurement(s) disturbed by other processes: " + "; ".join(DISTURBED), flush=True)


def speed_index() -> float:
    """ms for 10^6 Python additions (best of 5): the VM's speed drifts (host contention the guest cannot see),
    so run_all.sh prints this before each script; compare ratios, not absolute figures of different moments."""
    best = float("inf")
    for _ in range(5):
        start, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from importlib import metadata

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "pytorch-lightning": metadata.version("pytorch-lightning"),
    }


def fake_cifar(data_dir: str | Path, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> Path:
    """A `cifar-10-batches-py` folder of random uint8 images in the real pickle format (5 train batches + test);
    5,000 + 1,000 in smoke mode."""
    import numpy as np

    if SMOKE:
        n_train, n_test = min(n_train, 5000), min(n_test, 1000)
    folder = Path(data_dir) / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per = n_train // 5
    for name, n in [*[(f"data_batch_{i}", per) for i in range(1, 6)], ("test_batch", n_test)]:
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"filenames": [b"x.png"] * n,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=4)  # numpy via _reconstruct, as the loader allows
    return Path(data_dir)
