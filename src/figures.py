"""What every figure the template writes shares: the matplotlib backend (files only, or also inline in iTerm2 with
the optional itermplot). Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import os
import sys


def select_backend() -> bool:
    """Whether figures are also shown inline: MPLBACKEND names itermplot (an optional display backend, the `iterm`
    extra) and it is installed. Otherwise they are only written (Agg), with a warning if itermplot was asked for."""
    import matplotlib

    inline = "itermplot" in os.environ.get("MPLBACKEND", "")
    if inline:
        try:
            import itermplot  # noqa: F401
        except ImportError:
            print(
                "warning: MPLBACKEND names itermplot, which is not installed (pip install -e '.[iterm]'): the plots "
                "are written to files only",
                file=sys.stderr,
            )
            inline = False
    if not inline:
        matplotlib.use("Agg")
    return inline
