"""Where the example host app finds its database."""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

ENV_VAR = "MINIMAL_HOST_APP_DATABASE_URL"
JOB_QUEUE = "squidie"  # the procrastinate queue that carries cron payloads


def database_url(explicit: str | None = None) -> str:
    """The SQLAlchemy URL: the argument, ``$MINIMAL_HOST_APP_DATABASE_URL``,
    then ``$SQUIDIE_DATABASE_URL``."""
    url = explicit or os.environ.get(ENV_VAR) or os.environ.get("SQUIDIE_DATABASE_URL")
    if not url:
        raise SystemExit(f"set {ENV_VAR} (a postgresql+psycopg:// URL) or pass --database-url")
    return url


def libpq_url(url: str) -> str:
    """The same database as a libpq conninfo URL, for procrastinate (psycopg 3)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"procrastinate needs PostgreSQL, got {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
