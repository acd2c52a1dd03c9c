"""The web dashboard through HTTP (Starlette's TestClient): routes, filters and paging,
redaction per actor, controls off and on, confirmation, idempotency, escaping."""

from __future__ import annotations

import re
import warnings
from typing import Any
from urllib.parse import quote

import pytest

import squidie
from harness.dashboard_demo import PAYMENTS, SECRET, seed
from harness.dashboard_workflows import Onboarding, Payout
from squidie.dashboard import create_app, graph_view
from squidie.errors import InvalidOption, MissingDependency

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

ALLOW_ALL = {"allow_controls": True, "authorize": lambda actor, action, run_id: True}
KEY = "k" * 32


@pytest.fixture
def sq(db_url: str) -> squidie.Squidie:
    sq = squidie.connect(db_url)
    sq.install()
    return sq


@pytest.fixture
def ids(sq: squidie.Squidie) -> dict[str, str]:
    return seed(sq)


def client(sq: squidie.Squidie, **options: Any) -> TestClient:
    return TestClient(create_app(sq, **options))


def run_ids(html: str) -> list[str]:
    return re.findall(r'<td class="col-run_id"><a href="/runs/[^"]*">([^<]*)</a>', html)


def commands(sq: squidie.Squidie, run_id: str, signal_type: str) -> list[dict[str, Any]]:
    history = sq.inspect_run(run_id, include_history=True).command_history or []
    return [c for c in history if c["signal_type"] == signal_type]


# -- pages and JSON ----------------------------------------------------------------------


