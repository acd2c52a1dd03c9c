#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, postgres) are on this machine,
# so tests can start a throwaway cluster (squidie/testing/postgres.py).
# Never fails: without binaries the PostgreSQL tests fail loudly with instructions,
# or use testcontainers / SQUIDIE_TEST_DATABASE_URL.
set -euo pipefail

if [[ -n "${SQUIDIE_TEST_DATABASE_URL:-}" ]]; then
  echo "ensure_postgres_binaries: SQUIDIE_TEST_DATABASE_URL is set; using that server."
  exit 0
fi

has_initdb() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/postgres" ]]; then return 0; fi
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/initdb" && -x "$dir/postgres" ]]; then return 0; fi
  done
  command -v initdb >/dev/null 2>&1
}

if has_initdb; then
  exit 0
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_postgres_binaries: installing PostgreSQL server binaries with apt-get..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  exit 0
fi

cat >&2 <<'MSG'
ensure_postgres_binaries: no PostgreSQL server binaries (initdb, postgres) found.
Tests that need PostgreSQL will fail unless one of these is true:
  * the binaries are installed: Debian/Ubuntu `sudo apt-get install postgresql`,
    Fedora `sudo dnf install postgresql-server`, macOS `brew install postgresql@16`;
  * a Docker daemon is running (testcontainers starts postgres:16-alpine);
  * SQUIDIE_TEST_DATABASE_URL points at a server you may create databases on.
MSG
exit 0
