"""What an attempt of a step ended with: a ``StepOutcome`` and, on failure, its
``ErrorInfo``. Both convert to and from the JSON the journal stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """Why an attempt (or a run) failed.

    ``type`` names what was raised (``Retry``, ``Fail``, an exception class), ``code``
    says what kind of failure it is (``retry``, ``fail``, ``exception``,
    ``invalid_output``, ``step_timeout``...), ``message`` is the internal text and
    ``public_message`` what a step chose to show outside the trusted boundary.
    Keys this release does not know (written by a newer one) are kept in ``extra``.
    """

    type: str
    code: str
    message: str
    public_message: str | None = None
    details: JsonDict | None = None
    extra: JsonDict = field(default_factory=dict)

    def to_dict(self) -> JsonDict:
        """The stored form (keys left out when empty, as the journal always had it)."""
        out: JsonDict = {"type": self.type, "code": self.code, "message": self.message}
        if self.public_message is not None:
            out["public_message"] = self.public_message
        if self.details is not None:
            out["details"] = self.details
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: JsonDict) -> ErrorInfo:
        """Read a stored error; missing texts read as empty, unknown keys are kept."""
        known = {"type", "code", "message", "public_message", "details"}
        return cls(
            type=str(data.get("type") or ""),
            code=str(data.get("code") or ""),
            message=str(data.get("message") or ""),
            public_message=data.get("public_message"),
            details=data.get("details"),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    """The result of one attempt: ``ok`` with an ``output``, or an ``error`` that may
    be ``retryable`` (after ``delay`` seconds, when the step asked for one)."""

    ok: bool
    output: JsonDict | None = None
    error: ErrorInfo | None = None
    retryable: bool = False
    delay: float | None = None

    @classmethod
    def success(cls, output: JsonDict) -> StepOutcome:
        """An attempt that returned ``output``."""
        return cls(ok=True, output=output)

    @classmethod
    def failure(
        cls, error: ErrorInfo, *, retryable: bool, delay: float | None = None
    ) -> StepOutcome:
        """An attempt that failed with ``error``."""
        return cls(ok=False, error=error, retryable=retryable, delay=delay)

    def to_dict(self) -> JsonDict:
        """The stored form (the keys of an ``attempt_finished`` fact)."""
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error.to_dict() if self.error is not None else None,
            "retryable": self.retryable,
            "delay": self.delay,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> StepOutcome:
        """Read the stored form."""
        error = data.get("error")
        return cls(
            ok=bool(data.get("ok")),
            output=data.get("output"),
            error=ErrorInfo.from_dict(error) if isinstance(error, dict) else None,
            retryable=bool(data.get("retryable")),
            delay=data.get("delay"),
        )
