"""squidie.visibility.redact: scopes, policies, and secrets that never leak."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import squidie
from squidie import (
    Explanation,
    Fail,
    InvalidOption,
    RunGraph,
    RunSnapshot,
    Squidie,
    Workflow,
    field,
    manual,
    retry,
    step,
)
from squidie.read_model.explain import Reason
from squidie.read_model.views import RunStatus
from squidie.runtime.scrubbing import SENSITIVE_KEYS, redact_text
from squidie.testing import FakeClock, drain
from squidie.visibility import Scope, redact, resolve_scope
from tests.unit.test_graph_workflows import Gate, Tiered

SENTINEL = "SENTINELx9q7"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def sq(db_url: str) -> Squidie:
    instance = squidie.connect(db_url, clock=FakeClock())
    instance.install()
    return instance


# -- policies -------------------------------------------------------------------


class RolePolicy:
    def visibility_scope(self, actor: dict[str, str], view: object) -> str:
        return {"admin": "auditor", "support": "operator"}.get(actor["role"], "external")


def _snapshot(**fields: Any) -> RunSnapshot:
    base: dict[str, Any] = dict(
        run_id="r1",
        workflow="w",
        trigger="go",
        queue="q",
        status=RunStatus.RUNNING,
        reason=None,
        input={},
        context={},
        started_at=T0,
        updated_at=T0,
        terminal_at=None,
        terminal_error=None,
        definition_version=None,
        revision=3,
    )
    base.update(fields)
    return RunSnapshot(**base)


def test_policy_forms_resolve_to_scopes() -> None:
    assert squidie.visibility.redact is redact
    view = _snapshot()
    assert resolve_scope(None, view, "operator") is Scope.OPERATOR
    assert resolve_scope({"role": "admin"}, view, RolePolicy()) is Scope.AUDITOR
    assert resolve_scope({"role": "x"}, view, lambda actor, v: "external") is Scope.EXTERNAL
    assert resolve_scope(None, view, Scope.OPERATOR) is Scope.OPERATOR


@pytest.mark.parametrize("policy", ["root", 42, None, lambda a, v: "everything", lambda a, v: None])
def test_invalid_policy_or_scope_is_a_typed_error(policy: Any) -> None:
    with pytest.raises(InvalidOption) as info:
        redact(_snapshot(), "someone", policy)
    assert info.value.code == "invalid_option"


def test_unknown_view_type_is_rejected() -> None:
    with pytest.raises(InvalidOption):
        redact({"run_id": "r1"}, None, "auditor")


def test_lists_and_same_types_come_back(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"tier": "gold"})
    summaries = sq.list_runs()
    out = redact(summaries, None, "external")
    assert isinstance(out, list) and out == summaries
    graph = redact(sq.inspect_run_graph(run.run_id, include_history=True), None, "operator")
    assert isinstance(graph, RunGraph)
    assert graph.to_mermaid().startswith("flowchart")  # a redacted graph still renders
    assert isinstance(redact(sq.explain_run(run.run_id), None, "external"), Explanation)


# -- end to end -----------------------------------------------------------------


def test_real_run_views_per_scope(sq: Squidie) -> None:
    run = sq.start(Gate, payload={"secret_note": SENTINEL})
    drain(sq)
    sq.resume(
        run.run_id,
        {"actor": "strider", "comment": f"ok {SENTINEL}", "metadata": {"ticket": SENTINEL}},
        idempotency_key="k1",
    )
    sq.approve(run.run_id, {"actor": "elrond", "metadata": {"password": SENTINEL}})
    drain(sq)
    views = [
        sq.inspect_run(run.run_id, include_history=True),
        sq.inspect_run_graph(run.run_id, include_history=True),
        sq.explain_run(run.run_id),
        *sq.list_runs(),
    ]
    assert SENTINEL in json.dumps([v.to_dict() for v in views])  # the raw views do hold it
    for scope in ("operator", "external"):
        text = json.dumps([redact(v, "x", scope).to_dict() for v in views])
        assert SENTINEL not in text, scope

    snap = redact(views[0], "x", "operator")
    assert snap.input == {} and snap.context == {}
    assert [s["name"] for s in snap.steps or []] == ["prepare", "hold", "council", "ship"]
    assert all("owner_id" not in a and "claims" in a for a in snap.attempts or [])
    assert {e["type"] for e in snap.audit_events or []} >= {"resumed", "approved"}
    assert all(set(e) <= {"type", "step", "actor", "occurred_at"} for e in snap.audit_events or [])
    ext = redact(views[0], "x", "external")
    assert ext.attempts is None and ext.audit_events is None and ext.command_history is None
    assert all(set(s) == {"name", "status"} for s in ext.steps or [])

    graph = redact(views[1], "x", "external")
    assert all(set(n) <= {"id", "kind", "status", "current", "recovery"} for n in graph.nodes)
    assert [e["id"] for e in graph.edges] == [e["id"] for e in views[1].edges]

    audited = redact(views[0], "x", "auditor")
    assert audited.input == {"secret_note": SENTINEL}  # auditors see payloads
    approved = next(e for e in audited.audit_events or [] if e["type"] == "approved")
    assert approved["metadata"] == {"password": "[REDACTED]"}  # ...but never secrets


def test_operator_keeps_error_type_and_code_but_not_the_free_text_message(sq: Squidie) -> None:
    run = sq.start(Tiered, payload={"explode": True})
    drain(sq)
    graph = redact(sq.inspect_run_graph(run.run_id, include_history=True), None, "operator")
    error = graph.node("classify")["error"]
    assert error == {"type": "Fail", "code": "fail"}  # no public_message: no message at all
    assert "input" not in graph.node("classify") and "output" not in graph.node("refund")


# -- payload values in error messages (issue 8, item 12) -------------------------

CARD = "4111SENTINELx9q7"


def _charge(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    card = input["card"]
    if ctx.attempt == 1:
        raise ValueError(f"card {card} declined by gateway")
    raise Fail(f"card {card} declined", details={"card": card}, public_message="card declined")


def _charge_quietly(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    raise RuntimeError(f"card {input['card']} declined")


class Charge(Workflow):
    trigger = manual("go", payload={"card": field(str)})
    steps = [step("charge", _charge, retry=retry(max_attempts=3))]


class ChargeQuietly(Workflow):
    trigger = manual("go", payload={"card": field(str)})
    steps = [step("charge", _charge_quietly)]


def _all_views(sq: Squidie, run_id: str) -> list[Any]:
    return [
        sq.inspect_run(run_id, include_history=True),
        sq.inspect_run_graph(run_id, include_history=True),
        sq.explain_run(run_id),
    ]


def test_operator_never_sees_payload_values_quoted_in_error_messages(sq: Squidie) -> None:
    runs = [
        sq.start(Charge, payload={"card": CARD}).run_id,
        sq.start(ChargeQuietly, payload={"card": CARD}).run_id,
    ]
    drain(sq)
    for run_id in runs:
        views = _all_views(sq, run_id)
        assert views[0].status == "failed"
        raw = json.dumps([v.to_dict() for v in views])
        assert CARD in raw  # the stored error does quote the card...
        assert CARD in json.dumps([redact(v, "x", "auditor").to_dict() for v in views])
        for scope in ("operator", "external"):  # ...but only auditors may read it
            assert CARD not in json.dumps([redact(v, "x", scope).to_dict() for v in views])


def test_operator_sees_type_code_and_the_public_message_the_step_chose(sq: Squidie) -> None:
    loud = sq.start(Charge, payload={"card": CARD}).run_id
    quiet = sq.start(ChargeQuietly, payload={"card": CARD}).run_id
    drain(sq)
    snap, graph, expl = (redact(v, "x", "operator") for v in _all_views(sq, loud))
    assert snap.terminal_error == {"type": "Fail", "code": "fail", "message": "card declined"}
    assert [a["error"] for a in snap.attempts or []] == [
        {"type": "ValueError", "code": "exception"},
        {"type": "Fail", "code": "fail", "message": "card declined"},
    ]
    assert graph.node("charge")["error"] == snap.terminal_error
    assert expl.summary == "Run failed at step 'charge': Fail: card declined."
    assert expl.details["terminal_error"] == snap.terminal_error
    quiet_expl = redact(sq.explain_run(quiet), "x", "operator")
    assert quiet_expl.summary == "Run failed at step 'charge': RuntimeError."
    audited = redact(sq.inspect_run(loud), "x", "auditor")
    assert (audited.terminal_error or {})["message"] == f"card {CARD} declined"


# -- property: planted secrets never reach operator or external views -----------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_key = st.sampled_from(SENSITIVE_KEYS)


def _planted_text() -> st.SearchStrategy[str]:
    """Free text with a secret in one of the shapes secrets take in messages."""
    shapes = st.sampled_from(
        ["{k}={s}", "{k}: {s}", '"{k}": "{s}"', "Bearer {s}", "postgres://user:{s}@db/app"]
    )
    return st.builds(
        lambda pre, shape, k, post: f"{pre} {shape.format(k=k, s=SENTINEL)} {post}",
        _text,
        shapes,
        _key,
        _text,
    )


def _json(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf | st.integers() | st.booleans() | st.none() | _text,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(_text | st.just(SENTINEL), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _planted(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A JSON tree with the sentinel somewhere (as a value or a key)."""
    return st.one_of(
        st.builds(lambda tree: {"x": tree, "s": SENTINEL}, value),
        st.builds(lambda tree: [tree, {SENTINEL: tree}], value),
        st.just(SENTINEL),
    )


