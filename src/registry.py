"""One small registry mechanism for everything chosen by name (models, data, modules, callbacks, loggers, profilers).

    MODELS = Registry("model")

    @MODELS.register("cnn")
    def cnn(input_shape, n_outputs, width=32): ...

    MODELS.get("cnn")                                       # -> the gin-configurable callable
    MODELS.build("cnn", input_shape=(1, 8, 8), n_outputs=10, seed=0)   # passes only what cnn accepts

Registering makes the item gin-configurable under its registry name (`cnn.width = 64` works in a config), so every
registered name must be unique across all registries (gin has one namespace).

`build` is how the template calls every builder: it offers everything it knows (the data's declared keywords to a
model, the run folder and the module's main metric to a callback) and passes only the keywords the builder's
signature names. A builder that requires a keyword nobody offers, and that gin does not bind either, is a one-line
error naming what was on offer.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import gin

from src.errors import UserError

T = TypeVar("T", bound=Callable)

_EVERY_ITEM: dict[str, Callable] = {}  # name -> builder, over all registries (gin has one namespace)


class Registry:
    """Maps names to gin-configurable builders. Duplicate names and unknown names are errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str, *, denylist: tuple[str, ...] = ()) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._items[name]!r})")
            configurable = gin.configurable(name, denylist=list(denylist))(fn)
            self._items[name] = _EVERY_ITEM[name] = configurable
            return configurable

        return decorator

    def get(self, name: str) -> Callable:
        if not isinstance(name, str) or name not in self._items:
            raise UserError(self.unknown_message(name))
        return self._items[name]

    def build(self, name: str, **offered: Any) -> Any:
        """Call the builder registered as `name` with the offered keywords it accepts (gin binds the rest)."""
        builder = self.get(name)
        return builder(**accepted(builder, name, offered, self.kind))

    def unknown_message(self, name: object) -> str:
        if reference := next((k for k, v in self._items.items() if v is name), None):  # `model = @mlp`
            return f"Give the {self.kind} by name, in quotes: {reference!r}, not @{reference}."
        valid = ", ".join(sorted(self._items))
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Valid {self.kind} names: {valid}."

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def parameters(builder: Callable) -> dict[str, inspect.Parameter]:
    """The builder's parameters (a class: its __init__'s, without self)."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    found = dict(inspect.signature(target).parameters)
    found.pop("self", None)
    return found


def accepted(builder: Callable, name: str, offered: dict[str, Any], kind: str = "item") -> dict[str, Any]:
    """The offered keywords the builder's signature names (all of them if it takes **kwargs); a required parameter
    that is neither offered nor bound in gin is a UserError."""
    params = parameters(builder)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(offered)
    bound = gin.get_bindings(name) if name in _EVERY_ITEM else {}
    missing = [
        p
        for p, spec in params.items()
        if spec.default is inspect.Parameter.empty
        and spec.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p not in offered
        and p not in bound
    ]
    if missing:
        on_offer = ", ".join(sorted(offered)) or "nothing"
        raise UserError(
            f"The {kind} {name!r} needs {', '.join(map(repr, missing))}, which nothing provides "
            f"(on offer: {on_offer}; or bind it in gin, e.g. {name}.{missing[0]} = ...)."
        )
    return {k: v for k, v in offered.items() if k in params}


def registered(name: str) -> Callable | None:
    """The builder registered under `name` in any registry, or None."""
    return _EVERY_ITEM.get(name)


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of a package, in name order: registering a new model, data set, module or callback is
    dropping its file into the package (src/models/my_net.py), nothing else."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        importlib.import_module(f"{package}.{info.name}")
