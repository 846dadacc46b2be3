"""asyncpg, when installed (the ``[pg]`` extra), and the errors that mean the database failed."""

from __future__ import annotations

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the [pg] extra is not installed
    asyncpg = None

__all__ = ["DB_ERRORS", "asyncpg"]

DB_ERRORS: tuple[type[BaseException], ...] = (OSError,) if asyncpg is None else (
    OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

