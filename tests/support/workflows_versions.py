"""Step code shared by both versions of the ``tests.orders`` workflow (no workflow
classes here, so a process can import one version without the other)."""

from __future__ import annotations

import os
from typing import Any

from squidie import StepContext


def reserve(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"reserved": input["order"]}


def ship_v1(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"shipped_by": "v1", "ship_pid": os.getpid()}


def ship_v2(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"shipped_by": "v2", "ship_pid": os.getpid()}


def notify(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"notified": True}
