"""The example host app's web API, in process, on SQLite and PostgreSQL.

HTTP in (FastAPI TestClient) -> Squidie -> ``drain`` with a fake clock -> HTTP out,
redacted per caller role.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import squidie
from examples.minimal_host_app.web import WORKFLOWS, create_app
from squidie import Workflow, field, manual, pause, step, transition
from squidie.testing import FakeClock, drain

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SECRET = "s3cr3t-card-4242"


def note(input: dict[str, Any], ctx: squidie.StepContext) -> dict[str, Any]:
    return {"noted": input["text"]}


class Checklist(Workflow):
    """A pause step, for the resume endpoint."""

    trigger = manual("go", payload={"text": field(str, default="hi")})
    steps = [pause("hold"), step("note", note, input=["text"], output="note")]
    transitions = [
        transition("hold", on="ok", to="note"),
        transition("note", on="ok", to="complete"),
    ]


@dataclass
class Api:
    client: TestClient
    sq: squidie.Squidie
    clock: FakeClock

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "operator",
        actor: str | None = None,
        key: str | None = None,
        **kw: Any,
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            headers["X-Role"] = role
        if actor is not None:
            headers["X-Actor"] = actor
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.request(method, path, headers=headers, **kw)

    def start(self, workflow: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
        response = self.call("POST", "/runs", json={"workflow": workflow, "payload": payload}, **kw)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def run(self, run_id: str, role: str = "auditor", history: bool = True) -> dict[str, Any]:
        response = self.call("GET", f"/runs/{run_id}", role=role, params={"history": int(history)})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    clock = FakeClock()
    sq = squidie.connect(db_url, clock=clock)
    sq.install()
    app = create_app(sq, workflows={**WORKFLOWS, "checklist": Checklist})
    with TestClient(app) as client:
        yield Api(client, sq, clock)
    sq.store.engine.dispose()


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# -- running ---------------------------------------------------------------------------


def test_a_started_run_completes_once_drained(api: Api) -> None:
    started = api.start("quick_order", {"order_id": "o-1", "amount": 7}, role="auditor")
    assert started["status"] == "started"
    assert started["input"] == {"order_id": "o-1", "amount": 7, "work_ms": 0}
    drain(api.sq)
    run = api.run(started["run_id"])
    assert run["status"] == "completed"
    assert run["context"]["confirmation"] == {"confirmed": True, "order_id": "o-1", "amount": 7}
    assert [s["status"] for s in run["steps"]] == ["completed", "completed"]


def test_a_flaky_step_is_retried_and_completes(api: Api) -> None:
    run_id = api.start("flaky_payment", {"customer": "ann", "failures": 1})["run_id"]
    drain(api.sq)
    assert api.run(run_id)["status"] != "completed"  # the retry waits for its backoff
    api.clock.advance(1)
    drain(api.sq)
    run = api.run(run_id, role="operator")
    assert run["status"] == "completed"
    assert run["steps"][0] == {
        "name": "charge_card",
        "status": "completed",
        "attempts": 2,
        "error": None,
    }


def test_a_step_failing_past_its_retries_fails_the_run(api: Api) -> None:
    run_id = api.start("flaky_payment", {"customer": "bob", "failures": 9})["run_id"]
    for _ in range(4):
        drain(api.sq)
        api.clock.advance(5)
    run = api.run(run_id, role="operator")
    assert run["status"] == "failed"
    assert run["steps"][0]["attempts"] == 3


def test_cancel_ends_a_run_and_a_second_cancel_conflicts(api: Api) -> None:
    run_id = api.start("quick_order", {"order_id": "o-2"})["run_id"]
    response = api.call(
        "POST", f"/runs/{run_id}/cancel", json={"comment": "customer left"}, actor="ops"
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert drain(api.sq) == []
    assert api.run(run_id)["audit_events"][0]["type"] == "cancelled"
    assert error_of(api.call("POST", f"/runs/{run_id}/cancel")) == (409, "invalid_transition")


def test_replay_starts_a_linked_run_once_per_idempotency_key(api: Api) -> None:
    source = api.start("quick_order", {"order_id": "o-3"})["run_id"]
    drain(api.sq)
    first = api.call("POST", f"/runs/{source}/replay", key="replay-o-3")
    again = api.call("POST", f"/runs/{source}/replay", key="replay-o-3")
    assert first.status_code == again.status_code == 201
    replay = first.json()
    assert replay["run_id"] == again.json()["run_id"] != source
    assert replay["replayed_from_run_id"] == source
    drain(api.sq)
    assert api.run(replay["run_id"])["context"]["reservation"]["order_id"] == "o-3"
    assert len(api.call("GET", "/runs").json()["runs"]) == 2


def test_replay_past_an_irreversible_step_needs_allow_irreversible(api: Api) -> None:
    run_id = api.start("ship_parcel", {"parcel_id": "p-1"})["run_id"]
    drain(api.sq)
    assert error_of(api.call("POST", f"/runs/{run_id}/replay")) == (409, "unsafe_replay")
    forced = api.call("POST", f"/runs/{run_id}/replay", json={"allow_irreversible": True})
    assert forced.status_code == 201 and forced.json()["replayed_from_run_id"] == run_id


def test_approving_twice_with_one_idempotency_key_records_one_receipt(api: Api) -> None:
    run_id = api.start("expense_approval", {"employee": "eve", "amount": 30})["run_id"]
    drain(api.sq)
    assert api.run(run_id)["status"] == "paused"
    answers = [
        api.call(
            "POST",
            f"/runs/{run_id}/approve",
            actor="boss",
            key="approve-eve",
            json={"comment": "fine", "metadata": {"ticket": 7}},
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["revision"] == answers[1].json()["revision"]
    drain(api.sq)
    run = api.run(run_id)
    assert run["status"] == "completed"
    [command] = [c for c in run["command_history"] if c["signal_type"] != "start_run"]
    assert command["signal_type"] == "approve_run" and command["idempotency_key"] == "approve-eve"
    assert run["context"]["approval"]["actor"] == "boss"
    assert run["context"]["approval"]["metadata"] == {"ticket": 7}
    explained = api.call("GET", f"/runs/{run_id}/explain", role="auditor").json()
    assert explained["evidence"]["command_counts"]["approve_run"] == 1


def test_reject_fails_the_run(api: Api) -> None:
    run_id = api.start("expense_approval", {"employee": "eve", "amount": 9000})["run_id"]
    drain(api.sq)
    assert api.call("POST", f"/runs/{run_id}/reject", json={"actor": "cfo"}).status_code == 200
    drain(api.sq)
    assert api.run(run_id)["status"] == "failed"


def test_resume_continues_a_paused_run(api: Api) -> None:
    run_id = api.start("checklist", {})["run_id"]
    drain(api.sq)
    assert api.run(run_id)["status"] == "paused"
    assert api.call("POST", f"/runs/{run_id}/resume", key="resume-1").status_code == 200
    drain(api.sq)
    assert api.run(run_id)["status"] == "completed"


def test_starts_are_idempotent_by_run_id_or_idempotency_key(api: Api) -> None:
    body = {"workflow": "greeting", "payload": {"name": "ann"}, "run_id": "greet-ann"}
    ids = {api.call("POST", "/runs", json=body).json()["run_id"] for _ in range(2)}
    assert ids == {"greet-ann"}
    keyed = {"workflow": "greeting", "payload": {"name": "bob"}}
    ids = {
        api.call("POST", "/runs", json=keyed, key="greet-bob").json()["run_id"] for _ in range(2)
    }
    assert len(ids) == 1
    assert len(api.call("GET", "/runs").json()["runs"]) == 2
    other = {"workflow": "greeting", "payload": {"name": "eve"}}
    assert error_of(api.call("POST", "/runs", json=other, key="greet-bob")) == (
        422,
        "invalid_signal",
    )
    assert error_of(api.call("POST", "/runs", json=body, key="k")) == (422, "invalid_option")


# -- reading ---------------------------------------------------------------------------


def test_list_runs_pages_and_filters(api: Api) -> None:
    for n in range(3):
        api.start("quick_order", {"order_id": f"o-{n}"})
        api.clock.advance(1)
    api.start("greeting", {})
    drain(api.sq)
    first = api.call("GET", "/runs", params={"workflow": "quick_order", "limit": 2}).json()
    assert len(first["runs"]) == 2 and first["next_cursor"]
    rest = api.call(
        "GET",
        "/runs",
        params={"workflow": "quick_order", "limit": 2, "cursor": first["next_cursor"]},
    ).json()
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None
    done = api.call("GET", "/runs", params={"status": "completed"}).json()["runs"]
    assert len(done) == 4
    assert api.call("GET", "/runs", params={"status": "failed"}).json()["runs"] == []


def test_the_graph_comes_as_json_mermaid_or_svg(api: Api) -> None:
    run_id = api.start("expense_approval", {"employee": "eve", "amount": 1})["run_id"]
    drain(api.sq)
    graph = api.call("GET", f"/runs/{run_id}/graph").json()
    assert graph["current_node_ids"] == ["manager_approval"]
    assert {n["id"] for n in graph["nodes"]} >= {"record_expense", "manager_approval"}
    mermaid = api.call("GET", f"/runs/{run_id}/graph", params={"format": "mermaid"})
    assert mermaid.text.startswith("flowchart")
    svg = api.call("GET", f"/runs/{run_id}/graph", params={"format": "svg"})
    assert (svg.status_code, svg.headers["content-type"]) == (200, "image/svg+xml") or error_of(
        svg
    ) == (501, "svg_unavailable")


def test_each_role_sees_what_its_scope_allows(api: Api) -> None:
    payload = {"customer": SECRET, "failures": 0}
    started = api.call(
        "POST", "/runs", role=None, json={"workflow": "flaky_payment", "payload": payload}
    )
    assert started.status_code == 201 and SECRET not in started.text
    run_id = started.json()["run_id"]
    drain(api.sq)
    reads = [
        ("GET", f"/runs/{run_id}", {"history": 1}),
        ("GET", f"/runs/{run_id}/explain", {}),
        ("GET", f"/runs/{run_id}/graph", {"history": 1}),
        ("GET", "/runs", {}),
    ]
    for role in ("external", "operator", None):
        for method, path, params in reads:
            response = api.call(method, path, role=role, params=params)
            assert response.status_code == 200 and SECRET not in response.text, (role, path)
    external = api.run(run_id, role="external")
    assert external["input"] == {} and external["context"] == {}
    assert external["attempts"] is None and external["status"] == "completed"
    operator = api.run(run_id, role="operator")
    assert operator["attempts"][0]["status"] == "succeeded"
    auditor = api.run(run_id, role="auditor")
    assert auditor["input"]["customer"] == SECRET
    assert auditor["context"]["receipt"]["sent_to"] == SECRET


def test_squidie_errors_map_to_http_statuses(api: Api) -> None:
    run_id = api.start("quick_order", {"order_id": "o-9"})["run_id"]
    cases = [
        (("GET", "/runs/missing"), (404, "not_found")),
        (("GET", "/runs/missing/explain"), (404, "not_found")),
        (("GET", "/runs/missing/graph"), (404, "not_found")),
        (("POST", "/runs/missing/cancel"), (404, "not_found")),
        (("POST", f"/runs/{run_id}/approve"), (409, "invalid_transition")),
        (("GET", "/runs?status=lost"), (422, "invalid_option")),
        (("GET", "/runs?limit=0"), (422, "invalid_option")),
        (("GET", f"/runs/{run_id}/graph?format=png"), (422, "invalid_request")),
        (("GET", "/nowhere"), (404, "not_found")),
    ]
    for (method, path), expected in cases:
        assert error_of(api.call(method, path)) == expected, path
    bad_payload = api.call("POST", "/runs", json={"workflow": "quick_order", "payload": {}})
    assert error_of(bad_payload) == (422, "invalid_payload")
    assert "order_id" in bad_payload.json()["error"]["message"]
    unknown = api.call("POST", "/runs", json={"workflow": "os.system", "payload": {}})
    assert error_of(unknown) == (422, "invalid_option")
    broken = api.call("POST", "/runs", content=b"{", headers={"content-type": "application/json"})
    assert error_of(broken) == (422, "invalid_request")
    assert error_of(api.call("GET", "/runs", role="root")) == (400, "invalid_role")
    assert error_of(api.call("POST", f"/runs/{run_id}/cancel", role="external")) == (
        403,
        "forbidden",
    )
    bad_attrs = api.call("POST", f"/runs/{run_id}/cancel", json={"metadata": "not a dict"})
    assert bad_attrs.status_code == 422
    assert api.run(run_id)["status"] == "started"  # nothing above changed the run


def test_error_bodies_are_json_envelopes(api: Api) -> None:
    response = api.call("GET", "/runs/missing")
    assert response.headers["content-type"] == "application/json"
    assert set(json.loads(response.text)) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}


def test_an_unexpected_exception_is_a_json_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"driver said {SECRET}")

    monkeypatch.setattr(api.sq, "explain_run", broken)
    with TestClient(api.client.app, raise_server_exceptions=False) as client:
        response = client.get("/runs/any/explain")
    assert error_of(response) == (500, "internal_error")
    assert SECRET not in response.text
    monkeypatch.setattr(
        api.sq,
        "list_runs",
        lambda **kw: (_ for _ in ()).throw(squidie.StorageError(f"connection refused: {SECRET}")),
    )
    response = api.call("GET", "/runs")
    assert error_of(response) == (503, "storage_error") and SECRET not in response.text