_payload = _planted(_json(st.just(SENTINEL)))
_error = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Fail", "RuntimeError", "Retry"]),
        "code": st.sampled_from(["fail", "exception"]),
        "message": _planted_text(),
    },
    optional={"details": _payload},
)
_metadata = st.dictionaries(_text, _payload, min_size=1, max_size=2) | st.builds(
    lambda k: {k: SENTINEL}, _key
)


@st.composite
def _views(draw: st.DrawFn, errors: st.SearchStrategy[dict[str, Any]] = _error) -> list[Any]:
    error, meta, payload, output = draw(errors), draw(_metadata), draw(_payload), draw(_payload)
    attempt = {
        "runnable_key": "a",
        "step": "a",
        "attempt_number": 1,
        "status": "failed",
        "visible_at": "t",
        "claimed_at": "t",
        "finished_at": "t",
        "owner_id": SENTINEL,
        "claim_id": SENTINEL,
        "error": error,
        "claims": 1,
    }
    audit = {
        "type": "approved",
        "step": "gate",
        "actor": "elrond",
        "comment": SENTINEL,
        "metadata": meta,
        "occurred_at": "t",
    }
    command = {
        "signal_type": "approve_run",
        "idempotency_key": "k",
        "actor": "elrond",
        "comment": SENTINEL,
        "metadata": meta,
        "occurred_at": "t",
    }
    manual = {
        "step": "gate",
        "kind": "approval",
        "metadata": meta,
        "targets": payload,
        "approval": {"metadata": meta},
        "comment": SENTINEL,
    }
    snap = _snapshot(
        input={"payload": payload},
        context={"out": output},
        terminal_error=error,
        manual_state=manual,
        parent_run={"run_id": "p", "token": SENTINEL},
        child_runs=[{"run_id": "c", "input": payload}],
        dynamic_work=[
            {"dynamic_key": "d", "metadata": meta, "nodes": [{"id": "n", "input": payload}]}
        ],
        steps=[{"name": "a", "status": "failed", "attempts": 1, "output": output, "error": error}],
        step_runs=[
            {
                "runnable_key": "a",
                "step": "a",
                "status": "failed",
                "attempts": 1,
                "input": payload,
                "output": output,
                "error": error,
            }
        ],
        attempts=[attempt],
        audit_events=[audit],
        command_history=[command],
        compensations=[
            {"step": "a", "key": "a", "status": "failed", "output": output, "error": error}
        ],
    )
    graph = RunGraph(
        run_id="r1",
        workflow="w",
        definition_version=None,
        status=RunStatus.RUNNING,
        current_node_ids=["a"],
        edges=[],
        nodes=[
            {
                "id": "a",
                "kind": "action",
                "status": "failed",
                "current": True,
                "input": payload,
                "output": output,
                "error": error,
                "attempts": [
                    {
                        "number": 1,
                        "status": "failed",
                        "owner_id": SENTINEL,
                        "claim_id": SENTINEL,
                        "error": error,
                    }
                ],
                "manual_state": manual,
                "recovery": None,
                "deadline": None,
            }
        ],
        child_links=[{"run_id": "c", "metadata": meta}],
        dynamic_work_overlays=[{"dynamic_key": "d", "input": payload}],
    )
    expl = Explanation(
        status=RunStatus.FAILED,
        reason=Reason.TERMINAL,
        step="a",
        summary=f"Run failed: {error['message']}",
        details={
            "terminal_error": error,
            "manual_state": manual,
            "owner_id": SENTINEL,
            "claim_id": SENTINEL,
            "actions": {},
        },
        next_actions=["inspect_terminal_run"],
        evidence={
            "command_history": [command],
            "duplicate_commands": [command],
            "command_counts": {"approve_run": 1},
            "anomalies": [],
        },
    )
    return [snap, graph, expl]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(views=_views(), scope=st.sampled_from(["operator", "external"]))
