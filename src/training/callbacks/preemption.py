"""Preemption: on SIGUSR1 (SLURM's warning before it preempts or times out a job: `--signal=B:USR1@90`), save
`preempted.ckpt` at the end of the current training batch (or, after an epoch's last batch, let the epoch end and
its last.ckpt be written first), requeue the SLURM job and stop; the requeued job (or the same command run again)
continues from there. With several processes the signal may reach only some: all agree (a collective every
`ddp_every_n_steps`) and stop after the same batch with one checkpoint. Under bin/run_slurm.py the task script
requeues the task once all processes have stopped; elsewhere (your own sbatch script) rank 0 requeues it.

Lightning's own SLURM handler saves inside the signal handler, wherever the process happens to be (mid-forward,
mid-optimizer-step) and keeps training until it is killed; saving at a batch boundary makes the checkpoint
consistent and the resumed run identical to an uninterrupted one. training_loop turns Lightning's handler off.
The signal itself is recorded by src/training/preemption_signal.py, from the start of bin/train.py: a warning during
start-up stops the run at its first epoch's start, one during the final test is ignored (the run is about to finish).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl

from src.errors import UserError
from src.run import layout
from src.training import preemption_signal
from src.training.callbacks.registry import CALLBACKS

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import STEP_OUTPUT


class Preempted(KeyboardInterrupt):
    """Stops the run like Ctrl-C: not failed, resumed when started again (the exit code is 130)."""


class Preemption(pl.Callback):
    def __init__(self, run_dir: str, ddp_every_n_steps: int = 10, peer_grace_s: float = 5.0) -> None:
        self.checkpoint = Path(run_dir) / layout.PREEMPTED_CKPT
        self.ddp_every_n_steps = ddp_every_n_steps
        self.peer_grace_s = peer_grace_s

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        preemption_signal.listen()  # bin/train.py listens from its start; in-process callers from here

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        die_on_sigterm(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        die_on_sigterm(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # scancel's TERM reaches the processes one after another: a process it ended first breaks the collective
        # this one is in ("Connection reset by peer"). That is no failure of the run: a SLURM job being cancelled
        # says so at once (its state), and elsewhere this process's own TERM (which ends it, see die_on_sigterm)
        # comes within a moment; only then does the error count as the run's failure.
        if isinstance(exception, Exception) and not isinstance(exception, UserError) and terminates_on_sigterm(trainer):
            if slurm_job_cancelled():
                raise Preempted(f"SLURM job {os.environ.get('SLURM_JOB_ID')} was cancelled") from exception
            time.sleep(self.peer_grace_s)

    def _warned(self, trainer: pl.Trainer, every_n_steps: int = 1) -> bool:
        if trainer.world_size > 1:  # the signal reaches one process; all of them save and stop together
            # a collective (and a device sync): every n steps only, at the same steps in every process
            if trainer.global_step % every_n_steps:
                return False
            return trainer.strategy.reduce_boolean_decision(preemption_signal.warned(), all=False)
        return preemption_signal.warned()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        # After an epoch's last batch, the epoch's end (validation, history, last.ckpt) comes first: Lightning would
        # skip it when resuming from a checkpoint saved there. The next epoch's start stops the run instead. With
        # gradient accumulation only after an optimizer step: the accumulated gradients are not in a checkpoint.
        if trainer.world_size == 1 and not preemption_signal.warned():
            return  # every step but one: nothing to do
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if stepped and batch_idx + 1 < trainer.num_training_batches and self._warned(trainer, self.ddp_every_n_steps):
            trainer.save_checkpoint(self.checkpoint)
            self._stop(trainer, f"saved {self.checkpoint} after step {trainer.global_step}")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._warned(trainer):
            then = ", which resumes from last.ckpt" if trainer.current_epoch > 0 else " (nothing trained yet)"
            self._stop(trainer, f"stopped before epoch {trainer.current_epoch + 1}{then}")

    def _stop(self, trainer: pl.Trainer, what: str) -> None:
        preemption_signal.clear()
        if trainer.is_global_zero:
            print(f"preempted: {what}; {requeue()}", file=sys.stderr)
        raise Preempted


def slurm_job_cancelled() -> bool:
    """Whether this process's SLURM job is being cancelled (scancel, a time limit): its state says so at once."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or not job.isdigit():
        return False
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    state = next((w.split("=", 1)[1] for w in shown.stdout.split() if w.startswith("JobState=")), "")
    return state in ("COMPLETING", "CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE", "NODE_FAIL")  # ending while it runs


def terminates_on_sigterm(trainer: pl.Trainer) -> bool:
    """One of several processes that something else started (srun, torchrun, or Lightning's own launcher for the
    processes other than rank 0, which stops them on TERM). The strategy has a launcher object under srun too: what
    tells is whether the cluster environment created the processes."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    return trainer.world_size > 1 and bool(getattr(environment, "creates_processes_externally", False))


def die_on_sigterm(trainer: pl.Trainer) -> None:
    """With several processes started by srun (or torchrun), SIGTERM (scancel, the time limit) ends each at once, as
    it would without Lightning: Lightning's handler (set just before training or testing) broadcasts from inside the
    signal handler, which breaks the collective another process is in and fails the run. Every file of the run
    folder is written atomically; the resubmitted run resumes from its last checkpoint. (Rank 0 of processes
    Lightning started itself keeps its handler, which stops the others.)"""
    if terminates_on_sigterm(trainer) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def requeue() -> str:
    """Put this SLURM job (array task) back in the queue; say what happened."""
    job = os.environ.get("SLURM_JOB_ID")
    if "SLURM_ARRAY_JOB_ID" in os.environ and "SLURM_ARRAY_TASK_ID" in os.environ:
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if job is None:
        return "not a SLURM job: run the same command again to continue"
    if os.environ.get(preemption_signal.REQUEUED_BY_TASK_SCRIPT):
        return f"bin/run_slurm.py's task script requeues SLURM job {job} once every process has stopped"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"requeueing SLURM job {job} failed ({e}): resubmit to continue"
    if done.returncode != 0:
        return f"requeueing SLURM job {job} failed ({done.stderr.strip()}): resubmit to continue"
    return f"SLURM job {job} requeued: it continues from there"


@CALLBACKS.register("preemption")
def preemption(run_dir: str, ddp_every_n_steps: int = 10, peer_grace_s: float = 5.0) -> Preemption:
    """ddp_every_n_steps: with several processes, how often they agree on whether the warning came (~10 steps must
    take well under SLURM's 90 s notice). peer_grace_s: with several processes, how long an error waits for a
    cancel's TERM before it fails the run."""
    return Preemption(run_dir, ddp_every_n_steps=ddp_every_n_steps, peer_grace_s=peer_grace_s)
