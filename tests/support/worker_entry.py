"""A host worker process: the ready loop around execute_next, until SIGTERM.

    python -m tests.support.worker_entry URL [IDLE_SECONDS]

``IDLE_SECONDS`` fixes the idle back-off (both ends): a long one shows whether
something other than polling wakes the worker.
"""

from __future__ import annotations

import sys

import squidie
import tests.support.workflows_core  # noqa: F401  (defines the workflows the runs use)

if __name__ == "__main__":
    sq = squidie.connect(sys.argv[1])
    idle = {"idle_min": float(sys.argv[2]), "idle_max": float(sys.argv[2])} if sys.argv[2:] else {}
    print("ready", flush=True)
    sq.worker("sigterm-worker", lease_for=30, **{"idle_max": 0.1, **idle}).run()
    print("stopped", flush=True)
