"""Adaptive search with Optuna over batch files: each `main.py prepare` tells the study what the runs finished since
the last prepare, asks it for the next trials and writes their configs and batch.sh like grid points, so that bash,
bin/run_local.py and bin/run_slurm.py run them unchanged. Repeating prepare -> run spends the budget.

    from src.searches.optuna_search import optuna_search
    SEARCHES = {"bayes": optuna_search({"supervised.lr": ("log", 1e-4, 0.3)}, n_trials=12, batch_size=4)}

The study lives in the search's results folder, in Optuna's journal file storage (`optuna.journal`): an append-only
log with a lock file, safe on the network file systems of clusters, where SQLite's fcntl locks are not. The storage is
the source of truth: a trial is RUNNING until its run is told, and its run folder's name follows from its number and
parameters. A killed run stays RUNNING and is written into the next batch again (same trial, resumed); a finished
run is told COMPLETE with its best value of the metric, a pruned one PRUNED, a failed one FAIL (then a new trial
takes its place in the budget), as is a finished one without a readable history or a finite value of the metric.
Telling twice is harmless (skip_if_finished).

What a full disk or a kill leaves is repaired by the next prepare: a torn last record of the journal is cut off
(src/searches/optuna_journal.py), and a trial a prepare killed inside study.ask left without all its values is told
FAIL (no run folder; a new trial takes its place). A prepare with nothing to tell or ask writes nothing to the
journal. Prepares plan one at a time (`planning`, an fcntl lock next to the journal, held from reading the study to
writing batch.sh), so that prepares at the same time never ask for more than batch_size trials together.

Pruning: every run gets the `optuna_pruning` callback (src/searches/optuna_pruning.py), which reports the metric to
the study each epoch and stops the run when the study's pruner rejects it (status `pruned`).

Reproducible: the sampler is seeded with the search's seed plus the number of trials already asked, so the same
sequence of prepare/run/prepare gives the same trials, and later batches never repeat the draws of earlier ones.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from src.errors import UserError, did_you_mean, integer, one_line, unknown
from src.run.status import status_of
from src.searches.experiment import REPLICATES, Point, experiment_runs_dir, prepare, run_name
from src.searches.optuna_parts import (
    PRUNER,
    PRUNERS,
    SAMPLERS,
    distribution,
    journal_storage,
    make_pruner,
    name_value,
    planning,
)
from src.searches.optuna_values import NoValue, best_value, recorded_directions, recorded_metrics

if TYPE_CHECKING:
    import optuna
    import pandas as pd

STUDY_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"
}  # fmt: skip
STUDY_FILE = "optuna.journal"  # in the search's results folder, next to its run folders
CALLBACK = "optuna_pruning"  # src/searches/optuna_pruning.py


def storage_path(runs_dir: Path) -> Path:
    return Path(runs_dir) / STUDY_FILE


@dataclass
class Told:
    """What a prepare told the study, by state: run folder names."""

    complete: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # why a finished run was told FAIL (no value to tell)
    discarded: list[int] = field(default_factory=list)  # trials a killed prepare left without all their values


@dataclass
class OptunaPrepared:
    batch: Path
    study: Path
    told: Told
    asked: list[str]  # new trials' runs
    todo: list[str]  # runs in the batch: new trials and those not done yet (killed, never run, running)
    budget_left: int  # trials the budget still allows after this batch


@dataclass
class OptunaSearch:
    """The settings of an adaptive search (see `optuna_search`) and its commands, prepare and report."""

    space: dict[str, Any]
    n_trials: int
    batch_size: int
    sampler: str = "tpe"
    pruner: str = "median"
    metric: str = "valid_acc"
    direction: str | None = None
    seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner_options: dict[str, Any] = field(default_factory=dict)

    # -- checks (inside the command, so that a bad search is one line, not a traceback at import) --

    def check(self, recorded: Sequence[str] = (), directions: Mapping[str, str] | None = None) -> None:
        """`recorded`: the metrics the search's runs record so far (recorded_metrics), for the metric's check;
        `directions`: the metrics' directions as the runs recorded them or the module declares them (see
        `directions`), None when not known here (the direction is then not checked)."""
        for what, value in (("n_trials", self.n_trials), ("batch_size", self.batch_size)):
            integer(f"optuna_search {what}", value)
        if self.sampler not in SAMPLERS:
            raise UserError(unknown("sampler", self.sampler, SAMPLERS))
        if self.pruner not in PRUNERS:
            raise UserError(unknown("pruner", self.pruner, PRUNERS))
        if not self.space:
            raise UserError("optuna_search needs a non-empty space.")
        self.distributions()
        self.check_fixed()
        self.make_pruner()  # its options: before the study's journal or any folder exists
        self.make_sampler(0)
        self.check_metric(recorded)
        if directions is not None or self.direction is not None:
            self.study_direction(directions)

    def check_metric(self, recorded: Sequence[str]) -> None:
        """A test metric never: the study would tune on the test set, and no run logs it while training. Once runs
        have recorded their metrics, the metric must be one of them."""
        if self.metric.startswith("test_"):
            raise UserError(
                f"optuna_search metric {self.metric!r} is measured on the test set after training: the study can "
                f"neither prune on it nor tune on the test set; use {'valid_' + self.metric.removeprefix('test_')!r}."
            )
        if recorded and self.metric not in recorded:
            raise UserError(
                f"optuna_search metric {self.metric!r} is not recorded by the runs of this search; they record: "
                f"{', '.join(recorded)}.{did_you_mean(self.metric, recorded)}"
            )

    def check_fixed(self) -> None:
        """`fixed` may not bind what the space searches (every trial would get the fixed value) nor the pruning
        callback's options (the search binds them); its training_loop.callbacks, if any, must be callback names:
        the runs get those and the pruning callback."""
        if clash := [key for key in self.fixed if key in self.space]:
            raise UserError(
                f"optuna_search binds {clash[0]} in both space and fixed: the fixed value would replace every "
                "trial's; keep one of them."
            )
        if own := [key for key in self.fixed if key.startswith(f"{CALLBACK}.")]:
            raise UserError(
                f"optuna_search(fixed=...) binds {own[0]}, which the search binds itself for each run (its study, "
                "trial and metric): remove it."
            )
        callbacks = self.fixed.get("training_loop.callbacks", [])
        if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, str) for c in callbacks):
            raise UserError(
                f"optuna_search(fixed=...) binds training_loop.callbacks to {callbacks!r}: give a list of callback "
                "names (the search adds optuna_pruning to them)."
            )

    def distributions(self) -> dict[str, Any]:
        return {key: distribution(key, spec) for key, spec in self.space.items()}

    def study_direction(self, directions: Mapping[str, str] | None = None) -> Literal["maximize", "minimize"]:
        """'maximize' or 'minimize': given (direction='max'/'min'), else the metric's direction in `directions` (as the
        runs recorded it in metrics.json, or as the module declares it). A given direction that contradicts the
        recorded one is refused: the study would hunt for the worst runs."""
        directions = directions or {}
        found = directions.get(self.metric)
        if self.direction is not None:
            if self.direction not in STUDY_DIRECTIONS:
                raise UserError(f"optuna_search(direction=...) must be 'max' or 'min', not {self.direction!r}.")
            if found is not None and STUDY_DIRECTIONS[found] != STUDY_DIRECTIONS[self.direction]:
                raise UserError(
                    f"optuna_search(direction={self.direction!r}) contradicts the direction of {self.metric!r} that "
                    f"the module declares ({found!r}): leave direction out to use it."
                )
            return STUDY_DIRECTIONS[self.direction]
        if found is not None:
            return STUDY_DIRECTIONS[found]
        known = [m for m in directions if not m.startswith("test_")]
        where = (
            f"the module declares {', '.join(known)}.{did_you_mean(self.metric, known)}"
            if known
            else "the module's declaration is not known here"
        )
        raise UserError(
            f"Cannot tell which way {self.metric!r} is better: if the name is misspelt, fix "
            f"optuna_search(metric=...) ({where}); else give optuna_search(direction='max' or 'min')."
        )

    def directions(self, experiment_dir: Path, runs_dir: Path) -> dict[str, str]:
        """The metrics' directions: as the search's runs recorded them (metrics.json), else, before any run has,
        as the module of the template's config declares them (built untrained for a representative point: a few
        seconds). Not needed (empty) when the direction is given."""
        if self.direction is not None:
            return recorded_directions(runs_dir)
        return recorded_directions(runs_dir) or self.declared_directions(experiment_dir)

    def declared_directions(self, experiment_dir: Path) -> dict[str, str]:
        """The directions the module built from the template and a point of the space (first choices, low ends)
        declares."""
        from src.recipes.reload import declared_metrics
        from src.searches.experiment import config_text

        point = {k: spec[0] if isinstance(spec, list) else spec[1] for k, spec in self.space.items()}
        template = (Path(experiment_dir) / "template_config.gin").read_text()
        return dict(declared_metrics(config_text(template, {**point, **self.fixed}))["directions"])

    def settings(self) -> dict[str, Any]:
        """Stored in the study: what must not change between prepares."""
        from optuna.distributions import distribution_to_json

        return {
            "metric": self.metric,
            "space": {k: json.loads(distribution_to_json(d)) for k, d in self.distributions().items()},
        }

    # -- the study --

    def open_study(
        self,
        runs_dir: Path,
        study_name: str,
        create: bool,
        direction: Literal["maximize", "minimize"] | None = None,
    ) -> optuna.Study:
        """The study in runs_dir's journal; created (with its settings, in `direction`) if `create`. A journal of
        another search, or one made with another metric, direction or space, is refused in one line; `direction`
        None (a report): the study's own."""
        import optuna

        path = storage_path(runs_dir)
        if not path.is_file() and not create:
            raise UserError(f"No study at {path} yet: run `main.py prepare --name {study_name.split('/')[-1]}` first.")
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = journal_storage(path)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        if names and study_name not in names:
            raise UserError(f"{path} holds the study {names[0]!r} of another experiment, not {study_name!r}.")
        if names:  # loading writes nothing (create_study(load_if_exists=True) would append a record every time)
            study = optuna.load_study(storage=storage, study_name=study_name, pruner=self.make_pruner())
        else:
            study = optuna.create_study(  # load_if_exists: created meanwhile by a process not under `planning`
                storage=storage,
                study_name=study_name,
                direction=direction,
                pruner=self.make_pruner(),
                load_if_exists=True,
            )
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", self.settings())
        elif (mine := self.settings()) != stored or direction not in (None, study.direction.name.lower()):
            changed = [k for k in mine if mine[k] != stored.get(k)] or ["direction"]
            raise UserError(
                f"The study in {path} was made with another {', '.join(changed)}; use a new search name, or delete "
                "that file (and the run folders) to start over."
            )
        if study.user_attrs.get(PRUNER) != (pruner := {"name": self.pruner, "options": self.pruner_options}):
            study.set_user_attr(PRUNER, pruner)  # the runs' callbacks build it from here
        if study.metric_names != [self.metric]:  # optuna-dashboard and the importances plot name the metric
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning
                study.set_metric_names([self.metric])
        return study

    def make_sampler(self, offset: int) -> optuna.samplers.BaseSampler:
        import optuna

        options = {"seed": self.seed + offset, **self.sampler_options}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning of some samplers' options
                return getattr(optuna.samplers, SAMPLERS[self.sampler])(**options)
        except (TypeError, ValueError) as e:  # an unknown keyword; a value Optuna refuses
            raise UserError(f"Bad sampler_options for {self.sampler!r}: {one_line(e)}.") from e

    def make_pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.pruner, self.pruner_options)

    def run_of(self, trial: optuna.trial.FrozenTrial | optuna.trial.Trial) -> str:
        """The run folder's name of a trial: its number, then its values ('003_lr=0.0012')."""
        values = {k: name_value(trial.params[k]) for k in self.space if k in trial.params}
        return f"{trial.number:03d}_{run_name(values, list(values))}"

    def point_of(self, trial: optuna.trial.FrozenTrial, storage: Path, study_name: str, callbacks: list[str]) -> Point:
        """A trial's bindings: its values, `fixed`, and the pruning callback added to the callbacks (fixed's
        training_loop.callbacks if given, else the template's, `callbacks`)."""
        chosen = list(self.fixed.get("training_loop.callbacks", callbacks))
        return {
            **{k: trial.params[k] for k in self.space},
            **self.fixed,
            "training_loop.callbacks": [*[c for c in chosen if c != CALLBACK], CALLBACK],
            f"{CALLBACK}.storage": str(storage),
            f"{CALLBACK}.study": study_name,
            f"{CALLBACK}.trial": trial.number,
            f"{CALLBACK}.monitor": self.metric,
        }

    def whole(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether the trial has a value for every entry of the space: a prepare killed inside study.ask leaves a
        trial without (some of) them, which never gets a run folder (`discard_partial`)."""
        return all(key in trial.params for key in self.space)

    def discard_partial(self, study: optuna.Study) -> list[int]:
        """Tell FAIL the open trials a killed prepare left without all their values (killed between the records of
        study.ask), so that a new trial takes each one's place; the numbers of those trials."""
        from optuna.trial import TrialState

        partial = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if not self.whole(t)]
        for trial in partial:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        return [t.number for t in partial]

    def name_runs(self, study: optuna.Study, runs_dir: Path) -> None:
        """Each open trial names its run folder (user attributes `run`, `run_dir`: the dashboard and
        study.trials_dataframe() show them); written only where missing (a prepare killed before it wrote them)."""
        from optuna.trial import TrialState

        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("run") != self.run_of(trial):
                study._storage.set_trial_user_attr(trial._trial_id, "run", self.run_of(trial))
            if trial.user_attrs.get("run_dir") != str(runs_dir / self.run_of(trial)):
                study._storage.set_trial_user_attr(trial._trial_id, "run_dir", str(runs_dir / self.run_of(trial)))

    def tell(self, study: optuna.Study, runs_dir: Path) -> Told:
        """Tell the study every run that ended since it was last told: finished, pruned or failed."""
        from optuna.trial import TrialState

        told = Told()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not self.whole(trial):  # no run folder: discarded by the next prepare
                continue
            run = self.run_of(trial)
            status = status_of(runs_dir / run)
            if status == "finished":
                try:
                    value = best_value(runs_dir / run, self.metric, study.direction.name.lower() == "maximize")
                except NoValue as e:
                    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                    told.failed.append(run)
                    told.reasons[run] = str(e)
                    continue
                study.tell(trial.number, value, skip_if_finished=True)
                told.complete.append(run)
            elif status == "pruned":
                study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
                told.pruned.append(run)
            elif status == "failed":
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                told.failed.append(run)
        return told

    # -- the commands --

    def prepare(self, experiment_dir: Path, name: str, results_dir: Path | None = None) -> OptunaPrepared:
        """Tell the study the runs that ended, ask it for up to batch_size trials (counting those asked but not done
        yet, never past n_trials; failed ones do not count), write their configs and batch.sh."""
        from optuna.trial import TrialState

        experiment_dir = Path(experiment_dir).resolve()
        runs_dir = experiment_runs_dir(experiment_dir, name, results_dir)
        recorded = recorded_metrics(runs_dir)
        self.check(recorded)  # all but the direction (a misspelt metric the runs show...): before building the module
        directions = self.directions(experiment_dir, runs_dir)
        self.check(recorded, directions)
        study_name = f"{experiment_dir.name}/{name}"
        runs_dir.mkdir(parents=True, exist_ok=True)
        with planning(runs_dir):  # another prepare plans before or after this one, never at the same time
            study = self.open_study(runs_dir, study_name, create=True, direction=self.study_direction(directions))
            told = self.tell(study, runs_dir)
            told.discarded = self.discard_partial(study)
            trials = study.get_trials(deepcopy=False)
            open_ = [t for t in trials if t.state == TrialState.RUNNING]
            counted = [t for t in trials if t.state != TrialState.FAIL]
            n_new = max(0, min(self.batch_size - len(open_), self.n_trials - len(counted)))
            asked = self.ask(study, n_new, offset=len(trials))
            self.name_runs(study, runs_dir)
            open_ = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            callbacks = template_callbacks(experiment_dir / "template_config.gin")
            storage = storage_path(runs_dir)
            points = [self.point_of(t, storage, study_name, callbacks) for t in open_]
            done = prepare(
                experiment_dir, name, points, swept=list(self.space), results_dir=results_dir,
                names=[self.run_of(t) for t in open_],
            )  # fmt: skip
        asked_runs = [self.run_of(t) for t in open_ if t.number in asked]
        left = self.n_trials - len(counted) - n_new
        return OptunaPrepared(done.batch, storage, told, asked_runs, done.todo, left)

    def ask(self, study: optuna.Study, n_new: int, offset: int) -> list[int]:
        """Ask the study for `n_new` trials, with the sampler seeded by the search's seed plus `offset` (the trials
        so far); their numbers. Writes nothing when `n_new` is 0."""
        if n_new == 0:
            return []
        study.sampler = self.make_sampler(offset)
        distributions = self.distributions()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning of some samplers' options
            return [study.ask(distributions).number for _ in range(n_new)]

    def report(
        self,
        experiment_dir: Path,
        name: str,
        metric: str | None = None,
        replicates: Sequence[str] = REPLICATES,
        plots: Sequence[str] = (),
    ) -> pd.DataFrame:
        """The grid report over every trial's run, then the study's optimization history, parameter importances
        (PNG and PDF) and best trial's bindings (printed, and as best.gin)."""
        from src.searches.plots import optuna_report
        from src.searches.report import report

        experiment_dir = Path(experiment_dir).resolve()
        runs_dir = experiment_runs_dir(experiment_dir, name)
        directions = recorded_directions(runs_dir)
        known = bool(directions) or self.direction is not None  # else: the study's own
        self.check(directions=directions if known else None)
        study_name = f"{experiment_dir.name}/{name}"
        direction = self.study_direction(directions) if known else None
        study = self.open_study(runs_dir, study_name, create=False, direction=direction)
        self.tell(study, runs_dir)
        trials = [t for t in study.get_trials(deepcopy=False) if self.whole(t)]  # not those a killed prepare left
        callbacks = template_callbacks(experiment_dir / "template_config.gin")
        points = [self.point_of(t, storage_path(runs_dir), study_name, callbacks) for t in trials]
        names = [self.run_of(t) for t in trials]
        if not trials:
            raise UserError(f"The study {study_name!r} has no trials yet: run `main.py prepare --name {name}` first.")
        log_keys = [k for k, spec in self.space.items() if isinstance(spec, tuple) and str(spec[0]).startswith("log")]
        table = report(
            experiment_dir, name, points, list(self.space), metric or self.metric, replicates, names, plots, log_keys
        )
        optuna_report(study, experiment_dir / name, {**self.fixed}, self.metric)
        return table


