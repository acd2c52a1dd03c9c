"""Version 2 of ``tests.orders``: the new deploy (ships differently, then notifies)."""

from __future__ import annotations

from squidie import Workflow, approval_step, field, manual, step
from tests.support.workflows_versions import notify, reserve, ship_v2

NAME = "tests.orders"


class Order(Workflow):
    name = NAME
    version = "2"
    trigger = manual("go", payload={"order": field(int)})
    steps = [step("reserve", reserve), step("ship", ship_v2), step("notify", notify)]


class ApprovedOrder(Workflow):
    name = "tests.approved_orders"
    version = "2"
    trigger = manual("go", payload={"order": field(int)})
    steps = [
        step("reserve", reserve),
        approval_step("sign_off"),
        step("ship", ship_v2),
        step("notify", notify),
    ]
