"""Calling step actions: input resolution, sync and async callables, outcome capture."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import threading
from collections.abc import Coroutine
from typing import Any

from squidie.runtime.planner import is_missing, lookup
from squidie.runtime.redaction import redact_text, redact_value
from squidie.workflow import Fail, Retry, StepContext, StepKind, StepSpec
from squidie.workflow.portable_json import portable_json

log = logging.getLogger("squidie.workflow")


class MissingInput(Exception):
    """A declared input path is absent from the run state."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"missing input: {', '.join(paths)}")
        self.paths = paths


def resolve_input(step: StepSpec, view: dict[str, Any]) -> dict[str, Any]:
    """What ``step`` receives: the whole view, selected keys, or named paths."""
    if step.input is None:
        return copy.deepcopy(view)
    missing: list[str] = []
    out: dict[str, Any] = {}
    if step.input.paths is not None:
        for name, path in step.input.paths:
            value = lookup(view, path)
            if is_missing(value):
                missing.append(f"{name} <- {'.'.join(map(str, path))}")
            else:
                out[name] = copy.deepcopy(value)
    else:
        for key in step.input.keys or ():
            if key in view:
                out[key] = copy.deepcopy(view[key])
            else:
                missing.append(key)
    if missing:
        raise MissingInput(missing)
    return out


def run_action(step: StepSpec, action: Any, input: dict[str, Any], ctx: StepContext) -> Any:
    """Call the step (built-in, ``Step`` subclass or callable), awaiting coroutines."""
    if step.kind is StepKind.LOG:
        log.log(logging.getLevelName((step.level or "info").upper()), step.message,
                extra={"run_id": ctx.run_id, "step": ctx.step})
        return {}
    if step.kind is StepKind.WAIT:
        return {}
    fn: Any = _callable_of(action)
    result = fn(input, ctx)
    if inspect.iscoroutine(result):
        result = run_coroutine(result)
    return result


def _callable_of(action: Any) -> Any:
    """A ``Step`` subclass gets a fresh instance per attempt; callables are used as is."""
    if inspect.isclass(action):
        instance: Any = action()
        return instance.run
    return action


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion, even when called from inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="squidie-async-step")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def ok_outcome(result: Any) -> dict[str, Any]:
    """Outcome of a returned value: ok for a JSON-serialisable dict or None."""
    if result is None:
        result = {}
    if not isinstance(result, dict):
        return failed_outcome(
            {"type": "InvalidOutput", "code": "invalid_output",
             "message": f"step returned {type(result).__name__}, expected a dict or None"},
            retryable=False,
        )
    try:
        normalised = portable_json(result)
    except ValueError as exc:
        return failed_outcome(
            {"type": "InvalidOutput", "code": "invalid_output",
             "message": f"step output cannot be stored: {exc}"},
            retryable=False,
        )
    return {"ok": True, "output": normalised, "error": None, "retryable": False, "delay": None}


def failed_outcome(
    error: dict[str, Any], *, retryable: bool, delay: float | None = None
) -> dict[str, Any]:
    """Outcome of a failed attempt."""
    return {"ok": False, "output": None, "error": error, "retryable": retryable, "delay": delay}


def exception_outcome(exc: Exception) -> dict[str, Any]:
    """Normalise what a step raised: Retry, Fail, MissingInput, or any exception."""
    if isinstance(exc, Retry):
        return failed_outcome({"type": "Retry", "code": "retry",
                               "message": redact_text(exc.reason)},
                              retryable=True, delay=exc.delay)
    if isinstance(exc, Fail):
        return failed_outcome({"type": "Fail", "code": "fail", "message": redact_text(exc.reason),
                               "details": redact_value(_json_safe(exc.details))},
                              retryable=False)
    if isinstance(exc, MissingInput):
        return failed_outcome({"type": "MissingInput", "code": "missing_input",
                               "message": str(exc), "details": {"paths": exc.paths}},
                              retryable=False)
    return failed_outcome({"type": type(exc).__name__, "code": "exception",
                           "message": redact_text(str(exc))}, retryable=True)


def _json_safe(value: Any) -> Any:
    try:
        return portable_json(json.loads(json.dumps(value, default=repr)))
    except (TypeError, ValueError):
        return redact_text(repr(value))
