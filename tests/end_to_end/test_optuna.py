"""Adaptive search (src/searches/optuna_search.py): Optuna studies over batch files, through the real training loop, with the
local runner and on the test SLURM cluster; pruning, resume of a killed trial, bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from src.cli.experiment import experiment_main
from src.errors import UserError
from src.run import layout
from src.run.status import status_of
from src.runners.batch import read_batch
from src.runners.local import run_local
from src.searches.experiment import random_search
from src.searches.optuna_search import STUDY_FILE, journal_storage, optuna_search
from tests.helpers import FAST, ROOT, experiment_folder, history, wait_for

TEMPLATE = "include 'configs/cnn.gin'\n" + "\n".join(FAST) + "\n"


def search(**changes):
    """6 trials of lr in batches of 3, 3 epochs; TPE and the median pruner start after the first batch."""
    settings = dict(
        space={"supervised.lr": ("log", 1e-5, 1.0)},
        n_trials=6,
        batch_size=3,
        seed=1,
        sampler_options={"n_startup_trials": 3},
        pruner_options={"n_startup_trials": 3},
    )
    return optuna_search(**{**settings, **changes})


def load_study(experiment, name="bayes"):
    path = experiment.parent / "results" / experiment.name / name / STUDY_FILE
    return optuna.load_study(study_name=f"{experiment.name}/{name}", storage=journal_storage(path))


def run_rounds(experiment, runner):
    """prepare -> runner(batch) twice, then prepare: the budget of 6 is spent. Returns the jobs of each batch."""
    batches = []
    for _ in range(2):
        done = search().prepare(experiment, "bayes")
        jobs = read_batch(done.batch)
        assert len(done.asked) == 3 and [j.run_dir.name for j in jobs] == done.todo == done.asked
        batches.append(jobs)
        runner(done.batch)
    done = search().prepare(experiment, "bayes")
    assert done.asked == [] == read_batch(done.batch) and done.budget_left == 0
    return batches


def check_rounds(experiment, batches):
    first, second = ([j.run_dir for j in jobs] for jobs in batches)
    assert not set(first) & set(second)  # finished runs are not run again: the second batch holds new trials only
    study = load_study(experiment)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6))
    assert len({t.params["supervised.lr"] for t in trials}) == 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    runs = {int(run.name[:3]): run for run in first + second}
    for trial in trials:
        run, rows = runs[trial.number], history_rows(runs[trial.number])
        assert f"supervised.lr = {trial.params['supervised.lr']!r}" in (run / layout.CONFIG).read_text()
        assert {int(r["epoch"]): float(r["valid_acc"]) for r in rows} == trial.intermediate_values
        if trial.state == TrialState.COMPLETE:
            assert status_of(run) == "finished" and len(rows) == 3
            assert trial.value == max(float(r["valid_acc"]) for r in rows)
    pruned = [runs[t.number] for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "no run was pruned"
    for run in pruned:
        assert status_of(run) == "pruned" and len(history_rows(run)) < 3 and (run / layout.FINISHED).exists()
    return pruned


def history_rows(run):
    return history(run).to_dict("records")


def test_rounds_with_the_local_runner_prune_and_report(experiment, capsys):
    batches = run_rounds(experiment, lambda batch: run_local(batch, jobs=2, quiet=True) == 0 or pytest.fail())
    pruned = check_rounds(experiment, batches)
    # a pruned run is done: training it again (an old batch file) does nothing
    from src import config
    from src.training_loop import training_loop

    before = history_rows(pruned[0])
    config.parse([str(experiment / "bayes" / "configs" / f"{pruned[0].name}.gin")])
    assert training_loop(str(pruned[0])) == json.loads((pruned[0] / layout.EVAL_RESULTS).read_text())
    assert "nothing to do" in capsys.readouterr().out and history_rows(pruned[0]) == before
    # report: the grid's table (pruned runs listed as such), then Optuna's plots and the best trial's bindings
    table = search().report(experiment, "bayes")
    assert len(table) == 6 and "pruned" in set(table["status"])
    for stem in ("optuna_history", "optuna_importances", "learning_curves"):
        assert (experiment / "bayes" / f"{stem}.png").stat().st_size > 0
    best = load_study(experiment).best_trial
    assert f"supervised.lr = {best.params['supervised.lr']!r}" in (experiment / "bayes" / "best.gin").read_text()


@pytest.mark.slurm
def test_rounds_on_slurm(slurm, experiment):
    from src.runners.slurm import SlurmOptions, submit

    def on_slurm(batch):
        job_id = submit(batch, SlurmOptions(max_jobs=2, cpus=1))
        assert job_id
        wait_for(job_id)

    check_rounds(experiment, run_rounds(experiment, on_slurm))


def fake_end(run, status, values=(0.5, 0.6)):
    """What prepare reads of a run that ended: history.csv, and FINISHED / PRUNED / FAILED."""
    run.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{i},{i},{v}\n" for i, v in enumerate(values, 1))
    (run / layout.HISTORY).write_text("epoch,step,valid_acc\n" + rows)
    marker = {"finished": [layout.FINISHED], "pruned": [layout.PRUNED, layout.FINISHED], "failed": [layout.FAILED]}
    for name in marker[status]:
        (run / name).write_text("boom\n")


def test_told_once_failed_replaced_dead_kept_and_reproducible(experiment, tmp_path, monkeypatch):
    def rounds(experiment):
        asked = []
        first = search(batch_size=4, n_trials=5).prepare(experiment, "bayes")
        runs = [j.run_dir for j in read_batch(first.batch)]
        fake_end(runs[0], "finished", (0.5, 0.9))
        fake_end(runs[1], "pruned", (0.1,))
        fake_end(runs[2], "failed")
        # runs[3] never ran (or was killed): it stays open and in the batch
        second = search(batch_size=4, n_trials=5).prepare(experiment, "bayes")
        assert second.told.complete == [runs[0].name] and second.told.pruned == [runs[1].name]
        assert second.told.failed == [runs[2].name]
        # the failed trial does not count: 3 done or open, 2 more fit in the budget of 5
        assert second.todo == [runs[3].name, *second.asked] and len(second.asked) == 2
        assert second.budget_left == 0
        third = search(batch_size=4, n_trials=5).prepare(experiment, "bayes")  # nothing new to tell: same batch
        assert third.todo == second.todo and third.asked == [] and third.told.complete == []
        study = load_study(experiment)
        asked += [(t.number, t.params) for t in study.get_trials()]
        states = [t.state for t in study.get_trials()]
        running = TrialState.RUNNING
        assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, running, running, running]
        assert study.trials[0].value == 0.9
        return asked

    first = rounds(experiment)
    again = tmp_path / "again" / "exp"
    again.mkdir(parents=True)
    (again / "template_config.gin").write_text(TEMPLATE)
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "again" / "results"))
    assert rounds(again) == first  # the same sequence of prepare / results gives the same trials


def test_killed_run_keeps_its_trial_and_is_told_once(experiment, env):
    done = search(n_trials=1, batch_size=1, pruner="none", pruner_options={}).prepare(experiment, "bayes")
    (job,) = read_batch(done.batch)
    killed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "kill_at.py"), "write:history.csv:4", *job.args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert status_of(job.run_dir) == "dead" and len(history_rows(job.run_dir)) == 2
    again = search(n_trials=1, batch_size=1, pruner="none", pruner_options={}).prepare(experiment, "bayes")
    assert again.asked == [] and read_batch(again.batch) == [job]  # the same trial, resumed
    assert run_local(again.batch, quiet=True) == 0
    for _ in range(2):  # telling twice changes nothing
        search(n_trials=1, batch_size=1, pruner="none", pruner_options={}).prepare(experiment, "bayes")
    (trial,) = load_study(experiment).get_trials()
    rows = history_rows(job.run_dir)
    assert trial.number == 0 and trial.state == TrialState.COMPLETE and len(rows) == 3
    assert trial.intermediate_values == {int(r["epoch"]): float(r["valid_acc"]) for r in rows}
    assert trial.value == max(float(r["valid_acc"]) for r in rows)


def test_space_syntax_matches_random_search():
    space = {"a.lr": ("log", 1e-4, 1e-1), "a.w": [8, 16], "a.n": ("int", 1, 4), "a.m": ("log_int", 8, 512)}
    points = random_search(space, n=30, seed=0)
    assert {p["a.n"] for p in points} == {1, 2, 3, 4} and all(8 <= p["a.m"] <= 512 for p in points)
    distributions = optuna_search(space, n_trials=2, batch_size=1).distributions()
    assert distributions["a.n"] == optuna.distributions.IntDistribution(1, 4)
    assert distributions["a.m"] == optuna.distributions.IntDistribution(8, 512, log=True)
    assert distributions["a.lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sampler": "bayesian"}, "Unknown sampler 'bayesian'. Valid sampler names: tpe, random"),
        ({"pruner": "medain"}, "Unknown pruner 'medain'. Did you mean 'median'? Valid pruner names: median"),
        ({"space": {"cnn.width": [[8, 8], [16]]}}, "Space entry 'cnn.width' has the choice [8, 8]"),
        ({"space": {"supervised.lrr": ("log", 1e-4, 0.1)}}, "binds supervised.lrr: supervised has no parameter"),
        ({"fixed": {"training_loop.n_epoch": 2}}, "binds training_loop.n_epoch: Unknown parameter training_loop.n_"),
        ({"space": {"supervised.lr": ("normal", 0, 1)}}, "is not a distribution Optuna can express"),
        ({"space": {"supervised.lr": ("log", 0, 1)}}, "a log scale needs lo > 0"),
        ({"space": {"cnn.width": ("int", 8, 64.5)}}, "integers for 'int'"),
        ({"metric": "valid_f1"}, "Cannot tell which way 'valid_f1' is better"),
    ],
)
def test_bad_search_is_one_line(experiment, capsys, changes, message):
    code = experiment_main(experiment, {"bayes": search(**changes)}, argv=["prepare", "--name", "bayes"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (experiment / "bayes").exists()


def test_a_misspelt_metric_fails_the_run_before_training_then_prepare_refuses_it(experiment, train, capsys):
    """The run fails at fit start (FAILED names what the module logs, no epoch trained); the next prepare reads what
    the runs record (metrics.json, history.csv) and refuses the metric in one line, asking no new trial."""
    settings = dict(metric="valid_acuracy", direction="max", n_trials=2, batch_size=1, pruner="none", pruner_options={})
    done = search(**settings).prepare(experiment, "bayes")
    (job,) = read_batch(done.batch)
    with pytest.raises(UserError, match="not a metric the module logs while training; it logs: .*valid_acc"):
        train(job.run_dir, configs=[job.args[1]])
    failed = (job.run_dir / layout.FAILED).read_text()
    assert "optuna_pruning.monitor 'valid_acuracy' is not a metric" in failed and "Did you mean 'valid_acc'?" in failed
    assert not (job.run_dir / layout.HISTORY).exists() or history_rows(job.run_dir) == []  # nothing trained
    capsys.readouterr()
    code = experiment_main(experiment, {"bayes": search(**settings)}, argv=["prepare", "--name", "bayes"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: optuna_search metric 'valid_acuracy' is not recorded by the runs of this search;")
    assert "valid_acc" in err and err.rstrip().endswith("Did you mean 'valid_acc'?")
    assert len(load_study(experiment).get_trials()) == 1  # nothing new asked, nothing told
    # without a direction, the message says the name may be misspelt and lists what the runs record
    del settings["direction"]
    with pytest.raises(UserError, match=r"not recorded by the runs of this search; they record: valid_loss, valid_acc"):
        search(**settings).check(["valid_loss", "valid_acc"])
    declared = {"valid_loss": "min", "valid_acc": "max"}
    with pytest.raises(UserError, match=r"Cannot tell which way 'valid_acuracy' is better: if the name is misspelt"):
        search(**settings).check(directions={})
    with pytest.raises(UserError, match=r"the module declares valid_loss, valid_acc. Did you mean 'valid_acc'"):
        search(**settings).study_direction(declared)


def test_metric_of_the_test_set_or_unlogged_is_refused(experiment):
    with pytest.raises(UserError, match="'test_acc' is measured on the test set after training.*use 'valid_acc'"):
        search(metric="test_acc").prepare(experiment, "bayes")
    assert not (experiment / "bayes").exists()
    # the pruning callback, given the module's declaration, checks at fit start; during an epoch it names what the
    # run logs
    from src.searches.optuna_pruning import OptunaPruning

    declared = {"main": "valid_acc", "directions": {"valid_loss": "min", "valid_acc": "max", "test_acc": "max"}}
    with pytest.raises(UserError, match="'test_acc' is not a metric the module logs while training; it logs: "):
        OptunaPruning(experiment, "unused", "exp/bayes", 0, "test_acc", declared).on_fit_start(None, None)
    OptunaPruning(experiment, "unused", "exp/bayes", 0, "valid_acc", declared).on_fit_start(None, None)
    callback = OptunaPruning(experiment, "unused", "exp/bayes", 0, "valid_f1")
    trainer = SimpleNamespace(callback_metrics={"valid_acc": 0.5, "valid_loss": 1.0}, is_global_zero=True)
    with pytest.raises(UserError, match="'valid_f1' is not logged by this run \\(it logs valid_acc, valid_loss\\)"):
        callback.report(trainer)


def test_a_finished_run_without_a_value_is_told_failed_and_replaced(experiment, capsys):
    """A metric that is NaN in every epoch, a missing history, bytes that are no text: the trial is told FAIL with
    the reason in prepare's summary, and new trials take those places; the search goes on."""
    settings = dict(batch_size=3, n_trials=3, pruner="none", pruner_options={})
    done = search(**settings).prepare(experiment, "bayes")
    nan, missing, garbage = (job.run_dir for job in read_batch(done.batch))
    fake_end(nan, "finished", (float("nan"), float("nan")))
    fake_end(missing, "finished")
    (missing / layout.HISTORY).unlink()
    fake_end(garbage, "finished")
    (garbage / layout.HISTORY).write_bytes(b"epoch,valid_acc\n1,\xff\xfe\x00\n")
    assert experiment_main(experiment, {"bayes": search(**settings)}, argv=["prepare", "--name", "bayes"]) == 0
    out = capsys.readouterr().out
    assert f"told the study 3 failed: {nan.name}, {missing.name}, {garbage.name}" in out
    assert f"failed: {nan.name}: {nan / layout.HISTORY} has no finite valid_acc" in out
    assert f"failed: {missing.name}: {missing / layout.HISTORY} is missing" in out
    assert f"failed: {garbage.name}: {garbage / layout.HISTORY} is damaged: " in out
    assert "3 new trials, 3 to run" in out
    states = [t.state for t in load_study(experiment).get_trials()]
    assert states == [TrialState.FAIL] * 3 + [TrialState.RUNNING] * 3


