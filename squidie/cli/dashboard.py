"""``squidie dashboard``: serve the web dashboard alone.

Its options and server live in :mod:`squidie.dashboard.serve`, which imports no web
package until the command runs, so ``squidie --help`` works without ``squidie[web]``.
"""

from __future__ import annotations

from typing import Any

from squidie.api.connecting import ENV_URL


def register(sub: Any) -> None:
    """Add ``squidie dashboard``."""
    from squidie.dashboard import serve

    parser = serve.add_parser(sub, f"SQLAlchemy URL (default: ${ENV_URL}, else ./squidie.sqlite3)")
    parser.set_defaults(handler=serve.run)
