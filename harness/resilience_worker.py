"""One resilience worker process: the ready loop, stopped cleanly by SIGTERM.

A plain ``python -m`` entry point (not multiprocessing) so the harness can
start it with libfaketime preloaded (:func:`faketime_env`), its clock skewed:

    python -m harness.resilience_worker URL OWNER --body-log FILE [--skew 30] \\
        [--define harness.resilience_workflows_v2]

``--skew`` only tells the step bodies how fast this process's clock runs, so
their logged times land on the harness's timeline; the skew itself comes from
libfaketime. ``--define MODULE`` imports a module of workflows beside
:mod:`harness.resilience_workflows` (the deploy: version 2 beside version 1).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import shutil
import subprocess
import sys
import time

LEASE = 3.0
HEARTBEAT = 0.5
SKEW = 30.0


class SkewUnavailable(RuntimeError):
    """libfaketime is missing or does not skew this Python's clock."""


def faketime_env() -> dict[str, str]:
    """Environment that runs a process with libfaketime preloaded, its clock ``SKEW`` s fast.

    The library is found by asking the ``faketime`` wrapper what it preloads; the
    wrapper itself is not used because it forks and would not pass SIGTERM on.
    Only the wall clock is skewed (a faked monotonic clock makes every lock
    timeout wait for decades). Fails, never skips: without libfaketime the skew
    scenario cannot run.
    """
    exe = shutil.which("faketime")
    if exe is None:
        raise SkewUnavailable(
            "faketime (libfaketime) is not installed, and the skewed-worker scenario needs it. "
            "Install it: `apt-get install faketime` (tools/ensure_system_packages.sh does), "
            "or `brew install libfaketime` on macOS."
        )
    shown = subprocess.run(
        [exe, "-f", "+0s", "env"], capture_output=True, text=True, timeout=30
    ).stdout.splitlines()
    preload = {
        k: v
        for k, _, v in (line.partition("=") for line in shown)
        if k in ("LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "DYLD_FORCE_FLAT_NAMESPACE")
    }
    env = {**os.environ, **preload, "FAKETIME": f"+{SKEW:g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    try:
        skew = float(probe.stdout.strip()) - time.time()
    except ValueError:
        skew = float("nan")
    if not abs(skew - SKEW) < 5:
        raise SkewUnavailable(
            f"libfaketime ({preload or 'not found'}) did not skew Python's "
            f"clock by {SKEW:g} s (measured {skew:.1f} s; stderr: "
            f"{probe.stderr.strip()[-300:]!r})"
        )
    return env


def _select_sleep(seconds: float) -> None:
    select.select([], [], [], max(0.0, seconds))


def sleep_without_clock_nanosleep() -> None:
    """Make ``time.sleep`` wait in ``select`` instead.

    Under libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` (without it
    every lock timeout hangs: monotonic deadlines land decades away),
    ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which Python's
    ``time.sleep`` uses, fails with EINVAL. ``select`` and lock timeouts work.
    """
    time.sleep = _select_sleep  # type: ignore[assignment]  # (float only; enough here)


def main(argv: list[str] | None = None) -> int:
    """Run the worker loop until SIGTERM; exit 0 after finishing the current step."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("owner")
    parser.add_argument("--body-log", required=True)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="MODULE",
        help="also import this module's workflows (repeatable)",
    )
    args = parser.parse_args(argv)

    if args.skew:
        sleep_without_clock_nanosleep()
    from harness import resilience_workflows as wf

    for module in args.define:
        importlib.import_module(module)

    # The bodies read these; set before the first step runs.
    os.environ[wf.BODY_LOG_ENV] = args.body_log
    os.environ[wf.OWNER_ENV] = args.owner
    os.environ[wf.SKEW_ENV] = str(args.skew)

    import squidie

    logging.basicConfig(level=logging.CRITICAL)
    sq = squidie.connect(args.url)
    sq.worker(
        args.owner,
        lease_for=LEASE,
        heartbeat_interval=HEARTBEAT,
        idle_max=0.2,
        on_error=lambda exc: None,
    ).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