def test_study_of_another_experiment_or_search(experiment, tmp_path):
    search().prepare(experiment, "bayes")
    other = tmp_path / "other"
    other.mkdir()
    (other / "template_config.gin").write_text(TEMPLATE)
    (tmp_path / "results" / "other" / "bayes").mkdir(parents=True)
    shutil.copy(tmp_path / "results" / "exp" / "bayes" / STUDY_FILE, tmp_path / "results" / "other" / "bayes")
    with pytest.raises(UserError, match="holds the study 'exp/bayes' of another experiment, not 'other/bayes'"):
        search().prepare(other, "bayes")
    with pytest.raises(UserError, match="was made with another space; use a new search name"):
        search(space={"supervised.lr": ("log", 1e-4, 1.0)}).prepare(experiment, "bayes")


@pytest.mark.parametrize("dies_at", ["eval_results.json", layout.PRUNED, layout.FINISHED])
def test_a_run_interrupted_on_its_way_out_after_a_prune_ends_pruned_when_started_again(
    experiment, train, monkeypatch, dies_at
):
    """Ctrl-C (or a kill) right after the study's pruner stopped the run, at each file it writes on its way out: the
    same command ends it as an uninterrupted pruned run ends, tested, with every file and both markers (it used to
    leave PRUNED alone, and the re-run said "nothing to do" for ever)."""
    from src.run import layout as run_layout

    always = search(n_trials=1, batch_size=1, pruner="threshold", pruner_options={"lower": 2.0})  # acc < 2: prune
    done = always.prepare(experiment, "bayes")
    (job,) = read_batch(done.batch)
    config = [str(p) for p in job.args[1:]]
    write = run_layout.write_atomic

    def interrupted(path, text):
        if Path(path).name == dies_at:
            raise KeyboardInterrupt
        write(path, text)

    monkeypatch.setattr(run_layout, "write_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(job.run_dir, configs=config)
    monkeypatch.setattr(run_layout, "write_atomic", write)
    assert status_of(job.run_dir) != "pruned" or dies_at == layout.FINISHED
    train(job.run_dir, configs=config)
    assert status_of(job.run_dir) == "pruned" and (job.run_dir / layout.FINISHED).exists()
    for name in (layout.EVAL_RESULTS, layout.LAST_CKPT, layout.BEST_CKPT):
        assert (job.run_dir / name).is_file(), name
    assert list(history(job.run_dir)["epoch"]) == [1]  # pruned after its first epoch, never trained further
    assert "trial 0 pruned at epoch 1" in (job.run_dir / layout.PRUNED).read_text()


def test_the_direction_the_module_declares_and_the_runs_record_and_what_the_study_names(tmp_path, monkeypatch):
    """metric='valid_mae' without a direction: before any run, the module the template's config builds (untrained)
    declares mae: min, so the study minimizes; it names its metric (optuna-dashboard, plots), and each trial names its
    run folder. A misspelt metric is refused at once with the close name; once runs have recorded their directions
    (metrics.json), those are used, and a direction given against them is refused."""
    experiment = experiment_folder(tmp_path, monkeypatch, "include 'configs/regression.gin'\n" + "\n".join(FAST))
    settings = dict(metric="valid_mae", n_trials=4, batch_size=2, pruner="none", pruner_options={})
    done = search(**settings).prepare(experiment, "bayes")
    study = load_study(experiment)
    assert study.direction == StudyDirection.MINIMIZE and study.metric_names == ["valid_mae"]
    assert [t.user_attrs["run"] for t in study.trials] == done.asked
    assert [t.user_attrs["run_dir"] for t in study.trials] == [str(job.run_dir) for job in read_batch(done.batch)]
    with pytest.raises(UserError, match=r"Cannot tell which way 'valid_mea' is better: .*Did you mean 'valid_mae'\?"):
        search(**{**settings, "metric": "valid_mea"}).prepare(experiment, "typo")
    assert not (experiment / "typo").exists()
    # once a run has recorded its metrics (metrics.json), those directions count, without building the module
    run = read_batch(done.batch)[0].run_dir
    fake_end(run, "finished", (0.9, 0.4))
    (run / layout.METRICS).write_text(
        json.dumps({"main": "valid_f1", "directions": {"valid_mae": "min", "valid_f1": "max"}})
    )
    f1 = search(**{**settings, "metric": "valid_f1"})
    assert f1.study_direction(f1.directions(experiment, run.parent)) == "maximize"
    with pytest.raises(UserError, match=r"direction='max'\) contradicts the direction of 'valid_mae' .* \('min'\)"):
        search(**settings, direction="max").prepare(experiment, "bayes")


# --- issue 27: the study's journal after a full disk or a kill, concurrent prepares, restarted trials, bad options ---

QUICK = dict(direction="max", pruner="none", pruner_options={})  # no module to build, nothing to prune


def journal_of(experiment, name="bayes"):
    return experiment.parent / "results" / experiment.name / name / STUDY_FILE


def whole_records(journal):
    """The journal's lines, each a JSON record ending in a newline (what Optuna can read and append to)."""
    data = journal.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def test_a_prepare_with_nothing_to_tell_or_ask_leaves_the_journal_untouched(experiment):
    """The second prepare finds nothing ended and batch_size trials open: the journal keeps its bytes and mtime (it
    used to append a create-study record every time, so that a full disk damaged it on any prepare)."""
    search(**QUICK).prepare(experiment, "bayes")
    journal = journal_of(experiment)
    before, stat = journal.read_bytes(), journal.stat()
    again = search(**QUICK).prepare(experiment, "bayes")
    assert again.asked == [] and len(again.todo) == 3
    assert journal.read_bytes() == before and journal.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize("torn", [b'{"op_code":6,"worker_id":"a-b","trial_id":0,"sta', b"\x00" * 40 + b"\n"])
def test_a_torn_last_record_is_cut_off_with_a_warning_before_the_next_write(experiment, capsys, torn):
    """A write cut short (a kill, a full disk: no newline at the end, or a last line of NUL bytes) is cut off and
    kept aside, with a warning naming the journal, before the next record is appended; the study is as it was, and
    every later prepare and report works (the next record used to continue the torn line: JSONDecodeError for
    ever)."""
    settings = dict(QUICK, n_trials=4, batch_size=2)
    first = search(**settings).prepare(experiment, "bayes")
    journal = journal_of(experiment)
    whole = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(torn)
    runs = [job.run_dir for job in read_batch(first.batch)]
    for run, value in zip(runs, (0.7, 0.8), strict=True):
        fake_end(run, "finished", (0.5, value))
    capsys.readouterr()
    second = search(**settings).prepare(experiment, "bayes")
    err = capsys.readouterr().err
    assert f"warning: {journal} ended in a torn record ({len(torn)} bytes" in err and err.count("\n") == 1
    assert Path(f"{journal}.torn").read_bytes() == torn.rstrip(b"\n") + b"\n"
    assert journal.read_bytes().startswith(whole) and whole_records(journal)
    assert second.told.complete == [r.name for r in runs] and len(second.asked) == 2
    states = [t.state for t in load_study(experiment).get_trials()]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING] * 2
    third = search(**settings).prepare(experiment, "bayes")  # reads and writes on as usual, no second warning
    assert third.todo == second.todo and capsys.readouterr().err == ""
    assert len(search(**settings).report(experiment, "bayes")) == 4


