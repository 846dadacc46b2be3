"""What the PostgreSQL store's table modules need of it: the pool, topic locks, NOTIFY."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.store.base import Topic

__all__ = ["PostgresAccess"]


class PostgresAccess(Protocol):
    """The shared store's connections and change announcements (``PostgresStore``)."""

    @property
    def pool(self) -> Any:
        """The asyncpg pool (search_path set to the store's schema)."""
        ...

    async def lock_topic(self, con: Any, topic: Topic) -> int:
        """Serialise writers of ``topic`` for the transaction; returns its new version."""
        ...

    async def notify(self, con: Any, topic: Topic) -> None:
        """Announce ``topic`` to every replica when the transaction commits."""
        ...

    def changed(self, topic: Topic) -> None:
        """Tell this process's listeners (after the commit)."""
        ...
