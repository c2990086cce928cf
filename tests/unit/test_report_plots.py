"""The experiment report's figures and secondary metrics (src/searches/plots.py, report.py), on fake run folders: the
figures are inspected as matplotlib draws them (lines, bands, markers, legend, colour bar, axis scale) before they are
written."""

import pandas as pd
import pytest

from src.errors import UserError
from src.searches import plots
from src.searches.experiment import grid, run_names, swept_keys
from tests.helpers import experiment_folder, fake_run

DIRECTIONS = {"valid_acc": "max", "valid_loss": "min", "valid_kl": "min"}


@pytest.fixture
def figures(monkeypatch):
    """{file stem: figure} of every figure the report draws (not written)."""
    found = {}

    def keep(fig, stem, inline):
        fig.canvas.draw()  # lay out legends and colour bars
        found[stem.name] = fig
        return [stem.with_suffix(".png")]

    monkeypatch.setattr(plots, "save", keep)
    monkeypatch.setattr(plots, "select_backend", lambda: False)
    yield found
    import matplotlib.pyplot as plt

    plt.close("all")


def runs(tmp_path, monkeypatch, name, points, acc, pruned=()):
    """An experiment `exp` whose search `name` has one fake run per point: valid_acc by epoch from acc(point, i)."""
    tmp_path.mkdir(exist_ok=True)
    experiment = experiment_folder(tmp_path, monkeypatch, "")
    names = run_names(points, swept_keys(points))  # as prepare names them
    for i, point in enumerate(points):
        values = acc(point, i)
        history = {"epoch": list(range(1, len(values) + 1)), "valid_acc": values, "valid_loss": [1 - v for v in values]}
        history["valid_kl"] = [0.1 * (e + 1) for e in range(len(values))]
        run = fake_run(tmp_path / "results" / "exp" / name / names[i], dict(point), history, DIRECTIONS)
        if i in pruned:
            (run / "PRUNED").touch()
    return experiment, names


def lines(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 0]


def test_a_line_joins_only_runs_that_differ_in_the_plotted_value(tmp_path, monkeypatch, figures):
    """An Optuna-like search (every run differs in lr and weight decay): points only, no 'mean' zig-zag through runs
    that differ in another value. A grid of lr x width: one line per width, through its learning rates."""
    from src.searches.report import report

    points = [{"supervised.lr": 10 ** -(1 + i / 2), "supervised.weight_decay": 10 ** -(2 + i / 3)} for i in range(6)]
    experiment, names = runs(tmp_path, monkeypatch, "adaptive", points, lambda p, i: [0.5, 0.6 + 0.01 * i])
    report(experiment, "adaptive", points, list(points[0]), names=names)
    ax = figures["valid_acc_vs_lr"].axes[0]
    assert lines(ax) == [] and len(ax.collections[0].get_offsets()) == 6  # the six runs, as points
    points = grid({"supervised.lr": [0.001, 0.01, 0.1], "cnn.width": [8, 16]})
    experiment, names = runs(tmp_path / "g", monkeypatch, "grid", points, lambda p, i: [0.5, 0.6 + 0.01 * i])
    report(experiment, "grid", points, names=names)
    ax = figures["valid_acc_vs_lr"].axes[0]
    assert sorted(line.get_label() for line in lines(ax)) == ["width=16", "width=8"]
    assert all(list(line.get_xdata()) == [0.001, 0.01, 0.1] for line in lines(ax))


def test_replicates_band_of_an_accuracy_stays_within_its_range(tmp_path, monkeypatch, figures):
    from src.searches.report import report

    points = grid({"supervised.lr": [0.01, 0.1], "training_loop.seed": [0, 1, 2]})
    spread = {0: 0.999, 1: 0.9, 2: 0.99}  # mean + std > 1
    experiment, names = runs(
        tmp_path, monkeypatch, "seeds", points, lambda p, i: [0.5, spread[p["training_loop.seed"]]]
    )
    report(experiment, "seeds", points, names=names)
    for stem in ("learning_curves", "valid_acc_vs_lr"):
        bands = figures[stem].axes[0].collections
        tops = [vertex[1] for band in bands for path in band.get_paths() for vertex in path.vertices]
        assert bands and max(tops) == pytest.approx(1.0), stem  # clipped at 1, not ~1.05


