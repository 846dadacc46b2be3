"""The ledger's tables in the Postgres store."""

from __future__ import annotations

from typing import Any

__all__ = ["PostgresLedger"]


class PostgresLedger:
    """The ledger's tables."""

    def __init__(self, store: Any) -> None:
        self._store = store
