"""The command lines behind the thin scripts in bin/ (and the console commands of pyproject.toml): argument
parsing and one-line errors (common.py); each module holds the entry points of one part of the template."""
