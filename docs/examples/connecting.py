"""Three ways to connect: the SQLite default, a URL (PostgreSQL), the host app's Engine.

Run from the repository root:  python docs/examples/connecting.py
"""

import os
import tempfile

from sqlalchemy import create_engine

import squidie

workdir = tempfile.mkdtemp()
os.chdir(workdir)                       # the default file is created in the working directory
os.environ.pop("SQUIDIE_DATABASE_URL", None)

# 1. No argument: $SQUIDIE_DATABASE_URL, else the embedded file ./squidie.sqlite3
sq = squidie.connect()
sq.install()
sq.install()                            # idempotent
assert os.path.exists(os.path.join(workdir, "squidie.sqlite3"))

# 2. The environment variable (what `squidie install` and your workers read too)
os.environ["SQUIDIE_DATABASE_URL"] = f"sqlite:///{workdir}/from-env.sqlite3"
squidie.connect().install()
assert os.path.exists(os.path.join(workdir, "from-env.sqlite3"))
del os.environ["SQUIDIE_DATABASE_URL"]

# 3. The host app's own SQLAlchemy Engine (Squidie applies its SQLite settings to it)
engine = create_engine(f"sqlite:///{workdir}/host.sqlite3")
sq = squidie.connect(engine=engine, queue="billing")
sq.install()
assert sq.queue == "billing"

# Module-level functions (typed forwarders of the Squidie methods) act on a default instance.
squidie.configure(f"sqlite:///{workdir}/default.sqlite3")
squidie.install()
assert squidie.list_runs() == []

# Bad settings raise ConfigError listing every problem.
try:
    squidie.connect("sqlite:///x.db", engine=engine, queue="")
except squidie.ConfigError as exc:
    print(exc.code, exc.problems)

# 4. PostgreSQL: a SQLAlchemy URL. postgresql:// and postgres:// are mapped to psycopg 3,
#    which the postgres extra installs:  pip install -e '.[postgres]'
#    Here we borrow a throwaway server from the test helpers; in production you pass your own URL.
try:
    import psycopg  # noqa: F401
except ModuleNotFoundError:
    print("skipped the PostgreSQL part: pip install -e '.[postgres]' adds the psycopg 3 driver")
else:
    from squidie.testing.postgres import provide_postgres

    try:
        with provide_postgres() as server:
            url = server.create_database("squidie_docs_example")
            try:
                pg = squidie.connect(url)          # e.g. "postgresql+psycopg://app@db/app"
                pg.install()
                print("PostgreSQL ok:", pg.list_runs() == [])
            finally:
                server.drop_database("squidie_docs_example")
    except RuntimeError as exc:                 # no PostgreSQL on this machine
        print("skipped the PostgreSQL part:", str(exc).splitlines()[0])
print("ok")
