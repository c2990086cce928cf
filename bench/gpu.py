#!/usr/bin/env python
"""Every GPU figure, in one process: the template vs Lightning alone vs the hand-written floor, alternating, on a
launch-bound and a compute-bound workload; CUDA graphs (compile='reduce-overhead') and their exact resume; and
where a step's time goes (torch.profiler, cProfile, the stacks of host synchronisations). bench/gpu.sh runs it.

    python bench/gpu.py --out DIR [--sections profile,ways,compile,autotune] [--rounds 3]
    python bench/gpu.py --smoke --out DIR       # tiny, on a CPU too: does every section still run?

One process (imports, the CUDA context and the data paid once): each measurement is a training of its own
(`training_loop` in a temporary folder, `bench/lightning_alone.main`, `bench/handwritten.main`), in rounds of
template, Lightning, floor. Figures: median (min–max) over the rounds of each training's median examples/s over its
epochs after the first (history.csv's definition); ratios per round, then their median.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import PY, env, fake_cifar  # noqa: E402

CONFIG = [str(BENCH.parent / "configs/cnn_full.gin")]  # ResNet-20 on CIFAR-10, SGD, augmentation, the 'steps' schedule
SHORT = ["training_loop.n_epochs=3", "training_loop.limit_val_batches=5", "training_loop.limit_test_batches=5"]
BF16 = ["training_loop.precision='bf16-mixed'", "training_loop.channels_last=True"]
WORKLOADS = {  # name -> bindings after configs/cnn_full.gin (the shipped config: its callbacks, logger, data)
    "ResNet-20, batch 128, fp32 (launch-bound)": [*SHORT, "training_loop.limit_train_batches=100"],
    "ResNet-20, batch 128, bf16-mixed + channels_last": [*SHORT, *BF16, "training_loop.limit_train_batches=100"],
    # ~10 kernels a step: the step time is the CPU's per-step work of the way that drives it (its fixed cost)
    "tiny MLP (hidden 16), batch 128, fp32 (per-step fixed cost)": [
        *SHORT,
        "training_loop.model='mlp'",
        "mlp.hidden=[16]",
        "training_loop.limit_train_batches=200",
    ],
    "ResNet-18-sized (width 64, 4 stages), batch 512, bf16-mixed + channels_last (compute-bound)": [
        *SHORT,
        *BF16,
        "resnet.width=64",
        "resnet.blocks=[2, 2, 2, 2]",
        "cifar10.batch_size=512",
        "training_loop.limit_train_batches=30",
    ],
}
SMOKE = [  # after a workload's bindings: tiny
    "training_loop.n_epochs=2",
    "training_loop.limit_train_batches=6",
    "training_loop.limit_val_batches=1",
    "training_loop.limit_test_batches=1",
    "cifar10.n_valid=500",
    "resnet.width=4",
    "cifar10.batch_size=16",
]
TIMING = ("epoch_time", "examples_per_s")
LOG: list[str] = []  # the long texts (profiles), written to profile.txt
MARKDOWN: list[str] = []
OUT = [Path(".")]


def say(*lines: str) -> None:
    """Print, and keep gpu.md up to date (a run cut short still leaves what it measured)."""
    for line in lines:
        print(line, flush=True)
        MARKDOWN.append(line)
    (OUT[0] / "gpu.md").write_text("\n".join(MARKDOWN) + "\n")


def median_after_first(rates: list[float]) -> float:
    return statistics.median(rates[1:] or rates)


def cell(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


# --- the three ways, in this process -------------------------------------------------------------------------------


def template(bindings: list[str], keep: str | None = None) -> list[float]:
    """Per-epoch examples/s of the template's training (`keep`: train into that folder and leave it)."""
    from src import config
    from src.training_loop import training_loop

    config.parse(CONFIG, bindings)
    with contextlib.ExitStack() as stack:
        folder = keep or f"{stack.enter_context(tempfile.TemporaryDirectory(prefix='gpu_bench_'))}/run"
        with contextlib.redirect_stdout(io.StringIO()):
            training_loop(folder, config_files=CONFIG, bindings=bindings)
        with open(f"{folder}/history.csv") as f:
            return [float(r["examples_per_s"]) for r in csv.DictReader(f)]


def lightning(bindings: list[str], extra_callbacks: list | None = None) -> list[float]:
    import lightning_alone

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return lightning_alone.main(CONFIG, bindings, extra_callbacks)["examples_per_s"]


def floor(bindings: list[str], on_step=None) -> list[float]:
    import handwritten

    return handwritten.main(CONFIG, bindings, on_step)["examples_per_s"]


