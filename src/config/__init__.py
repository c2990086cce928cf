"""Load the user's gin configs and bindings ('#'-joined on the command line), turning gin's errors into one line."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path

import gin

from src.config.gin_errors import explain
from src.errors import UserError, one_line
from src.run.layout import CODE_ROOT


def split_joined(text: str | None) -> list[str]:
    """'a.gin#b.gin' -> ['a.gin', 'b.gin']; empty parts are dropped."""
    return [part.strip() for part in (text or "").split("#") if part.strip()]


# The packages whose import registers gin configurables: every room (each imports all its files) and the training
# recipe. Named here rather than imported at the top: they import this package themselves (their configs, errors).
CONFIGURABLES = (
    "src.callbacks",
    "src.training.callbacks",
    "src.data",
    "src.loggers",
    "src.models",
    "src.modules",
    "src.searches.optuna_pruning",  # the callback every run of an Optuna search adds (src/searches/optuna_search.py)
    "src.training.profilers",
    "src.training_loop",
)


def register_everything() -> None:
    """Import every package that registers gin configurables, so any config can refer to them."""
    for package in CONFIGURABLES:
        importlib.import_module(package)


def parse(config_files: Sequence[str], bindings: Sequence[str] = ()) -> None:
    """Parse configs then bindings into gin's global config (cleared first)."""
    register_everything()
    for path in config_files:
        if not Path(path).is_file():
            raise UserError(f"Config file {path!r} does not exist.")
    gin.clear_config()
    gin.add_config_file_search_path(str(CODE_ROOT))  # `include 'configs/cnn.gin'` works from any folder
    try:
        for path in config_files:
            try:
                gin.parse_config_file(path)
            except Exception as e:  # gin raises ValueError, SyntaxError, tokenize errors, ...
                raise UserError(f"Bad gin config in {where(e, path)}: {explain(e, getattr(e, 'text', None))}") from e
        for binding in bindings:  # one at a time, to name the one that is wrong
            try:
                gin.parse_config(binding)
            except Exception as e:
                raise UserError(f"Bad gin config in binding {binding!r}: {explain(e, binding)}") from e
    except UserError:
        gin.clear_config()
        raise


def where(error: BaseException, path: str) -> str:
    """'configs/x.gin, line 3' (the file gin names: an included one, if that is where the error is)."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"{error.filename or path}, line {error.lineno}"
    if match := re.search(r'In file "([^"]+)", line (\d+)', str(error)):
        return f"{match[1]}, line {match[2]}"
    return path


def parse_run_config(path: str | Path) -> None:
    """Parse a run folder's stored config.gin into gin's global config (cleared first), after checking that it
    holds only bindings of registered configurables to literal values (src/gin_bindings.check_run_config): a run
    folder received from someone else must never run code when it is loaded, evaluated or resumed."""
    from src.config.bindings import check_run_config, known_configurable

    register_everything()
    path = Path(path)
    text = path.read_text(errors="replace")
    check_run_config(text, path, known_configurable)
    gin.clear_config()
    try:
        gin.parse_config(text)
    except Exception as e:
        gin.clear_config()
        raise UserError(f"Bad gin config in {path}: {one_line(e)}") from e
