"""SQL for operator queries over the outbox, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import OutboxQuery

__all__ = ["STATE_CODES", "STATE_NAMES", "outbox_where"]

STATE_CODES = {"pending": 0, "delivered": 1, "dead": 2}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}


def outbox_where(query: OutboxQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A WHERE clause over ``outbox o`` for ``query``; ``mark(n)`` spells placeholder n.

    Raises:
        ValueError: an unknown state name.
    """
    args: list[Any] = []

    def p(value: Any) -> str:
        args.append(value)
        return mark(len(args))

    unknown = set(query.states) - set(STATE_CODES)
    if unknown:
        raise ValueError(f"unknown outbox state(s) {sorted(unknown)}; use {sorted(STATE_CODES)}")
    where = []
    if query.states:
        where.append(f"o.state IN ({', '.join(p(STATE_CODES[s]) for s in query.states)})")
    if query.ids:
        where.append(f"o.id IN ({', '.join(p(i) for i in query.ids)})")
    if query.destination:
        where.append(f"o.destination = {p(query.destination)}")
    if query.hospital_id:
        where.append(f"o.hospital_id = {p(query.hospital_id)}")
    if query.streams:
        where.append(f"o.stream IN ({', '.join(p(s) for s in query.streams)})")
    if query.since is not None:
        where.append(f"o.created_at >= {p(query.since)}")
    if query.until is not None:
        where.append(f"o.created_at < {p(query.until)}")
    return (" AND ".join(where) or "TRUE"), args
