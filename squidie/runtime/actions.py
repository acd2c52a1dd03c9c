"""Calling step actions: input resolution, sync and async callables, outcome capture."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from collections.abc import Coroutine
from typing import Any

from squidie.model import ErrorInfo, StepOutcome
from squidie.runtime.routing import is_missing, lookup
from squidie.runtime.scrubbing import redact_text, redact_value
from squidie.workflow import Fail, Retry, StepContext, StepKind, StepSpec
from squidie.workflow.outcomes import MAX_RETRY_DELAY
from squidie.workflow.portable_json import (
    NotPortable,
    copy_json,
    portable_json,
    sanitise_text,
    sanitised_json,
)
from squidie.workflow.quoting import brief

log = logging.getLogger("squidie.workflow")
MAX_PUBLIC = 500  # characters of a step's public_message kept


class MissingInput(Exception):
    """A declared input path is absent from the run state."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"missing input: {', '.join(paths)}")
        self.paths = paths


def resolve_input(step: StepSpec, view: dict[str, Any]) -> dict[str, Any]:
    """What ``step`` receives: the whole view, selected keys, or named paths."""
    if step.input is None:
        return copy_json(view)
    missing: list[str] = []
    out: dict[str, Any] = {}
    if step.input.paths is not None:
        for name, path in step.input.paths:
            value = lookup(view, path)
            if is_missing(value):
                missing.append(f"{name} <- {'.'.join(map(str, path))}")
            else:
                out[name] = copy_json(value)
    else:
        for key in step.input.keys or ():
            if key in view:
                out[key] = copy_json(view[key])
            else:
                missing.append(key)
    if missing:
        raise MissingInput(missing)
    return out


def run_action(step: StepSpec, action: Any, input: dict[str, Any], ctx: StepContext) -> Any:
    """Call the step (built-in, ``Step`` subclass or callable), awaiting coroutines."""
    if step.kind is StepKind.LOG:
        log.log(
            logging.getLevelName((step.level or "info").upper()),
            step.message,
            extra={"run_id": ctx.run_id, "step": ctx.step},
        )
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


def invoke(step: StepSpec, action: Any, input: dict[str, Any], ctx: StepContext) -> StepOutcome:
    """Run step code and return its outcome; whatever the code raises or returns
    becomes a recorded outcome, never an exception in the worker.

    ``BaseException`` is caught too (``SystemExit`` from argparse on bad input,
    ``asyncio.CancelledError``): a worker thread must not die of step code. Only
    :func:`escapes` lets a few through.
    """
    try:
        return ok_outcome(run_action(step, action, input, ctx))
    except BaseException as exc:  # step code is untrusted
        if escapes(exc):
            raise
        return exception_outcome(exc)


def escapes(exc: BaseException) -> bool:
    """Whether ``exc`` must propagate out of step code instead of failing the attempt:
    an interrupt of the process (``KeyboardInterrupt``), a generator closing, or one of
    Squidie's own conditions that step code must not swallow (BaseException-derived
    classes of the ``squidie`` package, such as a lost lease)."""
    if isinstance(exc, KeyboardInterrupt | GeneratorExit):
        return True
    module = getattr(type(exc), "__module__", "") or ""
    return not isinstance(exc, Exception) and module.split(".")[0] == "squidie"


def ok_outcome(result: Any) -> StepOutcome:
    """Outcome of a returned value: ok for a storable dict (or a dataclass, pydantic
    model or registered type that converts to one) or None, else ``invalid_output``.

    The value is checked and converted once here, before anything is written, so
    every backend stores (or refuses) it alike: see
    :mod:`squidie.workflow.portable_json`.
    """
    if result is None:
        result = {}
    if isinstance(result, list | tuple | str | int | float):
        return invalid_output(f"step returned {_type_name(result)}, expected a dict or None")
    try:
        normalised = portable_json(result)
    except Exception as exc:  # a hostile dict subclass may raise anything
        problem = (
            str(exc) if isinstance(exc, NotPortable) else f"{_type_name(exc)} while reading it"
        )
        return invalid_output(f"step output cannot be stored: {problem}")
    if not isinstance(normalised, dict):
        return invalid_output(f"step returned {_type_name(result)}, expected a dict or None")
    return StepOutcome.success(normalised)


