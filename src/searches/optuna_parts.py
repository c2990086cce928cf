"""Optuna's parts by name, for src/searches/optuna_search.py and the pruning callback: the search-space syntax (that of
random_search) as Optuna distributions, samplers and pruners by name, and the study's journal file storage. Optuna
is imported only when one is built."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError, unknown

if TYPE_CHECKING:
    import optuna

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "qmc": "QMCSampler", "gp": "GPSampler"}
PRUNER = "pruner"  # the study's user attribute naming its pruner and options: runs rebuild it from the storage
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}
KINDS = ("log", "uniform", "int", "log_int")
SPACE_HELP = "a list of choices, ('log', lo, hi), ('uniform', lo, hi), ('int', lo, hi) or ('log_int', lo, hi)"


def journal_storage(path: Path) -> optuna.storages.BaseStorage:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(JournalFileBackend(str(path)))


def distribution(key: str, spec: Any) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of a space entry (the syntax of random_search); one line naming what is wrong."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(spec, list):
        bad = [v for v in spec if v is not None and not isinstance(v, (bool, int, float, str))]
        if not spec or bad:
            what = "no choices" if not spec else f"the choice {bad[0]!r}"
            raise UserError(
                f"Space entry {key!r} has {what}: Optuna's choices are None, bool, int, float or str "
                "(give a string and map it in the template, e.g. a gin macro)."
            )
        return CategoricalDistribution(spec)
    if not (isinstance(spec, tuple) and len(spec) == 3 and spec[0] in KINDS):
        raise UserError(f"Space entry {key!r} = {spec!r} is not a distribution Optuna can express: use {SPACE_HELP}.")
    kind, low, high = spec
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not low < high or (kind.startswith("int") or kind == "log_int") and not integers:
        raise UserError(f"Space entry {key!r} = {spec!r}: lo and hi must be finite numbers (integers for {kind!r}) "
                        "with lo < hi.")  # fmt: skip
    if kind.startswith("log") and low <= 0:
        raise UserError(f"Space entry {key!r} = {spec!r}: a log scale needs lo > 0.")
    if kind in ("int", "log_int"):
        return IntDistribution(low, high, log=kind == "log_int")
    return FloatDistribution(float(low), float(high), log=kind == "log")


def name_value(value: Any) -> Any:
    return float(f"{value:.3g}") if isinstance(value, float) else value


def make_pruner(name: str, options: dict[str, Any]) -> optuna.pruners.BasePruner:
    import optuna

    if name not in PRUNERS:
        raise UserError(unknown("pruner", name, PRUNERS))
    try:
        return getattr(optuna.pruners, PRUNERS[name])(**options)
    except TypeError as e:
        raise UserError(f"Bad pruner_options for {name!r}: {e}.") from e
