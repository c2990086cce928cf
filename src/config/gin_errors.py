"""gin's errors for a typo, rewritten as one line that says what would be valid.

gin reports an unknown parameter without the valid ones, and an unquoted string as
`malformed node or string ... <ast.Name object at 0x7f...>`; an undefined macro only fails when the run starts,
as a TypeError of gin's own `macro`. Anything not recognised here keeps gin's text, on one line.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import gin

from src.errors import did_you_mean

_UNKNOWN_PARAMETER = re.compile(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'")
_UNKNOWN_CONFIGURABLE = re.compile(r"No configurable matching (?:reference )?'@?([^'()]+)")
_UNQUOTED = re.compile(r"malformed node or string.*Failed to parse token '([A-Za-z_]\w*)'", re.DOTALL)
_GIN_CONTEXT = re.compile(r"^\s*(In file |In bindings string|In call to configurable)")
_MACRO_SCOPE = re.compile(r"In call to configurable 'macro' \(.*\) in scope '([^']+)'")


def without_context(error: BaseException) -> str:
    """gin's message without the context lines it appends ('In file ..., line N' and the statement)."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _GIN_CONTEXT.match(line):
            lines = lines[:i]  # the rest repeats the statement, which the caller names
            break
    return " ".join(line.strip() for line in lines if line.strip()) or type(error).__name__


def explain(error: BaseException, statement: str | None = None) -> str:
    """One line for an error gin raised while parsing `statement` (the failing binding or config line, if known)."""
    text = str(error)
    if match := _UNKNOWN_PARAMETER.search(text):
        return unknown_parameter(match[1], match[2])
    if match := _UNKNOWN_CONFIGURABLE.search(text):
        return unknown_configurable(match[1])
    if isinstance(error, SyntaxError) and (match := _UNQUOTED.search(text)):
        fixed = quote_words(statement) if statement and "=" in statement else None
        word = match[1]
        return f"{word} is not quoted: write {fixed.strip() if fixed else repr(word)} (strings need quotes)."
    return without_context(error)


def call_error(error: BaseException) -> str | None:
    """One line for a gin error that only shows when the configurables are called, or None."""
    if isinstance(error, TypeError) and (match := _MACRO_SCOPE.search(str(error))):
        name = match[1]
        return f"Macro %{name} is used but never defined: add a line `{name} = <value>` to a config or a binding."
    return None


def quote_words(statement: str) -> str | None:
    """`a.b = [x, 'y', z.w]` -> `a.b = ['x', 'y', 'z.w']`: every bare word of the value quoted, or None if none."""
    key, _, value = statement.partition("=")
    found = False

    def quote(match: re.Match) -> str:
        nonlocal found
        if match[1] is None or match[1] in ("True", "False", "None"):
            return match[0]
        found = True
        return repr(match[1])

    # strings, references and macros are kept; an unquoted word is a name and what follows it up to , ] ) or space
    quoted = re.sub(r"'[^']*'|\"[^\"]*\"|[@%][\w./]+|\b\d[\w.+\-]*|([A-Za-z_][\w.\-/]*)(?![\w(])", quote, value)
    return f"{key}={quoted}" if found else None


def _configurables() -> dict[str, object]:
    """Short name -> gin's record of every configurable (gin keeps no public list; its registry is pinned with gin)."""
    registry = gin.config._REGISTRY
    return {
        registry.minimal_selector(selector): c for selector, c in registry.items() if c.module != "gin"
    }  # not gin.macro & co


def parameters(configurable: Any) -> list[str]:
    """The parameters gin lets a config bind on a configurable: its signature less denylisted (or not allowed)."""
    try:
        signature = inspect.signature(configurable.wrapped)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in signature.parameters.values() if p.kind in kinds and p.name != "self"]
    return [n for n in names if n not in (configurable.denylist or ()) and n in (configurable.allowlist or names)]


def unknown_parameter(selector: str, name: str) -> str:
    configurables = _configurables()
    short = gin.config._REGISTRY.minimal_selector(selector) if selector in gin.config._REGISTRY else selector
    from src.registry import offered

    given = offered(short)  # the run supplies these: binding them is an error of its own
    valid = [p for p in parameters(configurables[short]) if p not in given] if short in configurables else []
    if not valid:
        return f"{short} has no parameter {name!r}."
    hint = did_you_mean(name, valid)
    not_bindable = [p for p in parameters(configurables[short]) if p in given]
    aside = f" (given by the run, not bound in gin: {', '.join(not_bindable)})" if not_bindable else ""
    return f"{short} has no parameter {name!r}.{hint} Valid parameters of {short}: {', '.join(valid)}{aside}."


def unknown_configurable(name: str) -> str:
    valid = sorted(_configurables())
    short = name.rpartition("/")[2]
    hint = did_you_mean(short, valid)
    return f"Nothing configurable is named {short!r}.{hint} Configurable names: {', '.join(valid)}."
