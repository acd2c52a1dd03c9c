"""The public composition point: ``Squidie``, ``connect``, ``configure``."""

from squidie.api.connecting import configure, connect, default, mirror
from squidie.api.core import Squidie

__all__ = ["Squidie", "configure", "connect", "default", "mirror"]
