"""A host worker process for the SIGTERM test: the ready loop around execute_next."""

from __future__ import annotations

import sys

import squidie
import tests.support.workflows_core  # noqa: F401  (defines the workflows the runs use)

if __name__ == "__main__":
    sq = squidie.connect(sys.argv[1])
    print("ready", flush=True)
    sq.worker("sigterm-worker", lease_for=30, idle_max=0.1).run()
    print("stopped", flush=True)
