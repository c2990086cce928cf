"""`prepare`'s check of a search's bindings, before anything is written: every key must name `training_loop` or a
registered configurable and a parameter it takes (a Trainer flag for training_loop's pass-through), and every value
must be one gin writes and reads back. Imports the training code (src/config.register_everything, a few seconds):
only prepare calls it, never analysis code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from src.errors import UserError


def parse(statement: str) -> None:
    """Parse one binding into a cleared gin config, cleared again after: nothing stays bound."""
    import gin

    gin.clear_config()
    try:
        gin.parse_config(statement)
    finally:
        gin.clear_config()


def check_bindings(search: str, bindings: Iterable[tuple[str, Any]]) -> None:
    """One line naming the first bad binding of search `search` and what would be valid."""
    from src.config import register_everything
    from src.config.bindings import known_configurable
    from src.config.gin_errors import explain, unknown_configurable
    from src.registry import offered, type_problem
    from src.training.lightning_trainer import check_flags, check_values
    from src.training_loop import check_types, own_defaults

    register_everything()
    own = list(own_defaults())
    seen = set()
    for key, value in bindings:
        statement = f"{key} = {value!r}"  # as src/experiment.config_text writes it
        if statement in seen:
            continue
        seen.add(statement)
        configurable, _, parameter = key.rpartition("/")[2].rpartition(".")
        if not configurable:
            continue  # a macro (NAME = value): gin checks its uses when the run starts
        if not known_configurable(configurable):
            raise UserError(f"Search {search!r} binds {key}: {unknown_configurable(configurable)}")
        try:
            parse(f"{key} = None")
        except Exception as e:  # gin's ValueError: no such parameter (or one it may not bind)
            raise UserError(f"Search {search!r} binds {key}: {explain(e, statement)}") from e
        try:
            parse(statement)
        except Exception as e:  # gin's SyntaxError: NaN, a numpy number, an object
            raise UserError(
                f"Search {search!r} binds {key} to {value!r} ({type(value).__name__}), which a gin config cannot "
                "hold: use a Python literal (number, 'string', True/False/None, or a list or tuple of them)."
            ) from e
        try:
            if configurable == "training_loop" and parameter not in own:
                check_flags({parameter: value}, own)  # training_loop passes the others to the Trainer
                check_values({parameter: value})
            elif configurable == "training_loop":
                check_types({parameter: value})
            elif parameter in offered(configurable):
                raise UserError(f"{configurable}.{parameter} is given by {offered(configurable)[parameter]}.")
            elif (problem := type_problem(configurable, parameter, value)) is not None:
                raise UserError(problem)
        except UserError as e:
            raise UserError(f"Search {search!r} binds {key}: {e}") from e
