"""The dashboard as a person uses it: a real headless Chromium, driven by Playwright,
against the app served by uvicorn on 127.0.0.1.

Chromium comes from the system (Debian/Ubuntu: ``apt-get install -y chromium``;
``tools/ensure_system_packages.sh`` installs it in CI); these tests never run
``playwright install``. Without Chromium they fail, saying so; deselect them
with ``-m "not browser"``. Screenshots land in ``harness/out/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

import squidie
from harness.dashboard_demo import PAYMENTS, SECRET, seed
from harness.dashboard_workflows import Onboarding
from squidie.dashboard import create_app
from squidie.testing import drain

pytestmark = pytest.mark.browser
OUT = Path(__file__).resolve().parents[2] / "harness" / "out"
INSTALL = (
    "No Chromium for the browser tests. Install the system browser: "
    "`apt-get install -y chromium` (Debian/Ubuntu; tools/ensure_system_packages.sh "
    "does it in CI), or put a `chromium` executable on PATH. Do not run "
    "`playwright install`: these tests drive the system Chromium. "
    "Leave them out on purpose with -m 'not browser'."
)


def chromium() -> str:
    """The system Chromium, or a failure that says how to get one."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(INSTALL, pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root cannot use the sandbox
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=args)
        yield launched
        launched.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def watched(browser: Browser) -> Iterator[Page]:
    """A page whose script errors, failed loads and policy violations fail the test."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    page.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    try:
        yield page
    finally:
        page.close()
    assert not problems, "\n".join(problems)


def shot(page: Page, name: str) -> None:
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def run_rows(page: Page) -> Any:
    return page.locator("td.col-run_id a")


def test_list_filter_open_a_paused_run_approve_it_and_watch_it_complete(
    db_url: str, browser: Browser
) -> None:
    db = "postgres" if db_url.startswith("postgresql") else "sqlite"
    sq = squidie.connect(db_url)
    sq.install()
    ids = seed(sq)
    app = create_app(
        sq,
        actor="olga",
        allow_controls=True,
        authorize=lambda actor, action, run_id: actor == "olga",
    )
    with served(app) as base, watched(browser) as page:
        page.goto(base + "/")
        expect(run_rows(page)).to_have_count(len(ids))
        shot(page, f"dashboard-1-list-{db}")

        page.select_option("#f-status", "paused")
        page.fill("#f-queue", PAYMENTS)
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"status=paused.*queue=payments"))
        expect(run_rows(page)).to_have_text([ids["approval"], ids["approval_2"]])
        shot(page, f"dashboard-2-filtered-{db}")

        page.get_by_role("link", name=ids["approval"], exact=True).click()
        badge = page.locator("#run-title .badge")
        expect(badge).to_have_text("paused")
        expect(page.locator("#explanation")).to_contain_text("resolve_manual_step")
        graph = page.locator("#graph svg")
        expect(graph).to_be_visible()
        expect(graph.locator("g.node", has_text="sign_off")).to_contain_text("paused")
        assert (graph.bounding_box() or {"width": 0})["width"] > 150
        expect(page.locator(".legend-box")).to_contain_text("completed")
        shot(page, f"dashboard-3-paused-run-{db}")

        page.get_by_role("button", name="Approve…").click()
        expect(page.locator("h1").first).to_contain_text("are you sure")
        assert sq.inspect_run(ids["approval"]).status == "paused"  # asked, not done
        page.fill("textarea[name=comment]", "checked the invoice")
        shot(page, f"dashboard-4-confirm-{db}")
        page.locator("#confirm").click()
        expect(page.locator(".flash")).to_have_text("Approved.")
        expect(badge).not_to_have_text("paused")
        expect(page.locator("#commands")).to_contain_text("approve_run")
        expect(page.locator("#commands")).to_contain_text("olga")

        drain(sq, queue=PAYMENTS)  # a worker runs `send`; the page notices by itself
        expect(badge).to_have_text("completed", timeout=15_000)
        expect(graph.locator("g.node", has_text="send")).to_contain_text("completed")
        expect(page.locator(".flash")).to_have_count(0)  # it said "Approved." once
        shot(page, f"dashboard-5-completed-{db}")
    history = sq.inspect_run(ids["approval"], include_history=True).command_history or []
    assert [c["signal_type"] for c in history].count("approve_run") == 1


@pytest.mark.parametrize("scope", ["operator", "external"])
def test_what_a_browser_gets_never_holds_the_planted_secret(
    sqlite_url: str, browser: Browser, scope: str
) -> None:
    sq = squidie.connect(sqlite_url)
    sq.install()
    ids = seed(sq)
    with served(create_app(sq, policy=scope)) as base, watched(browser) as page:
        seen = []
        for path in [
            "/",
            "/api/runs",
            *[f"/runs/{i}" for i in ids.values()],
            *[f"/api/runs/{i}" for i in ids.values()],
        ]:
            if path.startswith("/api/"):
                seen.append(page.request.get(base + path).text())
            else:
                page.goto(base + path)
                seen += [page.content(), page.inner_text("body")]
        page.goto(base + f"/runs/{ids['failed']}")
        shot(page, f"dashboard-6-failed-run-as-{scope}")
    assert all(SECRET not in text for text in seen)
    assert any(ids["failed"] in text for text in seen)


def test_an_auditor_is_shown_the_planted_secret(sqlite_url: str, browser: Browser) -> None:
    # The secret is reachable through the dashboard, so the test above can fail.
    sq = squidie.connect(sqlite_url)
    sq.install()
    ids = seed(sq)
    with served(create_app(sq, policy="auditor")) as base, watched(browser) as page:
        page.goto(base + f"/runs/{ids['approval']}")
        expect(page.locator("#data")).to_contain_text(SECRET)


def test_hostile_run_ids_are_shown_as_text_and_run_no_script(
    sqlite_url: str, browser: Browser
) -> None:
    sq = squidie.connect(sqlite_url)
    sq.install()
    nasty = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]
    for run_id in nasty:
        sq.start(Onboarding, payload={"email": "<b>bold</b>", "token": "t"}, run_id=run_id)
    drain(sq)
    with served(create_app(sq, policy="auditor")) as base, watched(browser) as page:
        page.goto(base + "/")
        expect(run_rows(page)).to_have_text(list(reversed(nasty)))
        run_rows(page).first.click()
        expect(page.locator("#run-title .run-id")).to_have_text(nasty[1])
        expect(page.locator("#data")).to_contain_text("<b>bold</b>")
