"""Version 1 of ``tests.orders``: what the previous deploy defined."""

from __future__ import annotations

from squidie import Workflow, approval_step, field, manual, step
from tests.support.workflows_versions import reserve, ship_v1

NAME = "tests.orders"


class OrderV1(Workflow):
    name = NAME
    version = "1"
    trigger = manual("go", payload={"order": field(int)})
    steps = [step("reserve", reserve), step("ship", ship_v1)]


class ApprovedOrderV1(Workflow):
    name = "tests.approved_orders"
    version = "1"
    trigger = manual("go", payload={"order": field(int)})
    steps = [step("reserve", reserve), approval_step("sign_off"), step("ship", ship_v1)]
