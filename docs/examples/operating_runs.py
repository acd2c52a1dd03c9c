"""Operating runs: list_runs paging, inspect with history, explain, run graphs, redaction.

Run from the repository root:  python docs/examples/operating_runs.py
"""

import os
import tempfile

import squidie
from squidie import Fail, StepContext, Workflow, approval_step, manual, step, transition
from squidie.testing import drain
from squidie.visibility import redact

tmp = tempfile.mkdtemp()
sq = squidie.connect(f"sqlite:///{os.path.join(tmp, 'ops.sqlite3')}")
sq.install()


def check(input: dict, ctx: StepContext) -> dict:
    if input["amount"] < 0:
        raise Fail("negative amount", details={"api_key": "sk-live-123"})
    return {"ok": True, "card": input["card"]}


class Payout(Workflow):
    version = "2"
    trigger = manual("payout", payload={"amount": squidie.field(int),
                                         "card": squidie.field(str, default="4242")})
    steps = [
        step("check", check, output="check"),
        approval_step("sign_off", output="sign_off"),
        step("send", lambda input, ctx: {"sent": True}, output="send"),
    ]
    transitions = [
        transition("check", on="ok", to="sign_off"),
        transition("sign_off", on="ok", to="send"),
        transition("send", on="ok", to="complete"),
    ]


for i in range(5):
    sq.start(Payout, payload={"amount": i * 10}, run_id=f"payout-{i}")
sq.start(Payout, payload={"amount": -1}, run_id="payout-bad")
drain(sq)

# --- list_runs: newest first, keyset pages ------------------------------------------------
page = sq.list_runs(workflow=Payout, limit=2)
seen = [s.run_id for s in page]
while len(page) == 2:
    page = sq.list_runs(workflow=Payout, limit=2, cursor=page[-1].cursor)
    seen += [s.run_id for s in page]
assert len(seen) == 6 and seen[0] == "payout-bad"
failed = sq.list_runs(status="failed")
paused = sq.list_runs(status="paused", workflow="__main__.Payout")   # class or dotted path
print("failed:", [s.run_id for s in failed], "paused:", len(paused))

# --- inspect with history -------------------------------------------------------------------
snap = sq.inspect_run("payout-bad", include_history=True)
print(snap.status, snap.reason, snap.terminal_error["message"])
print("terminal error details:", snap.terminal_error["details"])        # the secret is masked
for a in snap.attempts:
    print("attempt", a["step"], a["attempt_number"], a["status"], a["owner_id"])

# --- explain: reason -> next actions ----------------------------------------------------------
for run_id in ("payout-bad", "payout-1"):
    e = sq.explain_run(run_id)
    print(run_id, e.reason, e.next_actions, "|", e.summary)
    print("  command counts:", e.evidence["command_counts"])

# --- run graph pictures -----------------------------------------------------------------------
graph = sq.inspect_run_graph("payout-1")
print("current:", graph.current_node_ids, "taken:", graph.selected_path)
print(graph.to_mermaid())
with open(os.path.join(tmp, "payout-1.dot"), "w") as f:
    f.write(graph.to_dot())
svg = graph.to_svg()                   # Graphviz when installed, else the pure-Python layout
assert "<svg" in svg and "sign_off" in graph.to_svg(renderer="python")
print("svg bytes:", len(svg))

# --- redaction before a view leaves your trust boundary ---------------------------------------
for scope in ("auditor", "operator", "external"):
    view = redact(sq.inspect_run("payout-1", include_history=True), "someone", scope)
    print(scope, "input:", view.input, "context keys:", sorted(view.context),
          "attempts shown:", len(view.attempts or []))


class RolePolicy:
    def visibility_scope(self, actor: dict, view: object) -> str:
        return actor.get("role", "external")


summaries = redact(sq.list_runs(limit=3), {"role": "operator"}, RolePolicy())
explained = redact(sq.explain_run("payout-bad"), "bot", lambda actor, view: "external")
print("external explanation:", explained.to_dict()["details"])
print("ok")
