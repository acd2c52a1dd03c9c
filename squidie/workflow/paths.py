"""Workflow identity as an importable dotted path, and the way back."""

from __future__ import annotations

import importlib
from typing import Any

from squidie.workflow.quoting import brief

MAX_PATH_LENGTH = 500  # the width of the run catalog's workflow column


def workflow_path(cls: type) -> str:
    """``module.QualName`` of a workflow class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_path(path: str) -> Any:
    """Import the object named by a dotted path (``pkg.mod.Outer.Inner``).

    Raises ``ImportError`` when no prefix of the path is an importable module
    holding the rest as attributes.
    """
    parts = path.split(".") if isinstance(path, str) and len(path) <= MAX_PATH_LENGTH else []
    # Only absolute dotted names of identifiers: no relative imports ("..x"),
    # empty parts, NUL or other text importlib would choke on with other errors.
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ImportError(f"cannot import {brief(path)}: not a dotted path of identifiers")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        return obj
    raise ImportError(f"cannot import {brief(path)}")
