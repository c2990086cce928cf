"""One small registry mechanism for everything chosen by name (models, data, callbacks, loggers, modules).

    MODELS = Registry("model")

    @MODELS.register("cnn")
    def cnn(input_shape, n_classes, width=32): ...

    MODELS.get("cnn")     # -> the gin-configurable callable; `cnn.width = 64` works in a config

Registering makes the item gin-configurable under its registry name, so every registered name must be
unique across all registries (gin has one namespace).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

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
        if name not in self._items:
            raise UserError(self.unknown_message(name))
        return self._items[name]

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


def registered(name: str) -> Callable | None:
    """The builder registered under `name` in any registry, or None."""
    return _EVERY_ITEM.get(name)