def invalid_output(message: str) -> StepOutcome:
    """A returned value that cannot be stored: failed without retries."""
    return failed_outcome(
        _error("InvalidOutput", "invalid_output", message, public="step output cannot be stored"),
        retryable=False,
    )


def failed_outcome(error: ErrorInfo, *, retryable: bool, delay: float | None = None) -> StepOutcome:
    """Outcome of a failed attempt."""
    return StepOutcome.failure(error, retryable=retryable, delay=delay)


def exception_outcome(exc: BaseException) -> StepOutcome:
    """Normalise what a step raised: Retry, Fail, MissingInput, or any exception.

    A ``Retry`` or ``Fail`` that cannot be honoured (a delay that is not a finite
    number of seconds in ``[0, MAX_RETRY_DELAY]``) fails the attempt with code
    ``invalid_outcome``, without retries. Nothing here raises: an exception whose
    ``str()`` fails is recorded by its type alone.
    """
    try:
        return _exception_outcome(exc)
    except BaseException as hostile:  # a hostile __str__ or attribute: still recorded
        if escapes(hostile):
            raise
        return failed_outcome(
            _error(_type_name(exc), "exception", "<unprintable exception>"), retryable=True
        )


def _exception_outcome(exc: BaseException) -> StepOutcome:
    if isinstance(exc, Retry | Fail):
        kind = "Retry" if isinstance(exc, Retry) else "Fail"
        reason = _text(
            getattr(exc, "reason", None), "retry requested" if kind == "Retry" else "failed"
        )
        public = getattr(exc, "public_message", None)
        if isinstance(exc, Retry):
            delay, problem = _retry_delay(getattr(exc, "delay", None))
            if problem is not None:
                return failed_outcome(
                    _error(
                        "InvalidOutcome",
                        "invalid_outcome",
                        f"{problem}; retry reason: {reason}",
                        public="invalid Retry delay",
                    ),
                    retryable=False,
                )
            return failed_outcome(
                _error("Retry", "retry", reason, public=public), retryable=True, delay=delay
            )
        details = redact_value(sanitised_json(getattr(exc, "details", None) or {}))
        return failed_outcome(
            _error("Fail", "fail", reason, public=public, details=details), retryable=False
        )
    if isinstance(exc, MissingInput):
        message = str(exc)  # names declared input paths only: safe for operators
        return failed_outcome(
            _error(
                "MissingInput",
                "missing_input",
                message,
                public=message,
                details={"paths": exc.paths},
            ),
            retryable=False,
        )
    return failed_outcome(_error(_type_name(exc), "exception", _text(exc, "")), retryable=True)


def _retry_delay(delay: Any) -> tuple[float | None, str | None]:
    """``Retry(delay=)`` as seconds, or why it is refused."""
    if delay is None:
        return None, None
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        return None, f"Retry delay must be a number of seconds, got {_type_name(delay)}"
    try:
        seconds = float(delay)
    except (OverflowError, ValueError):
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_RETRY_DELAY:
        return None, (
            f"Retry delay must be between 0 and {MAX_RETRY_DELAY:.0f} seconds, "
            f"got {brief(delay, 40)}"
        )
    return seconds, None


def _error(
    kind: str, code: str, message: str, *, public: Any = None, details: dict[str, Any] | None = None
) -> ErrorInfo:
    """An attempt's error; ``public_message`` only when a usable one was given."""
    usable = isinstance(public, str) and public.strip()
    return ErrorInfo(
        type=kind,
        code=code,
        message=message,
        details=details,
        public_message=redact_text(public[:MAX_PUBLIC]) if usable else None,
    )


def _text(value: Any, default: str) -> str:
    """What a step passed as a reason, or the exception itself, as storable text."""
    if value is None:
        return default
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):
        try:
            return redact_text(str(value))
        except Exception:  # a hostile __str__
            return "<unprintable exception>"
    return redact_text(brief(value, 200))


def _type_name(value: Any) -> str:
    """The class name of ``value``, made storable (classes can be named anything)."""
    return sanitise_text(str(type(value).__name__))[:200]
