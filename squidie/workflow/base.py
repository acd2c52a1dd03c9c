"""The classes authors subclass: :class:`Workflow` and :class:`Step`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from squidie.errors import WorkflowDefinitionError
from squidie.workflow.compile import CompiledWorkflow, compile_workflow, python_action_resolver
from squidie.workflow.context import StepContext
from squidie.workflow.paths import workflow_path
from squidie.workflow.quoting import brief

_defined: dict[str, type[Workflow]] = {}
# (identity, version) -> class: the versions of each workflow defined side by side.
_versions: dict[tuple[str, str | None], type[Workflow]] = {}


def defined_workflow(path: str) -> type[Workflow] | None:
    """The workflow class defined in this process under ``path`` (newest wins), or
    else the newest class whose identity (``name``) is ``path``."""
    found = _defined.get(path)
    if found is None:
        named = [cls for (identity, _), cls in _versions.items() if identity == path]
        found = named[-1] if named else None
    return found


def defined_version(identity: str, version: str | None) -> type[Workflow] | None:
    """The class defining version ``version`` of workflow ``identity`` in this process."""
    return _versions.get((identity, version))


def defined_versions(identity: str) -> list[str | None]:
    """Every version of workflow ``identity`` defined in this process, oldest first."""
    return [version for (name, version) in _versions if name == identity]


def workflow_identity(cls: type[Workflow]) -> str:
    """A workflow's identity: its ``name`` when the class sets one, else its dotted
    path. Runs are catalogued under it; versions of one identity live side by side."""
    return cls.name if cls.name is not None else workflow_path(cls)


def _register(cls: type[Workflow]) -> None:
    """Remember ``cls`` by path and by (identity, version); the same identity and
    version defined again elsewhere with another definition is an error."""
    path, compiled = workflow_path(cls), cls.__squidie__
    key = (workflow_identity(cls), compiled.spec.version)
    other = _versions.get(key)
    if (
        other is not None
        and workflow_path(other) != path
        and other.__squidie__.fingerprint != compiled.fingerprint
    ):
        raise WorkflowDefinitionError(
            [
                f"workflow {brief(key[0])} version {brief(key[1])} is already defined by "
                f"{workflow_path(other)} with another definition (fingerprint "
                f"{other.__squidie__.fingerprint[:12]} -> {compiled.fingerprint[:12]}); "
                "give the new definition its own version"
            ]
        )
    # Classes defined in functions or notebooks cannot be imported by path:
    # remember them so this process can still resolve its own runs.
    _defined[path] = cls
    _versions.pop(key, None)  # re-inserted last: the newest definition of a name wins
    _versions[key] = cls


class Step:
    """Base class for a step action: override :meth:`run`.

    A fresh instance is created for every attempt.
    """

    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any] | None:
        """Do the step's work and return a JSON-serialisable dict (or None)."""
        raise NotImplementedError(f"{type(self).__qualname__}.run is not implemented")


class Workflow:
    """Base class for workflows; subclasses are checked when the class is created.

    Declare ``trigger``, ``steps`` and (optionally) ``transitions``, ``name`` and
    ``version``. Several versions of one ``name`` may be defined side by side (as
    differently named classes): each run executes on the version it started with.
    Pass ``abstract=True`` in the class statement for a shared base that is not
    itself a workflow.
    """

    name: ClassVar[str | None] = None
    version: ClassVar[str | None] = None
    trigger: ClassVar[Any] = None
    steps: ClassVar[Sequence[Any]] = ()
    transitions: ClassVar[Sequence[Any]] = ()
    #: Seconds (or a timedelta): a run still not terminal this long after it started
    #: is cancelled (audit ``cancelled`` with ``metadata.reason = "run_timeout"``).
    run_timeout: ClassVar[Any] = None
    __squidie__: ClassVar[CompiledWorkflow]

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        cls.__squidie__ = compile_workflow(
            name=cls.name or cls.__name__,
            version=cls.version,
            trigger=cls.trigger,
            steps=cls.steps,
            transitions=cls.transitions,
            run_timeout=cls.run_timeout,
            resolve_action=python_action_resolver,
            path=workflow_path(cls),
        )
        _register(cls)

    @classmethod
    def definition(cls) -> CompiledWorkflow:
        """The checked definition: spec, actions, import path and fingerprint."""
        return cls.__squidie__

    @classmethod
    def to_spec(cls) -> dict[str, Any]:
        """The normalised spec as a JSON-safe dict (the format ``start_spec`` accepts)."""
        return cls.__squidie__.spec.to_dict()
