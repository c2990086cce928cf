"""User-facing errors: one clear line, no traceback (unless --debug)."""


class UserError(Exception):
    """A mistake in the user's input (name, config, path, data) that has a one-line explanation."""

    exit_code = 2


class RunInUse(UserError):
    """Another process trains in the run folder. Not a failure of that run: the runners (batch.sh, run_local,
    run_slurm) see the exit code and leave the folder alone."""

    exit_code = 75  # EX_TEMPFAIL
