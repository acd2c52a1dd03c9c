"""The container checks, end to end: a Docker daemon, the PostgreSQL image, the tests.

1. Uses the Docker daemon that answers, else starts a private dockerd (root on
   Linux with docker.io installed; see :mod:`squidie.testing.dockerd`);
2. picks the image: the stock ``postgres`` one where Docker can pull it, else
   the locally built one, built from Debian packages on first use and reused
   afterwards (:mod:`squidie.testing.container_image`);
3. runs every test marked ``containers`` (provider checks, kill -9 and restart,
   the restart-boundary scenario with worker and scheduler processes, pause
   before and resume after a restart), printing the scenario's timeline;
4. stops the private dockerd by its pid and unmounts what it left.

    python -m harness.containers [pytest arguments]

Exit status: pytest's (0 when every check passed), 1 when no daemon or image
could be had.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

from squidie.testing.container_image import IMAGE_ENV_VAR, choose_image
from squidie.testing.dockerd import docker_daemon

ROOT = Path(__file__).resolve().parent.parent


def say(line: str) -> None:
    """One progress line, flushed (nox and CI show it as it happens)."""
    print(f"containers: {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the container checks; see the module doc."""
    args = sys.argv[1:] if argv is None else argv
    began = time.monotonic()
    code = 1
    try:
        with docker_daemon(log=say) as daemon:
            if not daemon.private:
                say(f"using the Docker daemon at {daemon.host or 'the default socket'}")
            client = importlib.import_module("docker").from_env(timeout=120)
            try:
                choice = choose_image(client, log=say)
            finally:
                client.close()
            steps = "".join(f", {what} {seconds:.1f} s" for what, seconds in choice.steps)
            say(
                f"image {choice.image} ({choice.mode}): {choice.how} in "
                f"{choice.seconds:.1f} s{steps}"
            )
            os.environ[IMAGE_ENV_VAR] = choice.mode  # the tests need not probe again
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-m",
                "containers",
                "-s",
                "-q",
                *(args or ["tests"]),
            ]
            say("running " + " ".join(command[2:]))
            checks = time.monotonic()
            code = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), check=False).returncode
            say(f"checks took {time.monotonic() - checks:.0f} s (pytest exit {code})")
    except RuntimeError as exc:
        say(f"FAILED before the checks could run:\n{exc}")
        return 1
    say(f"{'OK' if code == 0 else 'FAILED'} in {time.monotonic() - began:.0f} s wall time")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
