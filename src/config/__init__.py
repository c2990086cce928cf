"""Load the user's gin configs and bindings ('#'-joined on the command line), turning gin's errors into one line."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path

import gin

from src.config.gin_errors import explain
from src.errors import UserError, one_line
from src.run import reading
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
        refuse_circular_macros()
    except UserError:
        gin.clear_config()
        raise


def refuse_circular_macros() -> None:
    """One line for macros that refer to each other in a circle (`a = %b`, `b = %a`): gin would recurse until Python
    gives up, with a RecursionError naming nothing, when the run starts."""
    from gin import config as gin_config

    refers: dict[str, list[str]] = {}
    for (scope, selector), values in gin_config._CONFIG.items():  # gin keeps macros as scoped gin.macro bindings
        if selector == "gin.macro" and scope:
            refers[scope] = [name for value in values.values() for name in macro_references(value)]
    cleared: set[str] = set()  # macros whose references end without a circle

    def circle_from(path: list[str]) -> list[str] | None:
        for following in refers.get(path[-1], []):
            if following in path:
                return path[path.index(following) :] + [following]
            if following in refers and following not in cleared and (found := circle_from([*path, following])):
                return found
        cleared.add(path[-1])
        return None

    for start in refers:
        if (circle := circle_from([start])) is not None:
            shown = ", ".join(f"{a} = %{b}" for a, b in zip(circle, circle[1:], strict=False))
            raise UserError(f"The config's macros refer to each other in a circle ({shown}): give one a value.")


def macro_references(value: object) -> list[str]:
    """The names of the macros a bound value refers to (`%b`, also inside lists, tuples and dicts)."""
    from gin import config as gin_config

    if isinstance(value, gin_config.ConfigurableReference):
        selector = value._scoped_selector  # 'b/gin.macro' for %b
        return [selector.removesuffix("/gin.macro")] if selector.endswith("/gin.macro") else []
    if isinstance(value, (list, tuple, set)):
        return [name for item in value for name in macro_references(item)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in macro_references(item)]
    return []


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
    try:
        text = reading.read_bytes(path).decode(errors="replace")  # received: a regular file of bounded size
    except (OSError, ValueError) as e:
        raise UserError(f"Cannot read {path}: {one_line(e)}") from e
    check_run_config(text, path, known_configurable)
    gin.clear_config()
    try:
        gin.parse_config(text)
    except Exception as e:
        gin.clear_config()
        raise UserError(f"Bad gin config in {path}: {one_line(e)}") from e
