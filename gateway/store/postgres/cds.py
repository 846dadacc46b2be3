"""CDS cards, feedback and token ids in the PostgreSQL store, shared by every replica.

A token id is claimed with one ``INSERT … ON CONFLICT`` (a row whose token has expired
may be claimed again), so a token used on one replica is refused on every other;
expired ids are deleted now and then. Issued cards are written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from gateway.store.postgres.access import PostgresAccess
from gateway.store.postgres.driver import DB_ERRORS

__all__ = ["PostgresCds"]

log = logging.getLogger(__name__)

_CARD_MARKS = ", ".join(f"${i}" for i in range(1, 10))
_FEEDBACK_MARKS = ", ".join(f"${i}" for i in range(1, 8))


class PostgresCds:
    """Cards, feedback and token ids."""

    flush_interval_s = 0.5
    prune_interval_s = 60.0

    def __init__(self, store: PostgresAccess) -> None:
        self._store = store
        self._cards: dict[str, CardRow] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._next_prune = 0.0
        self._pruning: set[asyncio.Task[None]] = set()

    async def claim_jti(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record a token id until ``exp``; False when any replica has it in use."""
        try:
            claimed = await self._store.pool.fetchval(
                "INSERT INTO cds_jti (iss, jti, exp) VALUES ($1, $2, $3) ON CONFLICT (iss, jti)"
                " DO UPDATE SET exp = excluded.exp WHERE cds_jti.exp <= $4 RETURNING true",
                iss, jti, exp, now)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot record the token id: {exc}") from exc
        if now >= self._next_prune:
            self._next_prune = now + self.prune_interval_s
            task = asyncio.get_running_loop().create_task(self._prune(now))
            self._pruning.add(task)
            task.add_done_callback(self._pruning.discard)
        return claimed is not None

    async def _prune(self, now: float) -> None:
        try:
            await self._store.pool.execute("DELETE FROM cds_jti WHERE exp <= $1", now)
        except DB_ERRORS as exc:  # the next prune deletes them
            log.warning("could not delete expired CDS token ids: %s", exc)

    async def save_cards(self, rows: Sequence[CardRow]) -> None:
        """Keep issued cards for the next batch write."""
        for row in rows:
            self._cards[row.uuid] = row
        if rows and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval_s)
        self._flusher = None
        try:
            await self.flush()
        except StoreError:  # kept for the next flush
            log.exception("could not store issued CDS cards; retrying")

    async def card(self, uuid: str) -> CardRow | None:
        """One issued card (kept here, or stored by any replica).

        A card another replica issued a moment ago may still wait for its batch write
        there: a card not found is looked for again until two batch intervals passed.
        """
        kept = self._cards.get(uuid)
        if kept is not None:
            return kept
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.flush_interval_s
        while True:
            found = await self._stored_card(uuid)
            if found is not None or loop.time() >= deadline:
                return found
            await asyncio.sleep(self.flush_interval_s / 5)

    async def _stored_card(self, uuid: str) -> CardRow | None:
        try:
            row = await self._store.pool.fetchrow(
                f"SELECT {CARD_COLUMNS} FROM cds_cards WHERE uuid = $1", uuid)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read the card: {exc}") from exc
        return None if row is None else card_from_row(row)

    async def save_feedback(self, rows: Sequence[FeedbackRow]) -> None:
        """Append feedback to each card's history (an identical resend is kept once)."""
        if not rows:
            return
        try:
            async with self._store.pool.acquire() as con, con.transaction():
                await con.executemany(f"INSERT INTO cds_feedback ({FEEDBACK_COLUMNS})"
                                      f" VALUES ({_FEEDBACK_MARKS}) ON CONFLICT DO NOTHING",
                                      [feedback_args(f) for f in rows])
        except DB_ERRORS as exc:
            raise StoreError(f"feedback not stored: {exc}") from exc

    async def feedback_history(self, card: str) -> list[FeedbackRow]:
        """Every answer given to one card, in arrival order."""
        try:
            rows = await self._store.pool.fetch(
                f"SELECT {FEEDBACK_COLUMNS} FROM cds_feedback WHERE card = $1 ORDER BY id", card)
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read CDS feedback: {exc}") from exc
        return [feedback_from_row(r) for r in rows]

    async def feedback_rows(self) -> list[tuple[CardRow, FeedbackRow | None]]:
        """Every card with its latest feedback (this replica's unwritten cards included)."""
        await self.flush()
        cols = ", ".join(f"c.{c.strip()}" for c in CARD_COLUMNS.split(","))
        fcols = ", ".join(f"f.{c.strip()}" for c in FEEDBACK_COLUMNS.split(","))
        try:
            rows = await self._store.pool.fetch(
                f"SELECT {cols}, {fcols} FROM cds_cards c LEFT JOIN cds_feedback f"
                " ON f.id = (SELECT max(id) FROM cds_feedback WHERE card = c.uuid)"
                " ORDER BY c.issued_at, c.uuid")
        except DB_ERRORS as exc:
            raise StoreError(f"cannot read CDS feedback: {exc}") from exc
        return [(card_from_row(r[:9]), None if r[9] is None else feedback_from_row(r[9:]))
                for r in rows]

    async def flush(self) -> None:
        """Write the kept cards."""
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._pruning:
            await asyncio.gather(*self._pruning, return_exceptions=True)
        cards = list(self._cards.values())
        if not cards:
            return
        try:
            await self._store.pool.executemany(
                f"INSERT INTO cds_cards ({CARD_COLUMNS}) VALUES ({_CARD_MARKS})"
                " ON CONFLICT DO NOTHING", [card_args(c) for c in cards])
        except DB_ERRORS as exc:
            raise StoreError(f"issued cards not stored: {exc}") from exc
        for c in cards:
            if self._cards.get(c.uuid) is c:
                del self._cards[c.uuid]