def optuna_search(
    space: dict[str, Any],
    n_trials: int,
    batch_size: int,
    sampler: str = "tpe",
    pruner: str = "median",
    metric: str = "valid_acc",
    direction: str | None = None,
    seed: int = 0,
    fixed: dict[str, Any] | None = None,
    sampler_options: dict[str, Any] | None = None,
    pruner_options: dict[str, Any] | None = None,
) -> OptunaSearch:
    """An adaptive search (src/searches/optuna_search.py): each `prepare` asks an Optuna study for the next `batch_size`
    trials of `space` (random_search's syntax) until `n_trials`, and tells it the results (`metric`, best epoch, in
    `direction`: 'max'/'min', by default from the name). `sampler`: tpe, random, qmc, gp; `pruner`: median,
    percentile, successive_halving, hyperband, threshold, none; `*_options` go to their Optuna constructors."""
    return OptunaSearch(
        dict(space), n_trials, batch_size, sampler, pruner, metric, direction, seed,
        dict(fixed or {}), dict(sampler_options or {}), dict(pruner_options or {}),
    )  # fmt: skip


def template_callbacks(template: Path) -> list[str]:
    """training_loop.callbacks as the template sets it (includes followed), else training_loop's default: the
    points add the pruning callback to these."""
    from src.config.bindings import included_text, parse_bindings

    found = parse_bindings(included_text(template)).get("training_loop.callbacks")
    if found is None:
        from src.training_loop import own_defaults  # no heavy import: Lightning loads only when training

        found = own_defaults()["callbacks"]
    return list(found)
