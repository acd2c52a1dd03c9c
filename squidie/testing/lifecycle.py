"""``with`` support shared by the things tests start and must not leave behind."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Lifecycle"]


class Lifecycle:
    """A context manager over ``start()`` and ``close()``: entering starts (closing again
    if the start fails half-way), leaving closes."""

    def start(self) -> None:
        """Start it (subclasses say how)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop it and remove what it left (subclasses say how). Idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
