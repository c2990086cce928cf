"""User-facing errors: one clear line, no traceback (unless --debug)."""

from collections.abc import Iterable

GIN_CALL_CONTEXT = "  In call to configurable"  # a line gin appends to errors raised inside configurables


class UserError(Exception):
    """A mistake in the user's input (name, config, path, data) that has a one-line explanation."""

    exit_code = 2


class RunInUse(UserError):
    """Another process trains in the run folder. Not a failure of that run: the runners (batch.sh, run_local,
    run_slurm) see the exit code and leave the folder alone."""

    exit_code = 75  # EX_TEMPFAIL


def one_line(error: BaseException | str, sep: str = " ") -> str:
    """An error's message (a KeyError's without its quotes), or a tool's output, on one line; the context lines gin
    appends to errors raised inside configurables (`  In call to configurable ...`) are dropped, its `  In file ...,
    line N` lines kept."""
    text = (
        error if isinstance(error, str) else str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    )
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(GIN_CALL_CONTEXT)]
    return sep.join(lines) or (type(error).__name__ if not isinstance(error, str) else "")


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """` Did you mean 'x'?` for the valid name closest to a misspelt one, or nothing: every "Unknown ..." error."""
    import difflib

    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