def test_list_filters_by_status_workflow_and_queue(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web = client(sq)
    everything = web.get("/")
    assert everything.status_code == 200
    assert sorted(run_ids(everything.text)) == sorted(ids.values())
    paused = run_ids(web.get("/", params={"status": "paused"}).text)
    assert sorted(paused) == sorted([ids["approval"], ids["approval_2"], ids["pause"]])
    onboarding = run_ids(
        web.get("/", params={"workflow": "harness.dashboard_workflows.Onboarding"}).text
    )
    assert onboarding == [ids["pause"]]
    payments = run_ids(web.get("/", params={"queue": PAYMENTS, "status": "paused"}).text)
    assert sorted(payments) == sorted([ids["approval"], ids["approval_2"]])
    body = web.get("/api/runs", params={"queue": PAYMENTS}).json()
    assert {r["queue"] for r in body["runs"]} == {PAYMENTS} and len(body["runs"]) == 4
    assert body["next_cursor"] is None


def test_cursor_paging_walks_every_run_once(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    web, seen, params = client(sq), [], {"limit": "3"}
    for _ in range(5):
        page = web.get("/api/runs", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": page["next_cursor"]}
    assert seen == [s.run_id for s in sq.list_runs()]
    assert len(seen) == len(ids)
    html = web.get("/", params={"limit": "3"}).text
    assert 'class="next-page"' in html and "limit=3" in html


def test_queue_filter_pages_by_cursor_one_run_at_a_time(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web, seen, params = client(sq), [], {"limit": "1", "queue": PAYMENTS}
    for _ in range(10):
        page = web.get("/api/runs", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        if page["next_cursor"] is None:
            break
        params = {**params, "cursor": page["next_cursor"]}
    assert seen == [s.run_id for s in sq.list_runs() if s.queue == PAYMENTS]


def test_run_page_shows_status_explanation_graph_and_history(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    html = client(sq).get(f"/runs/{ids['approval']}").text
    assert 'class="badge status-paused"' in html
    assert "resolve_manual_step" in html and "Resume, approve or reject" in html
    assert "<svg" in html and 'class="legend' in html and "sign_off" in html
    for section in ("steps", "attempts", "audit", "commands"):
        assert f'id="{section}"' in html
    assert "start_run" in html
    detail = client(sq).get(f"/api/runs/{ids['approval']}").json()
    assert detail["run"]["status"] == "paused"
    assert detail["explanation"]["next_actions"] == ["resolve_manual_step"]
    assert detail["graph"]["nodes"][1]["status"] == "paused"
    assert detail["scope"] == "operator"


def test_unknown_runs_and_bad_filters_are_answered_not_crashed(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web = client(sq)
    assert web.get("/runs/no-such-run").status_code == 404
    missing = web.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for params in (
        {"status": "sleeping"},
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "not-a-cursor"},
    ):
        assert web.get("/", params=params).status_code == 400, params
        assert web.get("/api/runs", params=params).json()["error"]["code"] == "invalid_option"


def test_the_stamp_a_live_page_polls_changes_when_the_run_moves_on(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web = client(sq)
    before = web.get(f"/api/runs/{ids['pause']}", params={"stamp": "1"}).json()
    assert before["status"] == "paused" and not before["terminal"]
    page = web.get(f"/runs/{ids['pause']}").text
    assert f'data-stamp="{before["stamp"]}"' in page and "data-poll=" in page
    sq.resume(ids["pause"])
    after = web.get(f"/api/runs/{ids['pause']}", params={"stamp": "1"}).json()
    assert after["stamp"] != before["stamp"]
    finished = web.get(f"/runs/{ids['completed']}").text
    assert "data-poll=" not in finished  # an ended run does not change: no polling


# -- redaction ---------------------------------------------------------------------------


def everything_shown(web: TestClient, ids: dict[str, str]) -> str:
    parts = [web.get("/").text, web.get("/api/runs").text]
    for run_id in ids.values():
        parts += [web.get(f"/runs/{run_id}").text, web.get(f"/api/runs/{run_id}").text]
    return "\n".join(parts)


@pytest.mark.parametrize("scope", ["operator", "external"])
def test_operator_and_external_views_never_show_a_planted_secret(
    sq: squidie.Squidie, ids: dict[str, str], scope: str
) -> None:
    shown = everything_shown(client(sq, policy=scope), ids)
    assert SECRET not in shown
    assert "ann@example.com" not in shown  # payload values in general, not only the secret
    assert "sign_off" in shown  # ... while the pages are there


def test_an_auditor_sees_input_and_context(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    # The planted secret is reachable: the redaction tests above can fail.
    html = client(sq, policy="auditor").get(f"/runs/{ids['approval']}").text
    assert SECRET in html and 'id="data"' in html


def test_actor_may_be_a_callable_of_the_request(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    def policy(actor: str, view: Any) -> str:
        return "auditor" if actor == "alice" else "external"

    web = client(sq, actor=lambda request: request.headers.get("x-user"), policy=policy)
    url = f"/api/runs/{ids['approval']}"
    assert web.get(url, headers={"x-user": "alice"}).json()["run"]["input"]["token"] == SECRET
    as_bob = web.get(url, headers={"x-user": "bob"}).json()
    assert as_bob["run"]["input"] == {} and as_bob["scope"] == "external"


def test_an_unknown_scope_name_is_refused_when_the_app_is_made(sq: squidie.Squidie) -> None:
    with pytest.raises(InvalidOption):
        create_app(sq, policy="admin")


# -- controls ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["cancel", "resume", "approve", "reject", "replay"])
def test_without_allow_controls_there_are_no_control_routes_or_buttons(
    sq: squidie.Squidie, ids: dict[str, str], action: str
) -> None:
    web = client(sq)
    answer = web.post(
        f"/runs/{ids['approval']}/{action}", data={"idempotency_key": KEY, "confirm": "yes"}
    )
    assert answer.status_code in (404, 405)
    assert sq.inspect_run(ids["approval"]).status == "paused"
    assert '<form method="post"' not in web.get(f"/runs/{ids['approval']}").text


def test_controls_need_an_authorisation_callback(sq: squidie.Squidie) -> None:
    with pytest.raises(InvalidOption, match="authorize"):
        create_app(sq, allow_controls=True)


def test_approve_asks_first_then_acts_once_per_key(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web, run_id = client(sq, actor="carol", **ALLOW_ALL), ids["approval"]
    page = web.get(f"/runs/{run_id}").text
    keys = re.findall(r'name="idempotency_key" value="([0-9a-f]{32})"', page)
    assert len(keys) == 3 and len(set(keys)) == 3  # approve, reject, cancel: a key each
    asked = web.post(f"/runs/{run_id}/approve", data={"idempotency_key": keys[0]})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert sq.inspect_run(run_id).status == "paused"  # nothing happened yet
    form = {"idempotency_key": keys[0], "confirm": "yes", "comment": "looks right"}
    for _ in range(2):  # a double click: the same key twice
        done = web.post(f"/runs/{run_id}/approve", data=form, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == f"/runs/{run_id}?done=approve"
    approvals = commands(sq, run_id, "approve_run")
    assert len(approvals) == 1
    assert approvals[0]["actor"] == "carol" and approvals[0]["comment"] == "looks right"
    assert "Approved." in web.get(done.headers["location"]).text


def test_every_control_reaches_the_run(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    web = client(sq, **ALLOW_ALL)

    def press(run_id: str, action: str, key: str) -> Any:
        return web.post(
            f"/runs/{quote(run_id, safe='')}/{action}",
            data={"idempotency_key": key, "confirm": "yes"},
            follow_redirects=False,
        )

    assert press(ids["approval_2"], "reject", "r" * 32).status_code == 303
    assert sq.inspect_run(ids["approval_2"]).status == "failed"
    assert press(ids["pause"], "resume", "s" * 32).status_code == 303
    assert commands(sq, ids["pause"], "resume_run")
    assert press(ids["running"], "cancel", "c" * 32).status_code == 303
    assert sq.inspect_run(ids["running"]).status == "cancelled"
    replayed = press(ids["cancelled"], "replay", "p" * 32)
    new_run = replayed.headers["location"].split("/runs/")[1].split("?")[0]
    assert new_run != ids["cancelled"]
    assert sq.inspect_run(new_run).replayed_from_run_id == ids["cancelled"]
    again = press(ids["cancelled"], "replay", "p" * 32)
    assert again.headers["location"] == replayed.headers["location"]  # one replay per key


def test_a_refused_control_says_why(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    web = client(sq, **ALLOW_ALL)
    answer = web.post(
        f"/runs/{ids['completed']}/cancel", data={"idempotency_key": KEY, "confirm": "yes"}
    )
    assert answer.status_code == 409 and "invalid_transition" in answer.text
    no_key = web.post(f"/runs/{ids['approval']}/approve", data={"confirm": "yes"})
    assert no_key.status_code == 400
    assert sq.inspect_run(ids["approval"]).status == "paused"


def test_authorize_decides_buttons_and_requests(sq: squidie.Squidie, ids: dict[str, str]) -> None:
    def only_cancel_for_ops(actor: str, action: str, run_id: str) -> bool:
        return actor == "ops" and action == "cancel"

    web = client(
        sq,
        actor=lambda request: request.headers.get("x-user"),
        allow_controls=True,
        authorize=only_cancel_for_ops,
    )
    url = f"/runs/{ids['approval']}"
    ops_page = web.get(url, headers={"x-user": "ops"}).text
    assert "control-cancel" in ops_page and "control-approve" not in ops_page
    assert "control-" not in web.get(url, headers={"x-user": "eve"}).text
    refused = web.post(
        f"{url}/approve", headers={"x-user": "ops"}, data={"idempotency_key": KEY, "confirm": "yes"}
    )
    assert refused.status_code == 403
    assert sq.inspect_run(ids["approval"]).status == "paused"


@pytest.mark.parametrize(
    "headers", [{"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}]
)
def test_cross_site_posts_are_refused(
    sq: squidie.Squidie, ids: dict[str, str], headers: dict[str, str]
) -> None:
    answer = client(sq, **ALLOW_ALL).post(
        f"/runs/{ids['approval']}/approve",
        headers=headers,
        data={"idempotency_key": KEY, "confirm": "yes"},
    )
    assert answer.status_code == 403
    assert sq.inspect_run(ids["approval"]).status == "paused"


# -- escaping, assets, rendering fallback ------------------------------------------------


def test_everything_is_escaped(sqlite_url: str) -> None:
    sq = squidie.connect(sqlite_url)
    sq.install()
    nasty = '<script>alert("x")</script>/&amp;\'"'
    sq.start(
        Onboarding,
        payload={"email": "<img src=x onerror=alert(1)>", "token": "t"},
        run_id=nasty,
        queue="<b>q</b>",
    )
    for policy in ("operator", "auditor"):
        web = client(sq, policy=policy, **ALLOW_ALL)
        pages = [
            web.get("/").text,
            web.get(f"/runs/{quote(nasty, safe='')}").text,
            web.get("/", params={"workflow": "<i>w</i>", "queue": "<b>q</b>"}).text,
        ]
        for html in pages:
            assert "<script>alert" not in html and "<img src=x" not in html
            assert "<b>q</b>" not in html and "<i>w</i>" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;/&amp;amp;" in pages[1]
        assert web.get(f"/api/runs/{quote(nasty, safe='')}").json()["run"]["run_id"] == nasty


def test_assets_come_from_the_app_under_a_strict_policy(
    sq: squidie.Squidie, ids: dict[str, str]
) -> None:
    web = client(sq)
    page = web.get(f"/runs/{ids['approval']}")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # no CDN, nothing remote
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        answer = web.get(asset)
        assert answer.status_code == 200 and answer.text.strip(), asset
    assert ".status-paused" in web.get("/static/status.css").text
    assert web.get("/static/../app.py").status_code == 404


def test_without_an_svg_renderer_the_graph_shows_as_text(
    sq: squidie.Squidie, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_svg(graph: Any) -> str:
        raise MissingDependency(["no dot here"], "cannot render SVG")

    monkeypatch.setattr(graph_view, "to_svg", no_svg)
    answer = client(sq).get(f"/runs/{ids['approval']}")
    assert answer.status_code == 200
    assert 'class="graph-text"' in answer.text and "flowchart TD" in answer.text
    assert "<svg" not in answer.text and 'class="legend' in answer.text


# -- mounted in a host app, and served alone ----------------------------------------------


def test_the_example_host_app_mounts_the_dashboard(sqlite_url: str) -> None:
    from examples.minimal_host_app.web import create_app as host_app

    sq = squidie.connect(sqlite_url)
    sq.install()
    run = sq.start(Payout, payload={"amount": 5, "token": SECRET}, queue=PAYMENTS)
    from squidie.testing import drain

    drain(sq, queue=PAYMENTS)
    with TestClient(host_app(sq)) as web:
        assert web.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
        operator = {"x-role": "operator", "x-actor": "olga"}
        listing = web.get("/dashboard/", headers=operator).text
        assert f'href="/dashboard/runs/{run.run_id}"' in listing
        assert 'href="/dashboard/static/dashboard.css"' in listing
        page = web.get(f"/dashboard/runs/{run.run_id}", headers=operator).text
        assert f'action="/dashboard/runs/{run.run_id}/approve"' in page
        assert SECRET not in page
        outsider = web.get(f"/dashboard/runs/{run.run_id}").text  # no headers: external
        assert "control-" not in outsider and SECRET not in outsider
        assert (
            web.post(
                f"/dashboard/runs/{run.run_id}/approve",
                data={"idempotency_key": KEY, "confirm": "yes"},
            ).status_code
            == 403
        )
        done = web.post(
            f"/dashboard/runs/{run.run_id}/approve",
            headers=operator,
            data={"idempotency_key": KEY, "confirm": "yes"},
            follow_redirects=False,
        )
        assert done.headers["location"] == f"/dashboard/runs/{run.run_id}?done=approve"
    assert commands(sq, run.run_id, "approve_run")[0]["actor"] == "olga"


def test_squidie_dashboard_command_binds_to_localhost_by_default(sqlite_url: str) -> None:
    from squidie.cli import build_parser
    from squidie.dashboard.serve import build, is_loopback

    args = build_parser().parse_args(["dashboard", "--database-url", sqlite_url, "--port", "9999"])
    assert (args.host, args.port, args.scope, args.allow_controls) == (
        "127.0.0.1",
        9999,
        "operator",
        False,
    )
    squidie.connect(sqlite_url).install()
    with TestClient(build(args)) as web:
        assert web.get("/").status_code == 200
        assert web.post("/runs/x/cancel").status_code in (404, 405)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


_WITHOUT_WEB = """
import sys
class NoWebExtra:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("starlette", "uvicorn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoWebExtra())
import squidie
from squidie.cli import main
raise SystemExit(main(["dashboard", "--database-url", sys.argv[1]]))
"""


def test_without_the_web_extra_the_command_says_what_to_install(sqlite_url: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_WEB, sqlite_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "missing_dependency" in done.stderr and "pip install 'squidie[web]'" in done.stderr
