"""What the SQLite store's table modules need of it: a reader and a writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

from gateway.store.base import Topic

__all__ = ["SqliteAccess"]

_T = TypeVar("_T")


class SqliteAccess(Protocol):
    """Runs work on the store's connections (implemented by ``SqliteStore``)."""

    async def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the reader connection."""
        ...

    async def write(self, fn: Callable[[sqlite3.Connection], _T],
                    topic: Topic | None = None, *, lazy: bool = False) -> _T:
        """Run ``fn`` in one write transaction; tell the listeners ``topic`` after it
        (``lazy``: without waiting for the disk, for what is safe to redo)."""
        ...

    def changed(self, topic: Topic) -> None:
        """Tell the listeners that ``topic`` changed."""
        ...
