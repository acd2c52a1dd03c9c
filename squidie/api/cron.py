"""Cron payload delivery (``perform``): mixed into ``Squidie``."""

from __future__ import annotations


class CronMixin:
    """Cron delivery; methods land here."""