def test_planted_secrets_never_leak(views: list[Any], scope: str) -> None:
    assert SENTINEL in json.dumps([v.to_dict() for v in views])
    redacted = redact(views, {"role": "support"}, lambda actor, view: scope)
    text = json.dumps([v.to_dict() for v in redacted])
    assert SENTINEL not in text


@settings(max_examples=60, deadline=None)
@given(error=_error, meta=_metadata)
def test_auditor_sees_no_secret_in_error_or_metadata_text(
    error: dict[str, Any], meta: dict[str, Any]
) -> None:
    """Secret-shaped text and secret-named keys are masked even for auditors."""
    clean_error = {k: v for k, v in error.items() if k != "details"}
    view = _snapshot(
        terminal_error=clean_error,
        audit_events=[{"type": "approved", "metadata": {"password": SENTINEL}}],
    )
    text = json.dumps(redact(view, None, "auditor").to_dict())
    assert SENTINEL not in text


# Payload values quoted in free text, in no secret-like shape: only leaving the
# message out keeps them from operators. A public message, when given, is shown.
_quoting_error = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Fail", "RuntimeError", "Retry", "SystemExit"]),
        "code": st.sampled_from(["fail", "exception", "retry", "invalid_output"]),
        "message": st.builds(lambda pre, post: f"{pre}{SENTINEL}{post}", _text, _text),
    },
    optional={"details": _payload, "public_message": _text.filter(lambda t: t.strip() != "")},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(views=_views(errors=_quoting_error), scope=st.sampled_from(["operator", "external"]))
def test_payload_values_quoted_in_error_messages_never_reach_operators(
    views: list[Any], scope: str
) -> None:
    text = json.dumps([redact(v, "x", scope).to_dict() for v in views])
    assert SENTINEL not in text
    error = views[0].terminal_error
    shown = redact(views[0], "x", scope).terminal_error
    if scope == "operator":
        expected = {"type": error["type"], "code": error["code"]}
        if "public_message" in error:
            expected["message"] = redact_text(error["public_message"])
        assert shown == expected
    else:
        assert shown is None