WAYS = {"template": template, "Lightning alone": lightning, "floor": floor}


def ways_section(workloads: dict[str, list[str]], rounds: int, data: list[str]) -> dict[str, dict[str, list[float]]]:
    """{workload: {way: [median examples/s per round]}}, with the markdown table."""
    say("## Template vs Lightning alone vs hand-written loop", "")
    say(
        "| workload | template | Lightning alone | floor | template / Lightning | template / floor "
        "| Lightning / floor |"
    )
    say("|---|---|---|---|---|---|---|")
    found: dict[str, dict[str, list[float]]] = {}
    steps: list[str] = []
    for name, bindings in workloads.items():
        got: dict[str, list[float]] = {way: [] for way in WAYS}
        try:
            for train in WAYS.values():  # a discarded warm-up of each: cuDNN's choices, the allocator's pools
                train([*bindings, *data, "training_loop.n_epochs=1", "training_loop.limit_train_batches=20"])
            for _ in range(rounds):
                for way, train in WAYS.items():
                    got[way].append(median_after_first(train([*bindings, *data])))
        except Exception as e:  # one broken workload must not hide the others
            say(f"| {name} | failed: {type(e).__name__}: {str(e).splitlines()[0][:300]} | | | | | |")
            LOG.append(traceback.format_exc())
            continue
        t, lt, fl = got.values()
        ratios = [cell([a / b for a, b in zip(x, y, strict=True)], 3) for x, y in ((t, lt), (t, fl), (lt, fl))]
        say(f"| {name} | {cell(t)} | {cell(lt)} | {cell(fl)} | {' | '.join(ratios)} |")
        sizes = [b.split("=")[1] for b in [*bindings, *data] if b.startswith("cifar10.batch_size=")]
        batch = int(sizes[-1]) if sizes else 128
        per_step = ", ".join(f"{way} {1000 * batch / statistics.median(v):.2f}" for way, v in got.items())
        steps.append(f"- {name}: ms per step (median): {per_step}")
        found[name] = got
    say("", *steps, "")
    return found


# --- CUDA graphs --------------------------------------------------------------------------------------------------


def history(folder: str) -> list[dict[str, str]]:
    with open(f"{folder}/history.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def same_weights(a: str, b: str) -> bool:
    import torch

    sa = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
    sb = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def compile_section(eager: list[float] | None, data: list[str], smoke: bool) -> None:
    say("## CUDA graphs: training_loop.compile = 'reduce-overhead' (ResNet-20, batch 128, fp32)", "")
    base = [*WORKLOADS["ResNet-20, batch 128, fp32 (launch-bound)"], *data]
    compiled = [*base, "training_loop.compile='reduce-overhead'"]
    try:
        start = time.perf_counter()
        rates = template(compiled)
        wall = time.perf_counter() - start
        line = f"- compiled template: {median_after_first(rates):.0f} examples/s (epochs after the first; {wall:.0f} s"
        line += " in all, compilation included)"
        if eager:
            ratio = median_after_first(rates) / statistics.median(eager)
            line += f"; eager template in this run {statistics.median(eager):.0f}: **{ratio:.2f}x** (target >= 1.5x)"
        say(line)
    except Exception as e:
        say(f"- compiled template failed: {type(e).__name__}: {str(e).splitlines()[0][:400]}")
        LOG.append(traceback.format_exc())
    steps = "training_loop.limit_train_batches=4" if smoke else "training_loop.limit_train_batches=20"
    exact = [*compiled, steps, "training_loop.deterministic=True"]
    try:
        with tempfile.TemporaryDirectory(prefix="gpu_resume_") as tmp:
            template([*exact, "training_loop.n_epochs=4"], keep=f"{tmp}/straight")
            template([*exact, "training_loop.n_epochs=2"], keep=f"{tmp}/resumed")
            template([*exact, "training_loop.n_epochs=4"], keep=f"{tmp}/resumed")
            same_history = history(f"{tmp}/straight") == history(f"{tmp}/resumed")
            results = [json.loads(Path(f"{tmp}/{r}/eval_results.json").read_text()) for r in ("straight", "resumed")]
            same_test = results[0] == results[1]
            weights = same_weights(f"{tmp}/straight/last.ckpt", f"{tmp}/resumed/last.ckpt")
            verdict = "identical" if same_history and same_test and weights else "DIFFERENT"
            say(
                f"- compiled + deterministic, 4 epochs straight vs 2 + 2 resumed: **{verdict}** (history "
                f"{same_history}, test metrics {same_test}, last.ckpt weights {weights})"
            )
            if not same_history:
                LOG.append(f"straight: {history(f'{tmp}/straight')}\nresumed: {history(f'{tmp}/resumed')}")
    except Exception as e:
        say(f"- compiled resume check failed: {type(e).__name__}: {str(e).splitlines()[0][:400]}")
        LOG.append(traceback.format_exc())
    say("")


def autotune_section(data: list[str], budget_s: float) -> None:
    """compile='max-autotune' in a process of its own (autotuning can take minutes): trains, or says why not."""
    say("## training_loop.compile = 'max-autotune' (ResNet-20, 2 epochs of 10 batches, own process)", "")
    bindings = [
        *SHORT,
        *data,
        "training_loop.n_epochs=2",
        "training_loop.limit_train_batches=10",
        "training_loop.compile='max-autotune'",
    ]
    with tempfile.TemporaryDirectory(prefix="gpu_autotune_") as tmp:
        cmd = [PY, "bin/train.py", f"{tmp}/run", *CONFIG, "-b", "#".join(bindings)]
        try:
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=BENCH.parent, env=env(), capture_output=True, text=True, timeout=budget_s)
            wall = time.perf_counter() - start
            if done.returncode == 0:
                rates = [float(r["examples_per_s"]) for r in csv.DictReader(open(f"{tmp}/run/history.csv"))]
                say(f"- trained: exit 0 in {wall:.0f} s; epoch 2 {rates[-1]:.0f} examples/s")
            else:
                say(f"- exit {done.returncode} in {wall:.0f} s: {done.stderr.strip().splitlines()[-1][:400]}")
                LOG.append(done.stderr[-5000:])
        except subprocess.TimeoutExpired:
            say(f"- did not finish within {budget_s:.0f} s (autotuning every convolution): not measured")
    say("")


