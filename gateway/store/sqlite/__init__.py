"""The SQLite store: one file for a single gateway."""

from gateway.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
