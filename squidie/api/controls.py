"""Run controls and signals (resume, approve, reject, cancel, replay, apply_signal,
start_child_run): mixed into :class:`squidie.api.core.Squidie`."""

from __future__ import annotations


class ControlsMixin:
    """Controls over runs; methods land here."""