def test_a_full_disk_while_prepare_appends_is_one_line_and_the_journal_stays_whole(experiment, capsys, monkeypatch):
    """ENOSPC half-way through a record: one line naming the journal, the half record cut at once; once space is
    freed the same prepare tells and asks as if nothing had happened."""
    import errno

    import optuna.storages.journal._file as journal_file

    settings = dict(QUICK, n_trials=4, batch_size=2)
    first = search(**settings).prepare(experiment, "bayes")
    runs = [job.run_dir for job in read_batch(first.batch)]
    fake_end(runs[0], "finished", (0.5, 0.7))
    journal = journal_of(experiment)
    whole = journal.read_bytes()

    class Full:
        """An append whose write stops half-way: no space left."""

        def __init__(self, path):
            self.f = open(path, "ab")  # noqa: SIM115

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    full = lambda path, mode="r": Full(path) if "a" in mode else open(path, mode)  # noqa: E731, SIM115
    monkeypatch.setattr(journal_file, "open", full, raising=False)
    code = experiment_main(experiment, {"bayes": search(**settings)}, argv=["prepare", "--name", "bayes"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: No space left on device while writing {journal}: free some space, then run")
    assert journal.read_bytes() == whole  # the half record is gone
    monkeypatch.delattr(journal_file, "open")
    again = search(**settings).prepare(experiment, "bayes")
    assert again.told.complete == [runs[0].name] and again.todo == [runs[1].name, *again.asked]
    assert len(again.asked) == 1 and whole_records(journal)


def test_a_journal_damaged_before_its_end_is_one_line_naming_the_file_and_the_line(experiment, capsys):
    """What the old append left (a record continuing a torn line), or any line that is no record: one line naming
    the journal and the line, and how to get a working study back; nothing is written."""
    search(**QUICK).prepare(experiment, "bayes")
    journal = journal_of(experiment)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"op_code":5,"worker_id":"a-b","tri' + lines[3]
    journal.write_bytes(b"".join(lines))
    damaged = journal.read_bytes()
    code = experiment_main(experiment, {"bayes": search(**QUICK)}, argv=["prepare", "--name", "bayes"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: The Optuna study {journal}, line 4, is damaged (not JSON: ")
    assert "restore it from a backup, or keep only the lines before it (`head -n 3`)" in err
    assert journal.read_bytes() == damaged
    with pytest.raises(UserError, match=r"line 4, is damaged"):
        search(**QUICK).report(experiment, "bayes")


def test_a_prepare_killed_inside_ask_is_recovered_by_the_next(experiment, monkeypatch, capsys):
    """Killed between the create-trial record and the parameters' records: the trial has no supervised.lr. The
    next prepare tells it FAIL and asks a new trial in its place (no run folder for it); report leaves it out.
    (Every later prepare and report used to fail with KeyError: 'supervised.lr'.)"""
    from optuna.storages import JournalStorage

    settings = dict(QUICK, n_trials=3, batch_size=2)
    set_param = JournalStorage.set_trial_param

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(JournalStorage, "set_trial_param", killed)
    with pytest.raises(KeyboardInterrupt):
        search(**settings).prepare(experiment, "bayes")
    monkeypatch.setattr(JournalStorage, "set_trial_param", set_param)
    (partial,) = load_study(experiment).get_trials()
    assert partial.state == TrialState.RUNNING and partial.params == {}
    with pytest.raises(UserError, match="has no trials yet"):  # report, before any prepare recovered it
        search(**settings).report(experiment, "bayes")
    capsys.readouterr()
    assert experiment_main(experiment, {"bayes": search(**settings)}, argv=["prepare", "--name", "bayes"]) == 0
    assert "discarded trial 0: a prepare was killed while asking for it" in capsys.readouterr().out
    trials = load_study(experiment).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    jobs = read_batch(experiment / "bayes" / "batch.sh")
    assert [j.run_dir.name[:3] for j in jobs] == ["001", "002"]
    assert sorted(p.name[:3] for p in (experiment / "bayes" / "configs").iterdir()) == ["001", "002"]
    for job, value in zip(jobs, (0.6, 0.7), strict=True):
        fake_end(job.run_dir, "finished", (0.5, value))
    table = search(**settings).report(experiment, "bayes")
    assert sorted(Path(run).name for run in table["run"]) == [j.run_dir.name for j in jobs]


def test_concurrent_prepares_on_slow_storage_never_ask_more_than_batch_size(experiment, monkeypatch):
    """Two prepares at once, every read of the journal slowed down (a shared file system): each plans under the
    search's lock, so the second sees the trials of the first; together they ask batch_size trials, not twice as
    many, and both write the same batch."""
    import threading
    import time

    from optuna.storages.journal import JournalFileBackend

    settings = dict(QUICK, n_trials=20, batch_size=3)
    search(**settings).check()
    read = JournalFileBackend.read_logs

    def slow(self, log_number_from):
        time.sleep(0.02)
        yield from read(self, log_number_from)

    monkeypatch.setattr(JournalFileBackend, "read_logs", slow)
    start, results, errors = threading.Barrier(2), [], []

    def one():
        start.wait()
        try:
            results.append(search(**settings).prepare(experiment, "bayes"))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    trials = load_study(experiment).get_trials()
    assert len(trials) == 3 and sorted(len(r.asked) for r in results) == [0, 3]
    assert results[0].todo == results[1].todo == [t.user_attrs["run"] for t in trials]


@pytest.mark.parametrize("old, now, pruned", [(0.1, 0.8, False), (0.9, 0.1, True)])
def test_a_trial_restarted_from_scratch_is_judged_on_its_current_epoch(experiment, old, now, pruned):
    """A trial whose run reported epochs 1-3 (value `old` each) and then lost its folder trains again from epoch 1:
    the pruner judges this run's epoch 1 (value `now`, against the median 0.5 of the completed trials at step 1),
    not the old attempt's epoch 3, and epoch 1's stored value is the current one."""
    from src.searches.optuna_parts import PRUNER
    from src.searches.optuna_pruning import OptunaPruning

    journal = journal_of(experiment)
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(storage=journal_storage(journal), study_name="exp/bayes", direction="maximize")
    study.set_user_attr(PRUNER, {"name": "median", "options": {"n_startup_trials": 1}})
    for _ in range(3):
        steps = {1: 0.5, 2: 0.6, 3: 0.7}
        study.add_trial(optuna.trial.create_trial(value=0.7, intermediate_values=steps))
    restarted = study.ask()
    for step in (1, 2, 3):
        restarted.report(old, step)
    callback = OptunaPruning(experiment, str(journal), "exp/bayes", restarted.number, "valid_acc")
    trainer = SimpleNamespace(callback_metrics={"valid_acc": now}, current_epoch=0, max_epochs=3, is_global_zero=True)
    assert callback.report(trainer) is pruned
    assert load_study(experiment).trials[restarted.number].intermediate_values == {1: now, 2: old, 3: old}
    if pruned:
        assert "pruned at epoch 1 of 3: valid_acc = 0.1" in callback.pruned


def test_fixed_callbacks_are_kept_and_get_the_pruning_callback(experiment):
    """fixed={'training_loop.callbacks': [...]}: the runs get those callbacks and optuna_pruning (the fixed list used
    to be dropped silently for the template's)."""
    done = search(**QUICK, fixed={"training_loop.callbacks": ["progress_log", "ema"]}).prepare(experiment, "bayes")
    for job in read_batch(done.batch):
        config = Path(job.args[1]).read_text()
        assert "training_loop.callbacks = ['progress_log', 'ema', 'optuna_pruning']" in config


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"space": {"cnn.width": ("int", 1, 548813503928)}}, "proposes integers beyond 2147483647 (2**31 - 1)"),
        ({"space": {"cnn.width": ("int", -4, 8)}}, "proposes -4: cnn.width is a size, at least 1."),
        ({"space": {"cnn.width": [0, 8]}}, "proposes 0: cnn.width is a size, at least 1."),
        ({"space": {"cnn.width": ("int", 16, 8)}}, "('int', 16, 8) is empty: lo must be below hi"),
        ({"space": {"training_loop.val_check_interval": ("uniform", 0.5, 1.5)}}, "val_check_interval = 1.5 is not"),
        ({"pruner_options": {"n_startup_trial": 3}}, "Bad pruner_options for 'median': "),
        ({"pruner_options": {"n_startup_trials": -1}}, "Bad pruner_options for 'median': "),
        ({"sampler_options": {"n_startup_trial": 3}}, "Bad sampler_options for 'tpe': "),
        ({"fixed": {"supervised.lr": 0.1}}, "binds supervised.lr in both space and fixed"),
        ({"fixed": {"optuna_pruning.monitor": "valid_loss"}}, "binds optuna_pruning.monitor, which the search binds"),
    ],
)
def test_bad_options_are_one_line_before_anything_is_written(experiment, capsys, changes, message):
    """Refused by the first prepare, before the study's journal or any folder exists (a bad pruner option used to
    be refused after the journal was written; the others passed and failed the runs, or proposed absurd values)."""
    code = experiment_main(experiment, {"bayes": search(**changes)}, argv=["prepare", "--name", "bayes"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (experiment / "bayes").exists() and not (experiment.parent / "results").exists()


def test_report_of_trials_that_all_scored_the_same_skips_the_importances(experiment, capsys):
    """fANOVA cannot split a variance of zero: report says why there is no importance plot instead of failing."""
    done = search(batch_size=2, n_trials=2).prepare(experiment, "bayes")
    for job in read_batch(done.batch):
        fake_end(job.run_dir, "finished", (0.5, 0.7))
    search(batch_size=2, n_trials=2).prepare(experiment, "bayes")
    table = search(batch_size=2, n_trials=2).report(experiment, "bayes")
    assert len(table) == 2
    assert "every completed trial has the same value, so no parameter matters yet" in capsys.readouterr().out
    assert (experiment / "bayes" / "optuna_history.png").is_file()
    assert not (experiment / "bayes" / "optuna_importances.png").exists()