def test_many_lines_have_distinct_styles_and_a_legend_beside_the_axes(tmp_path, monkeypatch, figures):
    from src.searches.report import report

    points = grid({"supervised.lr": [0.001, 0.003, 0.01, 0.03], "cnn.width": [8, 16, 32]})  # 12 runs
    experiment, names = runs(tmp_path, monkeypatch, "wide", points, lambda p, i: [0.5, 0.6 + 0.01 * i], pruned=[3])
    report(experiment, "wide", points, names=names)
    fig = figures["learning_curves"]
    ax = fig.axes[0]
    curves = [line for line in lines(ax) if line.get_marker() == "."]
    assert len(curves) == 12 and len({(line.get_color(), line.get_linestyle()) for line in curves}) == 12
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, over no curve
    # the pruned run's curve ends with ▼, which the legend names
    assert [line for line in lines(ax) if line.get_marker() == "v"]
    assert "pruned by the study" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(c.get_label().startswith("pruned runs") for c in figures["valid_acc_vs_lr"].axes[0].collections)


def test_many_values_of_one_swept_number_are_coloured_along_a_colour_bar(tmp_path, monkeypatch, figures):
    from src.searches.report import report

    points = grid({"supervised.lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "training_loop.seed": [0, 1]})
    experiment, names = runs(tmp_path, monkeypatch, "lrs", points, lambda p, i: [0.5, 0.6 + 0.01 * i])
    report(experiment, "lrs", points, names=names)
    fig = figures["learning_curves"]
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "supervised.lr"  # the colour bar
    assert fig.axes[0].get_legend() is None  # nothing to name: the colours say it
    assert len({line.get_color() for line in lines(fig.axes[0])}) == 7


def test_log_spaced_values_get_a_log_axis(tmp_path, monkeypatch, figures):
    from src.searches.report import report

    assert plots.log_spaced([0.001, 0.003, 0.01]) and plots.log_spaced([8, 16, 32])
    assert not plots.log_spaced([10, 20, 30]) and not plots.log_spaced([0.001, 0.005])
    points = grid({"supervised.lr": [0.001, 0.003, 0.01]})
    experiment, names = runs(tmp_path, monkeypatch, "lr", points, lambda p, i: [0.5, 0.6 + 0.01 * i])
    report(experiment, "lr", points, names=names)
    assert figures["valid_acc_vs_lr"].axes[0].get_xscale() == "log"


def test_secondary_metrics_at_the_selected_checkpoint_and_plots_of_any_metric(tmp_path, monkeypatch, figures, capsys):
    """The report shows every validation metric at each run's selected checkpoint (at_best_*), averages them over
    replicates (results_by_config.csv), and plots any recorded metric it is asked to; a typo is one line."""
    from src.cli.experiment import experiment_main

    points = grid({"supervised.lr": [0.01, 0.1], "training_loop.seed": [0, 1]})
    experiment, names = runs(tmp_path, monkeypatch, "vae", points, lambda p, i: [0.5, 0.7, 0.6])
    searches = {"vae": points}
    assert experiment_main(experiment, searches, argv=["report", "--name", "vae", "--plot", "valid_kl"]) == 0
    assert "at_best_valid_kl" in capsys.readouterr().out
    results = pd.read_csv(experiment / "vae" / "results.csv")
    assert (results["at_best_valid_kl"] == 0.2).all() and (results["best_valid_kl"] == 0.1).all()  # epoch 2's
    by_config = pd.read_csv(experiment / "vae" / "results_by_config.csv")
    assert by_config["at_best_valid_kl mean"].tolist() == pytest.approx([0.2, 0.2])
    assert {"learning_curves_valid_kl", "valid_kl_vs_lr"} <= set(figures)
    assert figures["valid_kl_vs_lr"].axes[0].get_ylabel() == "at_best_valid_kl"
    assert experiment_main(experiment, searches, argv=["report", "--name", "vae", "--plot", "valid_lk"]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot plot metric 'valid_lk': it is not recorded by these runs" in err and "Did you mean 'valid_kl'?" in err
    )
    with pytest.raises(UserError, match="cannot plot metric 'train_kl'"):
        from src.searches.report import report

        report(experiment, "vae", points, plots=["train_kl"])


def test_lr_find_plot_has_a_title_and_a_labelled_suggestion(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from src.recipes.find_lr import write_plot

    class Found:
        results = {"lr": [1e-4, 1e-3, 1e-2, 1e-1], "loss": [2.0, 1.5, 1.0, 3.0]}

        def plot(self, suggest):
            self.figure, ax = plt.subplots()
            ax.plot(self.results["lr"], self.results["loss"])
            ax.set_xscale("log")
            return self.figure

    found = Found()
    write_plot(found, tmp_path / "lr_find.png", ["configs/cnn.gin"], 1)
    ax = found.figure.axes[0]
    assert ax.get_title() == "learning-rate range test (cnn.gin)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["suggested: lr = 0.001"]
    assert "0.001" in [t.get_text() for t in ax.texts] and (tmp_path / "lr_find.png").stat().st_size > 0
    write_plot(found, tmp_path / "none.png", ["configs/cnn.gin"], None)
    assert found.figure.axes[0].get_title().endswith(": the loss never fell")
