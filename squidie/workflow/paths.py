"""Workflow identity as an importable dotted path, and the way back."""

from __future__ import annotations

import importlib
from typing import Any


def workflow_path(cls: type) -> str:
    """``module.QualName`` of a workflow class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_path(path: str) -> Any:
    """Import the object named by a dotted path (``pkg.mod.Outer.Inner``).

    Raises ``ImportError`` when no prefix of the path is an importable module
    holding the rest as attributes.
    """
    parts = path.split(".")
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
    raise ImportError(f"cannot import {path!r}")
