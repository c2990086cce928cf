"""User-facing errors: one clear line, no traceback (unless --debug)."""


class UserError(Exception):
    """A mistake in the user's input (name, config, path, data) that has a one-line explanation."""
