"""CDS cards, feedback and token ids in the SQLite store.

One process owns a SQLite store, so the token ids in use are checked in memory (loaded,
unexpired, from ``cds_jti`` on first use) and written behind in batches together with
the issued cards: the CDS request path waits for no fsync. An id claimed but not yet
written when the process dies is forgotten; its token expires within minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence

from canonical.errors import StoreError
from gateway.store.ledger_records import CardRow, FeedbackRow
from gateway.store.ledger_rows import (
    CARD_COLUMNS,
    FEEDBACK_COLUMNS,
    card_args,
    card_from_row,
    feedback_args,
    feedback_from_row,
)
from gateway.store.sqlite.access import SqliteAccess

__all__ = ["SqliteCds"]

log = logging.getLogger(__name__)


class SqliteCds:
    """Cards, feedback and token ids."""

    flush_interval_s = 0.5
    prune_interval_s = 30.0
    max_live_ids = 1_000_000  # ids of unexpired tokens kept; bounded by their 5-minute life

    def __init__(self, store: SqliteAccess) -> None:
        self._store = store
        self._seen: dict[tuple[str, str], float] | None = None
        self._loading: asyncio.Lock | None = None
        self._next_prune = 0.0
        self._prune_before = 0.0  # expired ids to delete from the table at the next flush
        self._ids: list[tuple[str, str, float]] = []
        self._cards: dict[str, CardRow] = {}
        self._flusher: asyncio.Task[None] | None = None

    # -- token ids ------------------------------------------------------------
    async def _load(self, now: float) -> dict[tuple[str, str], float]:
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._seen is None:
                def read(con: sqlite3.Connection) -> list[tuple[str, str, float]]:
                    return con.execute("SELECT iss, jti, exp FROM cds_jti WHERE exp > ?",
                                       (now,)).fetchall()
                self._seen = {(iss, jti): exp for iss, jti, exp in await self._store.read(read)}
            return self._seen

    async def claim_jti(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record a token id until ``exp``; False when it is in use (checked in memory)."""
        seen = self._seen if self._seen is not None else await self._load(now)
        if now >= self._next_prune or len(seen) >= self.max_live_ids:
            self._seen = seen = {k: v for k, v in seen.items() if v > now}
            self._next_prune = now + self.prune_interval_s
            self._prune_before = now
            if len(seen) >= self.max_live_ids:
                raise StoreError("too many live CDS tokens; refusing to forget replay ids")
        key = (iss, jti)
        known = seen.get(key)
        if known is not None and known > now:
            return False
        seen[key] = exp
        self._ids.append((iss, jti, exp))
        self._schedule()
        return True

    # -- cards and feedback -----------------------------------------------------
    async def save_cards(self, rows: Sequence[CardRow]) -> None:
        """Keep issued cards for the next batch write."""
        for row in rows:
            self._cards[row.uuid] = row
        if rows:
            self._schedule()

    async def card(self, uuid: str) -> CardRow | None:
        """One issued card (kept or stored)."""
        kept = self._cards.get(uuid)
        if kept is not None:
            return kept

        def read(con: sqlite3.Connection) -> CardRow | None:
            row = con.execute(f"SELECT {CARD_COLUMNS} FROM cds_cards WHERE uuid = ?",
                              (uuid,)).fetchone()
            return None if row is None else card_from_row(row)
        return await self._store.read(read)

    async def save_feedback(self, rows: Sequence[FeedbackRow]) -> None:
        """Append feedback to each card's history (an identical resend is kept once)."""
        def write(con: sqlite3.Connection) -> None:
            con.executemany(f"INSERT OR IGNORE INTO cds_feedback ({FEEDBACK_COLUMNS}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?)", [feedback_args(f) for f in rows])
        if rows:
            await self._store.write(write)

    async def feedback_history(self, card: str) -> list[FeedbackRow]:
        """Every answer given to one card, in arrival order."""
        def read(con: sqlite3.Connection) -> list[FeedbackRow]:
            return [feedback_from_row(r) for r in con.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM cds_feedback WHERE card = ? ORDER BY id",
                (card,))]
        return await self._store.read(read)

    async def feedback_rows(self) -> list[tuple[CardRow, FeedbackRow | None]]:
        """Every card with its latest feedback (cards kept for writing included)."""
        await self.flush()

        def read(con: sqlite3.Connection) -> list[tuple[CardRow, FeedbackRow | None]]:
            cols = ", ".join(f"c.{c.strip()}" for c in CARD_COLUMNS.split(","))
            fcols = ", ".join(f"f.{c.strip()}" for c in FEEDBACK_COLUMNS.split(","))
            rows = con.execute(f"SELECT {cols}, {fcols} FROM cds_cards c LEFT JOIN cds_feedback"
                               " f ON f.id = (SELECT max(id) FROM cds_feedback WHERE card ="
                               " c.uuid) ORDER BY c.issued_at, c.uuid").fetchall()
            return [(card_from_row(r[:9]), None if r[9] is None else feedback_from_row(r[9:]))
                    for r in rows]
        return await self._store.read(read)

    # -- writing behind -----------------------------------------------------------
    def _schedule(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval_s)
        self._flusher = None
        try:
            await self.flush()
        except StoreError:  # kept for the next flush
            log.exception("could not store CDS cards and token ids; retrying")

    async def flush(self) -> None:
        """Write the kept cards and token ids, and forget expired ids, in one transaction."""
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        ids, self._ids = self._ids, []
        cards = list(self._cards.values())
        prune, self._prune_before = self._prune_before, 0.0
        if not ids and not cards and not prune:
            return

        def write(con: sqlite3.Connection) -> None:
            con.executemany("INSERT OR REPLACE INTO cds_jti (iss, jti, exp) VALUES (?, ?, ?)",
                            ids)
            con.executemany(f"INSERT OR IGNORE INTO cds_cards ({CARD_COLUMNS}) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?, ?)", [card_args(c) for c in cards])
            if prune:
                con.execute("DELETE FROM cds_jti WHERE exp <= ?", (prune,))
        try:
            await self._store.write(write)
        except BaseException:
            self._ids[:0] = ids
            self._prune_before = max(prune, self._prune_before)
            raise
        for c in cards:
            if self._cards.get(c.uuid) is c:
                del self._cards[c.uuid]
