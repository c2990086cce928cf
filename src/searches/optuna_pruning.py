"""OptunaPruning: reports the monitored metric to the run's Optuna trial each epoch and stops the run when the study's
pruner rejects it, the way early stopping does: the trainer stops after this epoch (whose checkpoint holds the
decision), the run ends as usual (tested, eval_results.json), and then PRUNED (why) and FINISHED mark it, status
`pruned`. A run killed anywhere on that way ends it when started again: resumed, it stops at once, or (killed
between the two markers) it completes them. The last epoch is reported but never pruned (the run is complete).
The pruner judges the run as it is: its values up to the current epoch, this epoch's last. A trial restarted from
scratch (its run folder deleted, its checkpoints unusable) replaces its earlier attempt's value of each epoch it
reaches, and is never judged on that attempt's later epochs.

Added to every run of an optuna_search by `prepare` (src/searches/optuna_search.py), which binds the study's journal
file, its name, the trial number and the metric; the pruner is the one the study names (its `pruner` user attribute). A
metric the module does not log while training (a typo, a test metric) fails the run at fit start, before any training,
with FAILED naming the metrics it logs; the next `prepare` then refuses the search's metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from src.errors import UserError, did_you_mean
from src.training.callbacks.registry import CALLBACKS


class OptunaPruning(pl.Callback):
    def __init__(
        self, run_dir: str | Path, storage: str, study: str, trial: int, monitor: str, metrics: dict | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.storage, self.study_name, self.number, self.monitor = storage, study, trial, monitor
        self.metrics = metrics  # the module's declaration (src/run/metric_directions.py), if known
        self._study: Any = None
        self._trial_id: int | None = None
        self.pruned: str | None = None  # why the study pruned the run (kept in its checkpoints)

    def state_dict(self) -> dict[str, Any]:
        return {"pruned": self.pruned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned = state_dict.get("pruned")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned is not None:  # resumed from the checkpoint of the pruned epoch (killed before the end)
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pruned is not None and trainer.is_global_zero:
            for callback in trainer.callbacks:  # type: ignore[attr-defined]  # set by Lightning's connector
                if hasattr(callback, "record_stop"):  # the run's meta.json (src/training/callbacks/meta_saver.py)
                    callback.record_stop({"reason": "pruned", "epoch": trainer.current_epoch, "message": self.pruned})

    def study(self) -> Any:
        """The study (optuna.Study, with its pruner), opened once, for the trial; None if the study already closed
        the trial."""
        if self._study is None:
            import optuna

            from src.searches.optuna_parts import PRUNER, journal_storage, make_pruner

            if not Path(self.storage).is_file():
                raise UserError(f"optuna_pruning.storage {self.storage!r} does not exist (run `main.py prepare`).")
            storage = journal_storage(Path(self.storage))
            try:
                study_id = storage.get_study_id_from_name(self.study_name)
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
            except KeyError as e:
                raise UserError(f"{self.storage} has no study {self.study_name!r} with trial {self.number}.") from e
            if storage.get_trial(trial_id).state.is_finished():
                return None
            pruner = storage.get_study_user_attrs(study_id).get(PRUNER) or {"name": "none", "options": {}}
            study = optuna.load_study(
                study_name=self.study_name, storage=storage, pruner=make_pruner(pruner["name"], pruner["options"])
            )
            self._study, self._trial_id = study, trial_id
        return self._study

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_monitor()

    def check_monitor(self) -> None:
        """The monitor must be a metric the module declares and logs while training (not a test metric)."""
        if self.metrics is None:
            return
        logged = [m for m in self.metrics["directions"] if not m.startswith("test_")]
        if self.monitor in logged:
            return
        hint = did_you_mean(self.monitor, logged)
        raise UserError(
            f"optuna_pruning.monitor {self.monitor!r} is not a metric the module logs while training; it logs: "
            f"{', '.join(logged)}.{hint} (optuna_search(metric=...) in the experiment's main.py)"
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        prune = self.report(trainer) if trainer.is_global_zero else False
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
            self.pruned = trainer.strategy.broadcast(self.pruned, src=0)  # every process's checkpoint state agrees
        if prune:
            trainer.should_stop = True

    def report(self, trainer: pl.Trainer) -> bool:
        """Report this epoch's value; True if the run is to stop (why: `pruned`)."""
        logged_value = trainer.callback_metrics.get(self.monitor)
        if logged_value is None:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing yet"
            raise UserError(f"optuna_pruning.monitor {self.monitor!r} is not logged by this run (it logs {logged}).")
        value, epoch = float(logged_value), trainer.current_epoch + 1
        study = self.study()
        if study is None or not self.record(study, epoch, value):
            print(f"warning: trial {self.number} of {self.study_name} was already told; not reporting to it")
            return False
        if epoch >= (trainer.max_epochs or 0) or not self.should_prune(study, epoch, value):
            return False
        self.pruned = (
            f"trial {self.number} pruned at epoch {epoch} of {trainer.max_epochs}: {self.monitor} = {value:.4g}"
        )
        print(f"pruned by the study's pruner at epoch {epoch}: {self.monitor} = {value:.4g}")
        return True

    def record(self, study: Any, epoch: int, value: float) -> bool:
        """Store this epoch's value as the trial's intermediate value of step `epoch`: written when the trial has no
        value for it yet, or another one (a trial restarted from scratch, its run folder deleted or its checkpoints
        unusable: its earlier attempt's value is replaced); nothing is written for the same value (a run resumed
        after it had reported this epoch). False if the study closed the trial meanwhile."""
        from optuna.exceptions import UpdateFinishedTrialError

        stored = study._storage.get_trial(self._trial_id)
        if stored.state.is_finished():
            return False
        if not same(stored.intermediate_values.get(epoch), value):
            try:
                study._storage.set_trial_intermediate_value(self._trial_id, epoch, value)
            except UpdateFinishedTrialError:
                return False
        return True

    def should_prune(self, study: Any, epoch: int, value: float) -> bool:
        """The pruner's decision on the trial as this run has it: its values up to this epoch, this one's value
        last. Optuna's Trial.should_prune would judge the trial's last reported step, which for a trial restarted
        from scratch is a step of its earlier attempt (its value at epoch 3 while this run is at epoch 1)."""
        import copy

        trial = copy.copy(study._storage.get_trial(self._trial_id))
        trial.intermediate_values = {
            **{step: v for step, v in trial.intermediate_values.items() if step < epoch},
            epoch: value,
        }
        return bool(study.pruner.prune(study, trial))


def same(a: float | None, b: float) -> bool:
    """Equal values, NaN equal to NaN (a NaN reported again is no new value)."""
    return a is not None and (a == b or a != a and b != b)


@CALLBACKS.register("optuna_pruning", denylist=("metrics",))
def optuna_pruning(
    run_dir: str, storage: str, study: str, trial: int, monitor: str, metrics: dict[str, Any]
) -> OptunaPruning:
    return OptunaPruning(run_dir, storage, study, trial, monitor, metrics)
