"""Operator read models (run graph, explanations): mixed into ``Squidie``."""

from __future__ import annotations


class ReadsMixin:
    """Operator-facing reads; methods land here."""
