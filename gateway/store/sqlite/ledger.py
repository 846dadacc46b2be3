"""The ledger's tables in the Sqlite store."""

from __future__ import annotations

from typing import Any

__all__ = ["SqliteLedger"]


class SqliteLedger:
    """The ledger's tables."""

    def __init__(self, store: Any) -> None:
        self._store = store
