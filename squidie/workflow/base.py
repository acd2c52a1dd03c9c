"""The classes authors subclass: :class:`Workflow` and :class:`Step`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from squidie.workflow.compile import CompiledWorkflow, compile_workflow, python_action_resolver
from squidie.workflow.context import StepContext
from squidie.workflow.paths import workflow_path

_defined: dict[str, type[Workflow]] = {}


def defined_workflow(path: str) -> type[Workflow] | None:
    """The workflow class defined in this process under ``path`` (newest wins)."""
    return _defined.get(path)


class Step:
    """Base class for a step action: override :meth:`run`.

    A fresh instance is created for every attempt.
    """

    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any] | None:
        """Do the step's work and return a JSON-serialisable dict (or None)."""
        raise NotImplementedError(f"{type(self).__qualname__}.run is not implemented")


class Workflow:
    """Base class for workflows; subclasses are checked when the class is created.

    Declare ``trigger``, ``steps`` and (optionally) ``transitions`` and ``version``.
    Pass ``abstract=True`` in the class statement for a shared base that is not
    itself a workflow.
    """

    name: ClassVar[str | None] = None
    version: ClassVar[str | None] = None
    trigger: ClassVar[Any] = None
    steps: ClassVar[Sequence[Any]] = ()
    transitions: ClassVar[Sequence[Any]] = ()
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
            resolve_action=python_action_resolver,
            path=workflow_path(cls),
        )
        # Classes defined in functions or notebooks cannot be imported by path:
        # remember them so this process can still resolve its own runs.
        _defined[workflow_path(cls)] = cls

    @classmethod
    def definition(cls) -> CompiledWorkflow:
        """The checked definition: spec, actions, import path and fingerprint."""
        return cls.__squidie__

    @classmethod
    def to_spec(cls) -> dict[str, Any]:
        """The normalised spec as a JSON-safe dict (the format ``start_spec`` accepts)."""
        return cls.__squidie__.spec.to_dict()
