"""Optuna's parts by name, for src/searches/optuna_search.py and the pruning callback: the search-space syntax (that of
random_search) as Optuna distributions, samplers and pruners by name, the study's journal file storage
(src/searches/optuna_journal.py) and the lock under which a `prepare` plans its batch. Optuna is imported only when
one is built."""

from __future__ import annotations

import fcntl
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.errors import UserError, one_line, unknown

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
INT_LIMIT = 2**31 - 1  # an integer parameter beyond this is a typo or an absurd size (548813503928 channels)
SIZES = ("width", "size", "dim", "channels", "features", "units", "hidden", "heads", "latent")  # an int: >= 1
PLAN_LOCK = "optuna.prepare.lock"  # next to the study's journal: held while a prepare reads the study and asks


def journal_storage(path: Path) -> optuna.storages.BaseStorage:
    """The study's storage: Optuna's journal in the file `path`, a torn last record repaired
    (src/searches/optuna_journal.py)."""
    import optuna
    from optuna.storages.journal import JournalStorage

    from src.searches.optuna_journal import Journal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(Journal(str(path)))


@contextmanager
def planning(folder: Path) -> Iterator[None]:
    """Held by a `prepare` from reading the study to writing its batch: two prepares at once (two people, a script
    on two nodes) plan one after the other, so that together they never ask for more than batch_size trials. An
    fcntl lock: the kernel (or the NFS lock manager) releases it when its holder dies, so a killed prepare never
    blocks the next one."""
    fd = os.open(Path(folder) / PLAN_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another prepare of this search to finish ({folder / PLAN_LOCK})", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
        check_ints(key, spec, spec)
        return CategoricalDistribution(spec)
    if not (isinstance(spec, tuple) and len(spec) == 3 and spec[0] in KINDS):
        raise UserError(f"Space entry {key!r} = {spec!r} is not a distribution Optuna can express: use {SPACE_HELP}.")
    kind, low, high = spec
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    if not numbers or (kind.startswith("int") or kind == "log_int") and not integers:
        raise UserError(f"Space entry {key!r} = {spec!r}: lo and hi must be finite numbers (integers for {kind!r}) "
                        "with lo < hi.")  # fmt: skip
    if not low < high:
        raise UserError(
            f"Space entry {key!r} = {spec!r} is {'empty' if low > high else 'a single value'}: lo must be below hi "
            "(a value to keep goes into fixed=...)."
        )
    if kind.startswith("log") and low <= 0:
        raise UserError(f"Space entry {key!r} = {spec!r}: a log scale needs lo > 0.")
    if kind in ("int", "log_int"):
        check_ints(key, spec, (low, high))
        return IntDistribution(low, high, log=kind == "log_int")
    return FloatDistribution(float(low), float(high), log=kind == "log")


def check_ints(key: str, spec: Any, values: Sequence[Any]) -> None:
    """The integers a space entry can propose: within 32 bits (beyond, a typo or a size no memory holds), at least 1
    for a parameter named as a size (`cnn.width`, `mlp.hidden`, `data.batch_size`: see SIZES), at least 0 for one
    named as a count (`n_...`, `num_...`); one line naming the entry."""
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if any(abs(v) > INT_LIMIT for v in ints):
        raise UserError(
            f"Space entry {key!r} = {spec!r} proposes integers beyond {INT_LIMIT} (2**31 - 1): no size or count "
            "that large fits in memory; give a sensible range."
        )
    least = least_int(key)
    if least is not None and ints and min(ints) < least:
        what = "a size" if least == 1 else "a count"
        raise UserError(f"Space entry {key!r} = {spec!r} proposes {min(ints)}: {key} is {what}, at least {least}.")


def least_int(key: str) -> int | None:
    """The least integer a parameter's name allows: 1 for a size (`width`, `hidden_size`, `n_heads`...), 0 for a
    count (`n_...`, `num_...`), None when the name does not say."""
    words = key.rpartition(".")[2].lower().split("_")
    if any(word in SIZES for word in words):
        return 1
    return 0 if words[0] in ("n", "num") and len(words) > 1 else None


def name_value(value: Any) -> Any:
    return float(f"{value:.3g}") if isinstance(value, float) else value


def make_pruner(name: str, options: dict[str, Any]) -> optuna.pruners.BasePruner:
    import optuna

    if name not in PRUNERS:
        raise UserError(unknown("pruner", name, PRUNERS))
    try:
        return getattr(optuna.pruners, PRUNERS[name])(**options)
    except (TypeError, ValueError) as e:  # an unknown keyword; a value Optuna refuses (n_startup_trials=-1)
        raise UserError(f"Bad pruner_options for {name!r}: {one_line(e)}.") from e
