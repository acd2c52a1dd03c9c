"""The public composition point: ``Squidie``, ``connect``, ``configure``."""

from squidie.api.connecting import configure, connect, default, mirrors
from squidie.api.core import Squidie

__all__ = ["Squidie", "configure", "connect", "default", "mirrors"]
