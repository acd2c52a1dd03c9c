#!/usr/bin/env bash
# Make sure the system packages the test suite uses are on this machine:
# - Graphviz's `dot`, which renders run graphs as SVG;
# - the PostgreSQL server binaries (initdb, postgres), so tests can start a
#   throwaway cluster (squidie/testing/postgres.py);
# - libfaketime's `faketime`, which runs a worker process with a skewed wall
#   clock (tests/processes/test_clock_skew.py);
# - Chromium, the headless browser the dashboard's browser tests drive through
#   Playwright (tests/host_app/test_dashboard_browser.py; never `playwright install`).
# - with --containers: Docker's daemon (docker.io) and debootstrap, for PostgreSQL
#   in containers (`nox -s containers`; squidie/testing/dockerd.py starts a
#   private dockerd, squidie/testing/container_image.py builds the image).
# Never fails: without them the tests that need them fail loudly with instructions.
set -euo pipefail

containers=0
if [[ "${1:-}" == "--containers" ]]; then containers=1; fi

apt_install() {
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_system_packages: installing $* with apt-get..."
    if [[ -z "${_APT_UPDATED:-}" ]]; then apt-get update -qq; _APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    return 0
  fi
  return 1
}

if ! command -v dot >/dev/null 2>&1; then
  apt_install graphviz || echo "ensure_system_packages: install Graphviz (dot) for SVG graphs" >&2
fi

if ! command -v faketime >/dev/null 2>&1; then
  apt_install faketime || echo "ensure_system_packages: install faketime (libfaketime) for the clock-skew tests" >&2
fi

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  apt_install chromium || echo "ensure_system_packages: install Chromium (apt-get install chromium) for the dashboard's browser tests" >&2
fi

if [[ "$containers" == 1 ]]; then
  missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if (( ${#missing[@]} )); then
    # No recommends: the private daemon needs neither AppArmor profiles nor git.
    apt_install --no-install-recommends "${missing[@]}" \
      || echo "ensure_system_packages: install ${missing[*]} for the container checks (or run a Docker daemon that can pull postgres:16-alpine)" >&2
  fi
fi

if [[ -n "${SQUIDIE_TEST_DATABASE_URL:-}" ]]; then
  echo "ensure_system_packages: SQUIDIE_TEST_DATABASE_URL is set; using that server."
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

if apt_install postgresql; then
  exit 0
fi

cat >&2 <<'MSG'
ensure_system_packages: no PostgreSQL server binaries (initdb, postgres) found.
Tests that need PostgreSQL will fail unless one of these is true:
  * the binaries are installed: Debian/Ubuntu `sudo apt-get install postgresql`,
    Fedora `sudo dnf install postgresql-server`, macOS `brew install postgresql@16`;
  * a Docker daemon is running (testcontainers starts postgres:16-alpine);
  * SQUIDIE_TEST_DATABASE_URL points at a server you may create databases on.
MSG
exit 0
