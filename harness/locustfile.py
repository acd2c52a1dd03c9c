"""Locust scenario for ``python -m harness.load``: mixed traffic against the example
host app's web API (examples/minimal_host_app/web.py).

Each simulated user starts quick, retrying (and a few permanently failing),
approval-gated and irreversible runs; replays completed runs; cancels runs in
flight; decides approvals (twice with one Idempotency-Key); and polls
inspect/explain/graph/list. Answers a well-behaved API gives on purpose (409 for
cancelling a run that already ended, ``unsafe_replay`` past an irreversible step)
count as successes; anything else unexpected is a locust failure.

Every run a user starts, and every decision that changes how it should end, is
written to the JSON-lines ledger ``$LOAD_LEDGER``; the harness checks the
database against it after the load.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import deque
from typing import Any

from locust import HttpUser, between, task

LEDGER_PATH = os.environ.get("LOAD_LEDGER", "harness/out/load_ledger.jsonl")
OPERATOR = {"X-Role": "operator", "X-Actor": "locust"}
EXTERNAL = {"X-Role": "external", "X-Actor": "shopper"}
_ledger = open(LEDGER_PATH, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives with the process)


def record(event: str, run_id: str, **fields: Any) -> None:
    """Append one ledger line (gevent runs users in one thread, so lines never interleave)."""
    _ledger.write(json.dumps({"event": event, "run_id": run_id, **fields}) + "\n")


class HostAppUser(HttpUser):
    """One client of the host app."""

    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        """Per-user memory of the runs it started."""
        self.tag = uuid.uuid4().hex[:8]
        self.seq = 0
        self.mine: deque[tuple[str, str]] = deque(maxlen=100)  # (run_id, workflow)
        self.replayable: deque[str] = deque(maxlen=50)
        self.irreversible: deque[str] = deque(maxlen=20)
        self.approvals: deque[str] = deque()

    # -- helpers ---------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.tag}-{self.seq}"

    def _call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        expected: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        key: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """One request; statuses in ``expected`` are successes. Returns (status, json)."""
        sent = dict(headers or OPERATOR)
        if key is not None:
            sent["Idempotency-Key"] = key
        with self.client.request(
            method, path, name=name, headers=sent, json=body, catch_response=True
        ) as response:
            try:
                data = response.json()
            except ValueError:
                data = None
            if response.status_code in expected:
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:300]}")
            return response.status_code, data

    def _start(
        self,
        workflow: str,
        payload: dict[str, Any],
        expect: str,
        *,
        key: str | None = None,
        **extra: Any,
    ) -> str | None:
        status, data = self._call(
            "POST",
            "/runs",
            "POST /runs",
            expected=(201,),
            headers=EXTERNAL,
            key=key,
            body={"workflow": workflow, "payload": payload},
        )
        if status != 201:
            return None
        run_id = str(data["run_id"])
        record("start", run_id, workflow=workflow, expect=expect, payload=payload, **extra)
        self.mine.append((run_id, workflow))
        return run_id

    # -- starting runs ---------------------------------------------------------------

    @task(6)
    def start_quick_order(self) -> None:
        """A run that succeeds; one in five is sent twice with one Idempotency-Key."""
        payload = {"order_id": self._id("o"), "amount": random.randint(1, 500)}
        if random.random() >= 0.2:
            self._start("quick_order", payload, "completed")
            return
        key = self._id("start")
        first = self._start("quick_order", payload, "completed", key=key)
        _, again = self._call(
            "POST",
            "/runs",
            "POST /runs",
            expected=(201,),
            headers=EXTERNAL,
            key=key,
            body={"workflow": "quick_order", "payload": payload},
        )
        if first is not None and again is not None and again.get("run_id") != first:
            record(
                "violation",
                first,
                what="idempotent start made a second run",
                second=again.get("run_id"),
            )

    @task(3)
    def start_flaky_payment(self) -> None:
        """Fails once then succeeds on retry; one in ten fails past its retries."""
        failures = 9 if random.random() < 0.1 else 1
        self._start(
            "flaky_payment",
            {"customer": self._id("c"), "failures": failures},
            "failed" if failures >= 3 else "completed",
            failures=failures,
        )

    @task(2)
    def start_expense_approval(self) -> None:
        """A run that waits for a human decision (see ``decide_approval``)."""
        run_id = self._start(
            "expense_approval",
            {"employee": self._id("e"), "amount": random.randint(1, 900)},
            "paused",
        )
        if run_id is not None:
            self.approvals.append(run_id)

    @task(1)
    def start_ship_parcel(self) -> None:
        """A run with an irreversible step; replaying it later must be refused."""
        run_id = self._start("ship_parcel", {"parcel_id": self._id("p")}, "completed")
        if run_id is not None:
            self.irreversible.append(run_id)

    # -- controls --------------------------------------------------------------------

    @task(2)
    def decide_approval(self) -> None:
        """Approve (twice, one key), reject or cancel the oldest waiting approval."""
        if not self.approvals:
            return
        run_id = self.approvals.popleft()
        roll = random.random()
        kind, expect = (
            ("approve", "completed")
            if roll < 0.7
            else ("reject", "failed")
            if roll < 0.9
            else ("cancel", "cancelled")
        )
        key = f"{kind}-{run_id}"
        path = f"/runs/{run_id}/{kind}"
        body = {"comment": "load test", "metadata": {"user": self.tag}}
        status, _ = self._call(
            "POST", path, f"POST /runs/{{id}}/{kind}", expected=(200, 409), key=key, body=body
        )
        if status == 409:  # not paused at the gate yet: try again later
            self.approvals.append(run_id)
            return
        if status != 200:
            return
        record("expect", run_id, expect=expect, via=kind, key=key)
        if kind == "approve":  # a client retry: the same answer, no second receipt
            self._call("POST", path, "POST /runs/{id}/approve", key=key, body=body)

    @task(2)
    def cancel_in_flight(self) -> None:
        """Start a slow run and cancel it at once: cancelled, or 409 when it already ended."""
        run_id = self._start(
            "quick_order", {"order_id": self._id("slow"), "work_ms": 300}, "completed"
        )
        if run_id is None:
            return
        status, _ = self._call(
            "POST",
            f"/runs/{run_id}/cancel",
            "POST /runs/{id}/cancel",
            expected=(200, 409),
            body={"comment": "changed my mind"},
        )
        if status == 200:
            record("expect", run_id, expect="cancelled", via="cancel")

    @task(2)
    def replay(self) -> None:
        """Replay a completed run (a new linked run), or try an irreversible one (409)."""
        if self.irreversible and random.random() < 0.2:
            # Only once it ended: a live run has not necessarily run its irreversible
            # step yet, and Squidie lets such a run be replayed.
            run_id = self.irreversible.popleft()
            status, data = self._call("GET", f"/runs/{run_id}", "GET /runs/{id}")
            if status != 200 or data["status"] != "completed":
                self.irreversible.append(run_id)
                return
            status, data = self._call(
                "POST",
                f"/runs/{run_id}/replay",
                "POST /runs/{id}/replay (irreversible)",
                expected=(409,),
            )
            if status == 201:
                record("violation", run_id, what="replayed past an irreversible step")
                record(
                    "start",
                    str(data["run_id"]),
                    workflow="ship_parcel",
                    expect="completed",
                    replayed_from=run_id,
                )
            return
        if not self.replayable:
            return
        source = self.replayable.popleft()
        status, data = self._call(
            "POST", f"/runs/{source}/replay", "POST /runs/{id}/replay", expected=(201,)
        )
        if status == 201:
            record(
                "start",
                str(data["run_id"]),
                workflow="quick_order",
                expect="completed",
                replayed_from=source,
            )

    # -- reads -----------------------------------------------------------------------

    @task(5)
    def poll(self) -> None:
        """Inspect one of this user's runs, sometimes explain it or draw its graph."""
        if not self.mine:
            return
        run_id, workflow = random.choice(self.mine)
        status, data = self._call("GET", f"/runs/{run_id}", "GET /runs/{id}")
        if status == 200 and data["status"] == "completed" and workflow == "quick_order":
            self.replayable.append(run_id)
        roll = random.random()
        if roll < 0.3:
            self._call("GET", f"/runs/{run_id}/explain", "GET /runs/{id}/explain")
        elif roll < 0.4:
            self._call("GET", f"/runs/{run_id}/graph", "GET /runs/{id}/graph")
        elif roll < 0.45:
            self._call(
                "GET",
                f"/runs/{run_id}?history=1",
                "GET /runs/{id}?history=1",
                headers={"X-Role": "auditor", "X-Actor": "auditor"},
            )

    @task(2)
    def list_runs(self) -> None:
        """A page of the run list, optionally filtered by status."""
        status = random.choice([None, "completed", "paused", "failed"])
        query = "?limit=20" + (f"&status={status}" if status else "")
        self._call("GET", f"/runs{query}", "GET /runs")
