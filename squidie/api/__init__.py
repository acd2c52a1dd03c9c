"""The public composition point: ``Squidie``, ``connect``, ``configure``, and the
module-level functions acting on the default instance."""

from squidie.api.connecting import configure, connect, default
from squidie.api.facade import Squidie

__all__ = ["Squidie", "configure", "connect", "default"]
