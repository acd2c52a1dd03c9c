"""The exception tree of Squidie.

Every error the public API raises derives from :class:`SquidieError` and carries
a stable ``code`` string that host code can switch on::

    SquidieError (Exception)
    ├── ConfigError                  invalid_config
    │   ├── MissingConfig            missing_config
    │   └── MissingDependency        missing_dependency
    ├── InvalidOption                invalid_option
    ├── InvalidPayload               invalid_payload
    ├── WorkflowDefinitionError      invalid_workflow_spec
    ├── RunNotFound                  not_found
    ├── RunIdConflict                run_id_conflict
    ├── InvalidTransition            invalid_transition
    ├── UnsafeReplay                 unsafe_replay
    ├── IncompatibleDefinition       incompatible_workflow_definition
    ├── JournalConflict              conflict
    ├── MissingScheduleIdempotencyKey missing_schedule_idempotency_key
    ├── InvalidDynamicWork           invalid_dynamic_work
    ├── InvalidSignal                invalid_signal
    ├── LeaseLost                    lease_lost
    └── StorageError                 storage_error

The docstring of each class is its default message.

Warnings Squidie issues derive from :class:`SquidieWarning` (a ``UserWarning``),
so a host can filter them in one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class SquidieError(Exception):
    """A Squidie operation failed."""

    code: ClassVar[str] = "squidie_error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.details: dict[str, Any] = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description: code, message and details."""
        return {"code": self.code, "message": self.message, "details": self.details}


class _ProblemListError(SquidieError):
    """An error that reports every problem found, not only the first."""

    def __init__(self, problems: Iterable[str], message: str | None = None, **details: Any):
        self.problems: list[str] = list(problems)
        head = message or (self.__doc__ or "").strip().splitlines()[0]
        body = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(f"{head}{body}", problems=self.problems, **details)


class ConfigError(_ProblemListError):
    """Squidie is not configured correctly."""

    code = "invalid_config"


class MissingConfig(ConfigError):
    """A setting Squidie needs was never given."""

    code = "missing_config"


class SchemaTooNew(ConfigError):
    """The database holds a newer Squidie schema than this release understands.

    Raised on install, and by a worker's claims and writes once a newer release has
    upgraded the schema under it: from then on this release claims nothing and no
    write of its lands, so it cannot misread what the newer one writes."""

    code = "schema_too_new"


class SchemaTooOld(ConfigError):
    """The database holds an older Squidie schema than this release needs.

    Raised by a worker's claims and writes until the schema is upgraded
    (``sq.install()``, ``squidie install`` or ``squidie.migrations.upgrade``):
    until then this release claims nothing and no write of its lands, so workers
    of the older release that may still run never meet what it writes."""

    code = "schema_too_old"


class MissingDependency(ConfigError):
    """A package or program this feature needs is not installed."""

    code = "missing_dependency"


class InvalidOption(SquidieError):
    """An option passed to a Squidie call is invalid."""

    code = "invalid_option"


class InvalidPayload(_ProblemListError):
    """The trigger payload is invalid."""

    code = "invalid_payload"


class WorkflowDefinitionError(_ProblemListError):
    """The workflow definition is invalid."""

    code = "invalid_workflow_spec"


class RunNotFound(SquidieError):
    """No run exists with that id."""

    code = "not_found"


class RunIdConflict(SquidieError):
    """A run with this run_id already exists with another workflow, trigger or payload."""

    code = "run_id_conflict"


class InvalidTransition(SquidieError):
    """The run is not in a state that allows this operation."""

    code = "invalid_transition"


class UnsafeReplay(SquidieError):
    """Replaying this run is not safe."""

    code = "unsafe_replay"


class IncompatibleDefinition(SquidieError):
    """The workflow definition changed incompatibly since the run started."""

    code = "incompatible_workflow_definition"


class JournalConflict(SquidieError):
    """Another writer appended to this run first."""

    code = "conflict"


class MissingScheduleIdempotencyKey(SquidieError):
    """A cron delivery with idempotency needs a signal_id or a complete intended_window."""

    code = "missing_schedule_idempotency_key"


class InvalidDynamicWork(_ProblemListError):
    """The dynamic work proposal is invalid."""

    code = "invalid_dynamic_work"


class InvalidSignal(_ProblemListError):
    """The signal is malformed."""

    code = "invalid_signal"


class LeaseLost(SquidieError):
    """The worker's lease on this attempt expired or was taken over; its result was rejected."""

    code = "lease_lost"


class StorageError(SquidieError):
    """The database failed while Squidie was reading or writing."""

    code = "storage_error"


class SquidieWarning(UserWarning):
    """Something works now but will not work as expected later (e.g. in another process)."""


__all__ = [
    "ConfigError",
    "IncompatibleDefinition",
    "InvalidDynamicWork",
    "InvalidOption",
    "InvalidPayload",
    "InvalidSignal",
    "InvalidTransition",
    "JournalConflict",
    "LeaseLost",
    "MissingConfig",
    "MissingDependency",
    "MissingScheduleIdempotencyKey",
    "RunIdConflict",
    "RunNotFound",
    "SquidieError",
    "SquidieWarning",
    "StorageError",
    "UnsafeReplay",
    "WorkflowDefinitionError",
]
