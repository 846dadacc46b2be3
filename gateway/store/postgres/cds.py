"""CDS cards, feedback and token ids in the Postgres store."""

from __future__ import annotations

from typing import Any

__all__ = ["PostgresCds"]


class PostgresCds:
    """Cards, feedback and token ids."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def flush(self) -> None:
        """Write what is kept for writing later."""
