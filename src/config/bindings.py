"""Read a gin config text into a flat dict `{"scope/configurable.param": value}` with gin's own parser.

Handles scopes, macros (resolved to their values), multi-line values and configurable references
(`@cnn` -> "@cnn", `@cnn()` -> "@cnn()"). Needs no configurable to be registered: analysis code uses it
without importing any training code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gin import config_parser

from src.errors import UserError

_KEY = re.compile(r"[A-Za-z_][\w./]*\.[A-Za-z_]\w*")  # [scope/]configurable.param, no macros
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?")
_PLAIN_STRING = re.compile(r"'[^'\\\n]*'|\"[^\"\\\n]*\"")  # quoted, no escapes: the text between the quotes
_CONSTANTS = {"True": True, "False": False, "None": None}
INCLUDE = re.compile(r"""^\s*include\s+(['"])(?P<path>.+?)\1\s*(#.*)?$""", re.MULTILINE)  # a gin `include` line


class _Macro:
    def __init__(self, name: str):
        self.name = name


class _Delegate(config_parser.ParserDelegate):
    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> str:
        return f"@{scoped_configurable_name}" + ("()" if evaluate else "")

    def macro(self, macro_name: str) -> _Macro:
        return _Macro(macro_name)


class _Recorder(_Delegate):
    """Records the configurables that values refer to (`@name`, `@name()`), statement by statement."""

    def __init__(self) -> None:
        self.references: list[str] = []

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> str:
        self.references.append(scoped_configurable_name.rsplit("/", 1)[-1])
        return super().configurable_reference(scoped_configurable_name, evaluate)


def check_run_config(
    text: str, path: str | Path, known: Callable[[str], bool], remedy: str = "restore it from where the run came from"
) -> None:
    """Refuse a stored config.gin that could run code when gin reads it: only `[scope/]configurable.param = value`
    bindings of `known` configurables and macros `NAME = value` are allowed, values being Python literals and macros
    (`%NAME`). `import`, `from __gin__ import ...` and `include` lines, and references (`@os.system()`, and `@name`
    or `@name()` of a registered configurable too: gin would call it while reading, and some have side effects,
    e.g. a tracker's client) are a one-line UserError naming the file and line. The template never writes references:
    models, data, modules, callbacks and loggers are chosen by name. Run folders are shared (rsync, archives): a
    received one must never run code when read."""
    recorder = _Recorder()
    parser = config_parser.ConfigParser(text, recorder)
    while True:
        recorder.references.clear()
        try:
            statement = next(parser)
        except StopIteration:
            return
        except Exception as e:  # gin's SyntaxError/ValueError, tokenize errors
            line = getattr(e, "lineno", None)
            where = f"{path}, line {line}" if line else str(path)
            reason = " ".join(str(e).split())
            raise UserError(f"{where}: unreadable gin config ({reason[:200]}); {remedy}.") from e
        line = statement.location.line_num
        problem = None
        if isinstance(statement, config_parser.ImportStatement):
            problem = f"an import ({statement.location.line_content.strip()!r})"
        elif isinstance(statement, config_parser.IncludeStatement):
            problem = f"an include ({statement.filename!r})"
        elif not isinstance(statement, config_parser.BindingStatement):
            problem = "not a binding"
        elif statement.arg_name and not known(statement.selector):
            problem = (
                f"a binding of {statement.selector!r}, which is not a registered configurable (if it is yours, is its "
                "file missing from src/?)"
            )
        elif recorder.references:
            problem = f"a reference to @{recorder.references[0]} (gin would call it while reading)"
        if problem:
            raise UserError(
                f"{path}, line {line}: refused to read {problem}: a run folder's config holds only bindings of "
                f"registered configurables to literal values (reading it must never run code); {remedy}."
            )


def known_configurable(name: str) -> bool:
    """A configurable a run's config may bind or refer to: training_loop and every registered name (registered once
    the training code is imported: src/config.register_everything)."""
    from src.registry import registered

    return name == "training_loop" or registered(name) is not None


def _resolve(value: Any, macros: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(value, _Macro):
        if value.name not in macros or depth > 20:
            return f"%{value.name}"
        return _resolve(macros[value.name], macros, depth + 1)
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, macros, depth) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, macros, depth) for k, v in value.items()}
    return value


def parse_bindings(text: str) -> dict[str, Any]:
    """Every binding of a gin config text; macros appear under their own name and are substituted in values.

    Raises ValueError/SyntaxError for malformed text.
    """
    fast = _parse_literal_bindings(text)
    return fast if fast is not None else _parse_with_gin(text)


def _statements(text: str) -> list[str]:
    """Statements of a config text: a line not indented, with the indented lines that continue it."""
    statements: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and statements:
            statements[-1] += "\n" + line
        else:
            statements.append(line)
    return statements


def _parse_literal_bindings(text: str) -> dict[str, Any] | None:
    """The common case, 50x faster than gin's tokenizer: every statement is `configurable.param = <Python literal>`
    (what gin writes in config.gin unless macros or references are used). None means: use gin's parser."""
    found: dict[str, Any] = {}
    for statement in _statements(text):
        key, sep, value = statement.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            return None
        try:
            found[key] = _literal(value.strip().removeprefix("\\").strip())  # gin writes `key = \` + value
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return found


def _literal(text: str) -> Any:
    """ast.literal_eval(text), with the scalars that make up most configs read 5-10x faster."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _PLAIN_STRING.fullmatch(text):
        return text[1:-1]
    return ast.literal_eval(text)


def _parse_with_gin(text: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    macros: dict[str, Any] = {}
    for statement in config_parser.ConfigParser(text, _Delegate()):
        if not isinstance(statement, config_parser.BindingStatement):
            continue  # imports and includes carry no values
        selector = f"{statement.scope}/{statement.selector}" if statement.scope else statement.selector
        if statement.arg_name:
            raw[f"{selector}.{statement.arg_name}"] = statement.value
        else:
            raw[selector] = macros[selector] = statement.value
    return {key: _resolve(value, macros) for key, value in raw.items()}


def scalar_hparams(bindings: dict[str, Any]) -> dict[str, Any]:
    """The bindings as tracker-friendly scalars (lists and dicts become their repr)."""
    return {k: v if isinstance(v, (int, float, str, bool)) or v is None else repr(v) for k, v in bindings.items()}


def included_text(path: Path, depth: int = 0) -> str:
    """A gin file's text with its `include` lines replaced by the included files (gin's search path: the file's
    folder, the repository root); an include that is not found, or nested over 20 deep, becomes an empty line."""
    from src.run.layout import CODE_ROOT

    lines = []
    for line in Path(path).read_text().splitlines():
        match = INCLUDE.fullmatch(line)
        if match and depth < 20:
            places = (Path(path).parent / match["path"], CODE_ROOT / match["path"])
            target = next((p for p in places if p.is_file()), None)
            lines.append(included_text(target, depth + 1) if target else "")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def same_kind(value: Any) -> Any:
    """A value with its lists as tuples: gin takes either for a sequence (`['a']` and the default `('a',)`)."""
    if isinstance(value, (list, tuple)):
        return tuple(same_kind(v) for v in value)
    if isinstance(value, dict):
        return {k: same_kind(v) for k, v in value.items()}
    return value