# --- where the time goes ------------------------------------------------------------------------------------------


class Window:
    """Observes training steps [start, stop): 'profile' (torch.profiler: wall ms per step, GPU busy, syncs and copies
    per step, top operators), 'python' (cProfile's top functions) or 'syncs' (the stacks of calls that make the host
    wait for the GPU, from torch.cuda.set_sync_debug_mode)."""

    def __init__(self, kind: str, start: int, stop: int) -> None:
        self.kind, self.start, self.stop = kind, start, stop
        self.result: dict = {}

    def step(self, step: int) -> None:
        if step == self.start:
            self._begin()
        elif step == self.stop:
            self._end()

    def _sync(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _begin(self) -> None:
        import torch

        self._sync()
        self.t0 = time.perf_counter()
        if self.kind == "profile":
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()
        elif self.kind == "python":
            self.profiler = cProfile.Profile()
            self.profiler.enable()
        else:
            self.stacks: Counter = Counter()
            self._show = warnings.showwarning

            def record(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
                frames = [f for f in traceback.extract_stack()[:-1] if "warnings" not in f.filename][-6:]
                self.stacks["\n    ".join(f"{f.filename}:{f.lineno} {f.name}" for f in frames)] += 1

            warnings.showwarning = record
            self._filters = warnings.catch_warnings()
            self._filters.__enter__()
            warnings.simplefilter("always")
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("warn")

    def _end(self) -> None:
        import torch

        if self.kind == "syncs" and torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        self._sync()
        wall = time.perf_counter() - self.t0
        steps = self.stop - self.start
        self.result["ms_per_step"] = 1000 * wall / steps
        if self.kind == "profile":
            self.profiler.__exit__(None, None, None)
            events = self.profiler.key_averages()
            device_us = sum(getattr(e, "self_device_time_total", 0) for e in events)
            counts = {e.key: e.count for e in events}
            self.result["gpu_busy"] = device_us / (wall * 1e6)
            self.result["syncs_per_step"] = (
                sum(
                    counts.get(k, 0) for k in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
                )
                / steps
            )
            self.result["copies_per_step"] = sum(n for k, n in counts.items() if k.startswith("Memcpy")) / steps
            launches = sum(n for k, n in counts.items() if k.startswith(("cudaLaunch", "cuLaunch", "cudaGraphLaunch")))
            self.result["launches_per_step"] = launches / steps
            self.result["table"] = events.table(sort_by="self_cpu_time_total", row_limit=25)
        elif self.kind == "python":
            self.profiler.disable()
            out = io.StringIO()
            pstats.Stats(self.profiler, stream=out).sort_stats("tottime").print_stats(35)
            self.result["table"] = out.getvalue()
        else:
            warnings.showwarning = self._show
            self._filters.__exit__(None, None, None)
            self.result["syncs_per_step"] = sum(self.stacks.values()) / steps
            self.result["table"] = "\n".join(f"{n} x\n    {stack}" for stack, n in self.stacks.most_common(12))


CURRENT: list[Window] = []  # the window the `gpu_window` callback reports to


def register_window_callback() -> None:
    import pytorch_lightning as pl

    from src.callbacks import CALLBACKS

    class WindowCallback(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            CURRENT[0].step(trainer.global_step)

    if "gpu_window" not in CALLBACKS:
        CALLBACKS.register("gpu_window")(lambda run_dir: WindowCallback())


def profile_section(data: list[str], start: int, stop: int) -> None:
    """Steps [start, stop) of the first epoch of each way, on the launch-bound workload."""
    register_window_callback()
    say(f"## Where a step's time goes (ResNet-20, batch 128, fp32; steps {start}-{stop} of one epoch)", "")
    bindings = [*WORKLOADS["ResNet-20, batch 128, fp32 (launch-bound)"], *data, "training_loop.n_epochs=1"]
    with_window = [*bindings, "training_loop.callbacks=['progress_log', 'gpu_window']"]
    say("| way | what | ms per step | GPU busy | syncs / step | copies / step | kernel launches / step |")
    say("|---|---|---|---|---|---|---|")
    for way in WAYS:
        for kind in ("profile", "python", "syncs"):
            window = Window(kind, start, stop)
            CURRENT[:] = [window]
            try:
                if way == "template":
                    template(with_window)
                elif way == "Lightning alone":
                    lightning(bindings, [_lightning_window()])
                else:
                    floor(bindings, window.step)
            except Exception as e:
                say(f"| {way} | {kind} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]} | | | | | |")
                LOG.append(traceback.format_exc())
                continue
            r = window.result
            if kind == "profile":
                say(
                    f"| {way} | torch.profiler | {r['ms_per_step']:.2f} | {100 * r['gpu_busy']:.0f} % | "
                    f"{r['syncs_per_step']:.2f} | {r['copies_per_step']:.2f} | {r['launches_per_step']:.0f} |"
                )
            elif kind == "syncs":
                say(f"| {way} | sync debug mode | {r['ms_per_step']:.2f} | | {r['syncs_per_step']:.2f} | | |")
            LOG.append(f"===== {way}: {kind} (steps {start}-{stop}) =====\n{r.get('table', '')}")
    say("")


def _lightning_window():
    import pytorch_lightning as pl

    class LightningWindow(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            CURRENT[0].step(trainer.global_step)

    return LightningWindow()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for gpu.md and profile.txt")
    parser.add_argument("--sections", default="profile,ways,compile,autotune")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU will do): does every section run?")
    parser.add_argument("--budget", type=float, default=470.0, help="seconds in all: max-autotune gets what is left")
    args = parser.parse_args()
    sections = args.sections.split(",")
    started = time.perf_counter()
    import gc

    import torch

    from src import config

    config.register_everything()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)  # its banners would push the tables out of a short log
    warnings.filterwarnings("ignore")
    gc.freeze()  # as bin/train.py does after its imports
    out = OUT[0] = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="gpu_cifar_")
    small = args.smoke
    fake_cifar(data_dir, n_train=5000 if small else 50_000, n_test=1000 if small else 10_000)
    data = [f"cifar10.root='{data_dir}'", *(SMOKE if small else [])]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no GPU)"
    from importlib import metadata

    say(
        f"# bench/gpu.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{device}; Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"pytorch-lightning {metadata.version('pytorch-lightning')}; {os.cpu_count()} CPU cores"
        + ("; SMOKE sizes (not figures)" if small else ""),
        "",
    )
    eager = None
    if "profile" in sections:
        profile_section(data, *((2, 4) if small else (40, 90)))
        say(f"(profile section done at {time.perf_counter() - started:.0f} s)", "")
    if "ways" in sections:
        workloads = {k: v for k, v in WORKLOADS.items() if not small or "ResNet-20" in k or "tiny" in k}
        found = ways_section(workloads, 1 if small else args.rounds, data)
        eager = found.get("ResNet-20, batch 128, fp32 (launch-bound)", {}).get("template")
        say(f"(ways section done at {time.perf_counter() - started:.0f} s)", "")
    if "compile" in sections:
        compile_section(eager, data, small)
        say(f"(compile section done at {time.perf_counter() - started:.0f} s)", "")
    if "autotune" in sections:
        left = args.budget - (time.perf_counter() - started)
        if left > 60:
            autotune_section(data, left)
        else:
            say("## max-autotune: skipped (the 8-minute budget is spent)", "")
    say(f"(bench/gpu.py: {time.perf_counter() - started:.0f} s)")
    (out / "profile.txt").write_text("\n\n".join(LOG))


if __name__ == "__main__":
    main()
