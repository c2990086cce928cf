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
error naming what was on offer; a gin binding of a keyword the run offers (`digits.seed = 5`, `cnn.n_outputs = 3`)
would be silently overridden, so it is a one-line error naming where the value comes from. Each registry says where
its offered keywords come from (`offers`), which the typo message of gin's unknown parameters also uses.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gin

from src.errors import MEMORY_ADVICE, UserError, out_of_memory, unknown

T = TypeVar("T", bound=Callable)

RUN_OFFERS = {  # what a callback or logger is offered
    "run_dir": "the run (SAVE_DIR): remove the binding",
    "metrics": "the module (its declared metrics): remove the binding",
}
_EVERY_ITEM: dict[str, Callable] = {}  # name -> builder, over all registries (gin has one namespace)
_REGISTRY_OF: dict[str, Registry] = {}  # name -> the registry it is in
_ORIGINAL: dict[str, Callable] = {}  # name -> the function or class as written (for its file and line)


class Registry:
    """Maps names to gin-configurable builders. Duplicate names and unknown names are errors.

    `offers`: keyword -> where the value the template offers comes from and what to do instead of binding it
    (`{"seed": "the run (training_loop.seed): bind that instead"}`); `offered_by`: the same for offered keywords not
    listed there (a model's, which the data declares)."""

    def __init__(
        self, kind: str, offers: dict[str, str] | None = None, offered_by: str = "the run: remove the binding"
    ) -> None:
        self.kind = kind
        self.offers = dict(offers or {})
        self.offered_by = offered_by
        self._items: dict[str, Callable] = {}

    def register(self, name: str, *, denylist: tuple[str, ...] = ()) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            if name in _EVERY_ITEM:
                other = _REGISTRY_OF[name].kind
                what = f"{self.kind} {name!r}" if other == self.kind else f"{name!r} (a {other} and a {self.kind})"
                raise UserError(f"{what} is registered twice: {origin(_ORIGINAL[name])} and {origin(fn)}")
            configurable = gin.configurable(name, denylist=list(denylist))(fn)
            self._items[name] = _EVERY_ITEM[name] = configurable
            _REGISTRY_OF[name], _ORIGINAL[name] = self, fn
            return configurable

        return decorator

    def get(self, name: str) -> Callable:
        if not isinstance(name, str) or name not in self._items:
            raise UserError(self.unknown_message(name))
        return self._items[name]

    def build(self, name: str, **offered: Any) -> Any:
        """Call the builder registered as `name` with the offered keywords it accepts (gin binds the rest)."""
        builder = self.get(name)
        passed = accepted(builder, name, offered, self.kind)
        bound = gin.get_bindings(name, resolve_references=False)
        for keyword in passed:
            if keyword in bound:  # gin lets the caller's keyword win: the binding would be silently ignored
                raise UserError(f"{name}.{keyword} is given by {self.offers.get(keyword, self.offered_by)}.")
        check_bound_types(name, _ORIGINAL.get(name, builder), bound)
        return builder(**passed)

    def unknown_message(self, name: object) -> str:
        if reference := next((k for k, v in self._items.items() if v is name), None):  # `model = @mlp`
            return f"Give the {self.kind} by name, in quotes: {reference!r}, not @{reference}."
        return unknown(self.kind, name, sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


SCALAR_NAMES = {int: "an integer", float: "a number", bool: "True or False", str: "a string", type(None): "None"}
SCALARS = tuple(SCALAR_NAMES)


def type_problem(name: str, keyword: str, value: Any) -> str | None:
    """Why binding `name.keyword = value` does not fit the parameter's annotated scalar type, or None."""
    builder = _ORIGINAL.get(name)
    if builder is None:
        return None
    try:
        check_bound_types(name, builder, {keyword: value})
    except UserError as e:
        return str(e)
    return None


def check_bound_types(name: str, builder: Callable, bound: dict[str, Any]) -> None:
    """A gin binding whose value is not of its parameter's annotated scalar type (`supervised.lr = 'a'` for
    `lr: float`) is a one-line error here, not a TypeError from deep inside the run. Annotations that are not plain
    scalars (or their unions) are left to the builder."""
    try:
        hints = typing.get_type_hints(builder.__init__ if inspect.isclass(builder) else builder)
    except Exception:  # an annotation that does not resolve (a TYPE_CHECKING import): nothing to check against
        return
    for keyword, value in bound.items():
        if value is gin.REQUIRED or str(value) == "%gin.REQUIRED":  # the latter: unresolved, as a reference
            raise UserError(still_required(name, keyword))
        if isinstance(value, gin.config.ConfigurableReference):  # a macro (%LR) or a reference: resolved by gin
            continue
        hint = hints.get(keyword)
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if hint is None or not all(o in SCALARS for o in options):
            continue
        if not matches(value, hint):
            raise UserError(f"{name}.{keyword} must be {in_words(hint)}, got {value!r}.")


def still_required(name: str, keyword: str) -> str:
    """The one line for a parameter a config marks `%gin.REQUIRED` (a template config's "fill this in") and no
    later config or binding gave a value."""
    return f"{name}.{keyword} is %gin.REQUIRED in the config: give it a value, e.g. -b '{name}.{keyword} = ...'."


def in_words(hint: Any) -> str:
    """An annotation as an error message says it: 'an integer or None', 'a list'."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    words = [
        SCALAR_NAMES.get(o)
        or ("a list" if typing.get_origin(o) in (Sequence, list, tuple) else inspect.formatannotation(o))
        for o in options
    ]
    return " or ".join(dict.fromkeys(words))


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` is of the annotated type (the few kinds builders and training_loop use; bool is no int, an
    int is a float)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(matches(value, h) for h in typing.get_args(hint))
    if typing.get_origin(hint) in (Sequence, list, tuple):  # of names: each is checked by its registry
        return isinstance(value, (list, tuple))
    if hint is int or hint is float:
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return not isinstance(hint, type) or isinstance(value, hint)


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


def offered(name: str) -> dict[str, str]:
    """The keywords the template offers to the builder registered as `name` that a registry knows in advance (not
    to bind in gin), each with where it comes from; {} for anything else."""
    return _REGISTRY_OF[name].offers if name in _REGISTRY_OF else {}


def shown(path: str | os.PathLike) -> str:
    """A file's path as a user would type it: relative to the working folder where it is below it."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def origin(fn: Callable) -> str:
    """'src/models/cnn.py:40': where a function or class is defined."""
    try:
        file = inspect.getsourcefile(fn) or "?"
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return repr(fn)
    return f"{shown(file)}:{line}"


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of a package, in name order: registering a new model, data set, module or callback is
    dropping its file into the package (src/models/my_net.py), nothing else. A file that cannot be imported is a
    one-line error naming it (every command imports every file)."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        try:
            importlib.import_module(f"{package}.{info.name}")
        except UserError:
            raise
        except Exception as e:
            folder = Path(getattr(info.module_finder, "path", path[0]))
            file = shown(folder / info.name if info.ispkg else folder / f"{info.name}.py")
            message = " ".join(str(e).split()) or type(e).__name__
            if out_of_memory(e):  # the process's memory limit, not the file: torch's libraries did not fit
                why = f"{type(e).__name__}: {message}"
                raise UserError(f"Out of memory while importing {file} ({why}): {MEMORY_ADVICE}.") from e
            raise UserError(
                f"{file} cannot be imported: {type(e).__name__}: {message} (every file in {shown(folder)}/ is "
                "imported at start: fix or remove it)"
            ) from e
