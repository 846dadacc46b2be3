"""Crosswalk and national-catalog operations of a running gateway (对码 workbench).

The HTTP API (:mod:`gateway.crosswalk.http`) and through it the CLI call this service.
Every change is decided on the process's current crosswalk, stored with its audit record
in the deployment's store, and only then applied through the
:class:`~gateway.crosswalk.holder.CrosswalkHolder`, which releases the held events it
now maps. Suggestions come from the latest national catalog versions in the store and
are never applied by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from canonical.errors import ConfigError, GatewayError, StoreError
from canonical.model import CHINA_TZ, Line
from codes import (
    CatalogDiff,
    CatalogEntry,
    CatalogImport,
    CatalogKind,
    CatalogVersion,
    CodeKind,
    WithdrawnAlert,
    diff,
    import_catalog_file,
    kind_of,
    version_from_import,
    withdrawn_mapped,
)
from codes.catalog_files import VersionInfo
from codes.catalog_search import CatalogHit, search_catalog
from gateway.crosswalk.holder import CrosswalkHolder
from gateway.store.base import Store, Topic, UnmappedItem
from gateway.store.state import AuditQuery, StoredAudit
from mappings.changes import (
    AuditRecord,
    apply_import,
    create_entry,
    delete_entry,
    replay_records,
    update_entry,
)
from mappings.crosswalk import Crosswalk
from mappings.entry import CrosswalkEntry, CrosswalkEntryError, EntryKey
from mappings.files import read_csv
from mappings.products import ProductFacts, product_facts
from mappings.suggest import (
    HospitalHabits,
    HospitalItem,
    Suggestion,
    SuggestionIndex,
    build_index,
    learn_habits,
)

__all__ = [
    "CONFIG_IMPORT_USER",
    "CatalogImportResult",
    "ChangeResult",
    "Conflict",
    "Conversion",
    "MappingService",
    "NotFound",
    "QueueItem",
    "propose_conversion",
]

log = logging.getLogger(__name__)

CONFIG_IMPORT_USER = "config-import"
_HELD_SCAN = 5000  # held events read to describe queued items (unit, 批准文号, 本位码)


class NotFound(GatewayError, LookupError):
    """The entry, item or catalog version asked for does not exist."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


class Conflict(GatewayError):
    """The request contradicts the current state (a version label taken, a code not proposed)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What one change did: its audit records (with ids) and the held events it released."""

    audit: tuple[StoredAudit, ...]
    released: int
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class CatalogImportResult:
    """A stored catalog version, what the import skipped, and what changed since the last one."""

    version: VersionInfo
    kind: CatalogKind
    imported: CatalogImport
    diff: CatalogDiff | None
    alerts: tuple[WithdrawnAlert, ...]


@dataclass(frozen=True, slots=True)
class Conversion:
    """A proposed unit conversion: national units per hospital unit, and the two units."""

    factor: Decimal
    hospital_unit: str
    national_unit: str
    reason: str


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One unmapped item with its ranked suggestions."""

    item: UnmappedItem
    unit: str
    suggestions: tuple[tuple[Suggestion, Conversion | None], ...]


class _KnownCodes:
    """A national code must be listed in the latest catalog of its kind, once one is imported."""

    def __init__(self, catalogs: dict[CatalogKind, CatalogVersion | None]) -> None:
        self.catalogs = catalogs

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str):
            return False
        kind = kind_of(code)
        catalog_kind = CatalogKind.CONSUMABLE if kind is CodeKind.CONSUMABLE else CatalogKind.DRUG
        catalog = self.catalogs.get(catalog_kind)
        return catalog is None or code in catalog


_PIECE_UNITS = frozenset("片粒支袋丸贴枚瓶")
_PACK_COUNT = re.compile(r"(\d+)\s*([片粒支袋丸贴枚瓶])\s*[/／]\s*(\S)")


def propose_conversion(hospital_unit: str, specification: str,
                       catalog: CatalogEntry) -> Conversion | None:
    """Propose the unit conversion for mapping an item to a catalog entry, when it is clear.

    A hospital counting in the catalog's minimum package (盒) gets the package's count
    of minimum units (14 tablets); one counting in tablets gets 1. Anything else is left
    for a person to state.
    """
    unit = hospital_unit.strip()
    count = catalog.min_pack_quantity.strip()
    if unit and unit == catalog.min_pack_unit.strip() and count.isdigit() and int(count) > 0:
        m = _PACK_COUNT.search(specification)
        national = m.group(2) if m and m.group(3) == unit and m.group(1) == count else ""
        return Conversion(Decimal(count), unit, national,
                          f"1 {unit} = {count} (目录最小包装数量)")
    if unit in _PIECE_UNITS and unit != catalog.min_pack_unit.strip():
        return Conversion(Decimal(1), unit, unit, f"院内按{unit}计量")
    return None


def _item_key(item: UnmappedItem) -> tuple[str, str]:
    return (item.hospital_id, item.item_code)


# releases the held events of these hospitals that the current crosswalk maps; how many
Release = Callable[[frozenset[str]], Awaitable[int]]


async def _nothing() -> None:
    return None


async def _release_nothing(hospitals: frozenset[str]) -> int:
    return 0


class MappingService:
    """The crosswalk and catalogs of one gateway; every change is audited and persisted first.

    The crosswalk it reads and changes is the process's one :class:`CrosswalkHolder`; a
    change is decided on the holder's crosswalk, stored only if no other change was
    stored since (else it is decided again on the newer one), applied through the holder,
    and then the held events it maps are released (``release``) — by the replica that
    made the change, so that its answer says how many.
    """

    def __init__(self, store: Store, holder: CrosswalkHolder,
                 *, clock: Callable[[], datetime] = lambda: datetime.now(CHINA_TZ),
                 release: Release = _release_nothing) -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.release = release
        self._lock = asyncio.Lock()
        self._catalog_lock = asyncio.Lock()
        # stored versions by (kind, label, imported_at): a replaced label is another key
        self._loaded: dict[tuple[CatalogKind, str, datetime], CatalogVersion] = {}
        # each kind's version list, until the store says a catalog was stored
        self._versions: dict[CatalogKind, list[VersionInfo]] = {}
        self._index: tuple[tuple[str, ...], SuggestionIndex] | None = None
        # prescription-only and manufacturer by national code, from the latest catalogs:
        # what mapping fills in when a message leaves them out
        self.products: ProductFacts = {}
        # run after a catalog version arrived (here or from another replica) and
        # ``products`` was rebuilt: releases the held events it completes
        self.on_catalog: Callable[[], Awaitable[object]] = _nothing
        self._catalog_tasks: set[asyncio.Task[None]] = set()
        self._importing = 0

    @property
    def crosswalk(self) -> Crosswalk:
        """The current crosswalk."""
        return self.holder.current

    async def seed(self, seed_csv: Path) -> int:
        """Import ``seed_csv`` if the crosswalk never held an entry (the first start).

        Returns:
            How many entries were imported (0 when the store already had a crosswalk).

        Raises:
            ConfigError: the CSV is malformed (every problem listed).
        """
        if not await self.store.crosswalk.is_new():
            log.info("crosswalk: the store is the source of truth; %s is not read again",
                     seed_csv)
            return 0
        try:
            entries = read_csv(Path(seed_csv))
            new, records = apply_import(self.crosswalk, entries, user=CONFIG_IMPORT_USER,
                                      at=self.clock(), known_codes=await self.known_codes(),
                                      note=f"first start: imported {seed_csv}")
        except CrosswalkEntryError as exc:
            raise ConfigError([f"crosswalk.csv: {p}" for p in exc.problems]) from None
        base = self.holder.audit_id
        # nothing if another replica sharing the store seeded it meanwhile
        _, stored = await self.store.crosswalk.change(
            base, lambda missed: () if missed else records)
        if not stored:
            log.info("crosswalk: seeded by another gateway sharing the store")
            await self.holder.refresh()
            return 0
        await self.holder.advance(base, new, stored[-1].id,
                                  frozenset(r.hospital_id for r in records))
        log.info("crosswalk: imported %d entries from %s", len(records), seed_csv)
        return len(records)

    # --- the crosswalk -------------------------------------------------------------

    def search(self, *, hospital: str | None = None, query: str = "",
               national_code: str | None = None, day: date | None = None) -> list[CrosswalkEntry]:
        """Entries by hospital, item and start date, filtered.

        ``query`` matches item code, item name or national code (case-insensitive substring);
        ``day`` keeps only entries valid on that day.
        """
        q = query.strip().lower()
        found = []
        for e in self.crosswalk:
            if hospital and e.hospital_id != hospital:
                continue
            if national_code and e.national_code != national_code:
                continue
            if day is not None and not e.valid_on(day):
                continue
            if q and q not in e.item_code.lower() and q not in e.item_name.lower() \
                    and q not in e.national_code.lower():
                continue
            found.append(e)
        found.sort(key=lambda e: (e.hospital_id, e.item_code, e.valid_from or date.min))
        return found

    def get(self, key: EntryKey) -> CrosswalkEntry:
        """The entry with this key.

        Raises:
            NotFound: no such entry (the item's ranges are named).
        """
        entry = self.crosswalk.get(key)
        if entry is None:
            hospital, item, valid_from = key
            ranges = self.crosswalk.ranges(hospital, item)
            if not ranges:
                raise NotFound([f"{hospital}/{item}: no crosswalk entry"])
            starts = ", ".join(e.valid_from.isoformat() if e.valid_from else "(none)"
                               for e in ranges)
            since = f"starting {valid_from}" if valid_from else "without a start date"
            raise NotFound([f"{hospital}/{item}: no entry {since}; pass valid_from= one of "
                            f"{starts}"])
        return entry

    async def _commit(
        self, change: Callable[[Crosswalk, Any], tuple[Crosswalk, Sequence[AuditRecord]]],
    ) -> ChangeResult:
        known = await self.known_codes()
        async with self._lock:
            base, start = self.holder.audit_id, self.crosswalk
            decided: list[Crosswalk] = []

            def decide(missed: list[StoredAudit]) -> Sequence[AuditRecord]:
                # on top of the changes other replicas stored since this one last caught
                # up: the store holds the crosswalk's lock while this runs
                current = replay_records(start, (a.record for a in missed))
                new, records = change(current, known)
                decided.append(new)
                return records

            missed, stored = await self.store.crosswalk.change(base, decide)
            hospitals = frozenset(a.record.hospital_id for a in stored)
            if stored:
                await self.holder.advance(base, decided[-1], stored[-1].id,
                                          hospitals | {a.record.hospital_id for a in missed})
            elif missed:
                await self.holder.refresh()
        released = await self.release(hospitals) if stored else 0
        return ChangeResult(tuple(stored), released)

    async def create(self, entry: CrosswalkEntry, *, user: str, note: str = "") -> ChangeResult:
        """Add an entry (audited); held events it maps are released.

        Raises:
            CrosswalkEntryError: the entry is invalid or overlaps another range of the item.
        """
        return await self._commit(lambda cw, known: _one(create_entry(
            cw, entry, user=user, at=self.clock(), known_codes=known, note=note)))

    async def update(self, key: EntryKey, after: CrosswalkEntry, *, user: str,
                     note: str = "") -> ChangeResult:
        """Replace the entry ``key`` by ``after`` (audited).

        Raises:
            NotFound: no such entry.
            CrosswalkEntryError: ``after`` is invalid, unchanged or overlaps.
        """
        self.get(key)
        return await self._commit(lambda cw, known: _one(update_entry(
            cw, key, after, user=user, at=self.clock(), known_codes=known, note=note)))

    async def delete(self, key: EntryKey, *, user: str, note: str = "") -> ChangeResult:
        """Remove the entry ``key`` (audited); its item's next lines are held again.

        Raises:
            NotFound: no such entry.
            CrosswalkEntryError: no user named.
        """
        self.get(key)
        return await self._commit(lambda cw, known: _one(delete_entry(
            cw, key, user=user, at=self.clock(), note=note)))

    async def import_entries(self, entries: Sequence[CrosswalkEntry], *, user: str,
                             note: str = "") -> ChangeResult:
        """Create and update entries from a file, all or nothing (audited per entry).

        Raises:
            CrosswalkEntryError: with every refused entry's problems; nothing changed.
        """
        result = await self._commit(lambda cw, known: apply_import(
            cw, entries, user=user, at=self.clock(), known_codes=known, note=note))
        return ChangeResult(result.audit, result.released, len(entries) - len(result.audit))

    async def audit(self, query: AuditQuery) -> list[StoredAudit]:
        """Audit records, newest first."""
        return await self.store.crosswalk.audit(query)

    def mapped_items(self, day: date | None = None) -> dict[str, list[str]]:
        """National code → "hospital/item" of the entries still in force on ``day`` or later."""
        today = day or self.clock().date()
        out: dict[str, list[str]] = {}
        for e in self.crosswalk:
            if e.valid_to is None or e.valid_to >= today:
                out.setdefault(e.national_code, []).append(f"{e.hospital_id}/{e.item_code}")
        return out

    # --- national catalogs ---------------------------------------------------------

    async def _version(self, kind: CatalogKind, info: VersionInfo) -> CatalogVersion:
        key = (kind, info.version, info.imported_at)
        found = self._loaded.get(key)
        if found is None:
            found = await self.store.catalogs.load(kind, info.version)
            if len(self._loaded) >= 4:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = found
        return found

    def on_change(self, topic: Topic) -> None:
        """Store listener: a catalog version was stored (here or by another replica)."""
        if topic is Topic.CATALOG:
            self._versions.clear()
            if self._importing:
                return  # this process's own import: it applies the version when done
            task = asyncio.get_running_loop().create_task(self._catalog_arrived())
            self._catalog_tasks.add(task)
            task.add_done_callback(self._catalog_tasks.discard)

    async def load_products(self) -> int:
        """Rebuild :attr:`products` from the latest catalog of each kind; how many codes
        give a fact."""
        async with self._catalog_lock:
            latest = [v for v in (await self._latest()).values() if v is not None]
        loop = asyncio.get_running_loop()
        facts: dict[str, tuple[bool | None, str]] = {}
        for version in latest:
            # a pass over a whole catalog: off the event loop
            facts.update(await loop.run_in_executor(None, product_facts,
                                                    version.entries.values()))
        self.products = facts
        return len(facts)

    async def _catalog_arrived(self) -> None:
        try:
            await self.load_products()
            await self.on_catalog()
        except Exception:  # the next catalog, or a restart, loads them
            log.exception("could not apply a new catalog's product facts")

    async def _kind_versions(self, kind: CatalogKind) -> list[VersionInfo]:
        found = self._versions.get(kind)
        if found is None:
            found = self._versions[kind] = await self.store.catalogs.versions(kind)
        return found

    async def _latest(self) -> dict[CatalogKind, CatalogVersion | None]:
        latest: dict[CatalogKind, CatalogVersion | None] = {}
        for kind in CatalogKind:
            versions = await self._kind_versions(kind)
            latest[kind] = await self._version(kind, versions[-1]) if versions else None
        return latest

    async def search_catalogs(self, query: str, kind: CatalogKind | None = None,
                              limit: int = 50) -> list[tuple[CatalogVersion, CatalogHit]]:
        """Codes of the latest catalogs matching ``query`` (code, 本位码, approval number,
        names, maker), best first, with the version each comes from."""
        loop = asyncio.get_running_loop()
        found: list[tuple[CatalogVersion, CatalogHit]] = []
        for k, version in (await self._latest()).items():
            if version is None or (kind is not None and k is not kind):
                continue
            # a scan of a whole catalog: off the event loop
            hits = await loop.run_in_executor(None, search_catalog, version.entries.values(),
                                              query, limit)
            found += [(version, h) for h in hits]
        found.sort(key=lambda vh: (vh[1].rank, vh[1].entry.code))
        return found[:limit]

    async def known_codes(self) -> _KnownCodes:
        """The latest catalogs as a container of national codes (codes of a kind with no
        catalog imported are all accepted)."""
        async with self._catalog_lock:
            return _KnownCodes(await self._latest())

    async def versions(self) -> dict[CatalogKind, list[VersionInfo]]:
        """Stored catalog versions per kind, oldest first."""
        return {kind: list(await self._kind_versions(kind)) for kind in CatalogKind}

    async def import_catalog(self, path: Path, *, version: str, kind: CatalogKind | None,
                             source: str, replace: bool = False) -> CatalogImportResult:
        """Import a catalog file as a new version, compare it with the previous one.

        Raises:
            CatalogError: the file is not a catalog, or the label is unusable.
            Conflict: the label is taken (and ``replace`` is false).
        """
        loop = asyncio.get_running_loop()
        # the store tells this process of its own version too: applied below, once
        self._importing += 1
        try:
            async with self._catalog_lock:
                imported = await loop.run_in_executor(
                    None, lambda: import_catalog_file(path, kind=kind))
                existing = await self.store.catalogs.versions(imported.kind)
                self._versions.pop(imported.kind, None)
                if not replace and any(v.version == version for v in existing):
                    raise Conflict([f"{imported.kind} catalog version {version!r} exists; "
                                    "choose another label or pass replace=1"])
                previous = next((v for v in reversed(existing) if v.version != version), None)
                new = version_from_import(imported, version, imported_at=self.clock(),
                                          source=source)
                info = await self.store.catalogs.save(new)
                self._versions.pop(imported.kind, None)
                self._loaded[(imported.kind, info.version, info.imported_at)] = new
                change = None
                alerts: list[WithdrawnAlert] = []
                if previous is not None:
                    old = await self._version(imported.kind, previous)
                    mapped = self.mapped_items()
                    change, alerts = await loop.run_in_executor(None, lambda: _compare(old, new,
                                                                                       mapped))
        finally:
            self._importing -= 1
        result = CatalogImportResult(info, imported.kind, imported, change, tuple(alerts))
        for alert in result.alerts:
            log.warning("catalog %s: %s", result.version.version, alert.message)
        # events held for a fact only the catalog gives (rx_flag) may go now; other
        # replicas hear of the version from the store and do the same
        await self._catalog_arrived()
        return result

    async def diff(self, kind: CatalogKind, old: str, new: str) -> CatalogDiff:
        """The difference between two stored versions of one kind.

        Raises:
            NotFound: a version is not stored.
        """
        async with self._catalog_lock:
            stored = {v.version: v for v in await self.store.catalogs.versions(kind)}
            missing = [label for label in (old, new) if label not in stored]
            if missing:
                raise NotFound([f"no {kind} catalog version {label!r} is stored"
                                for label in missing])
            a = await self._version(kind, stored[old])
            b = await self._version(kind, stored[new])
        return await asyncio.get_running_loop().run_in_executor(None, lambda: diff(a, b))

    async def withdrawn_alerts(self) -> tuple[list[WithdrawnAlert], list[str]]:
        """Codes withdrawn by the latest version of each catalog that the crosswalk still maps.

        Returns:
            The alerts, and which versions were compared (for the answer's text).
        """
        alerts: list[WithdrawnAlert] = []
        compared: list[str] = []
        mapped = self.mapped_items()
        for kind, versions in (await self.versions()).items():
            if len(versions) < 2:
                continue
            compared.append(f"{kind} {versions[-2].version} → {versions[-1].version}")
            async with self._catalog_lock:
                old = await self._version(kind, versions[-2])
                new = await self._version(kind, versions[-1])
            _, found = await asyncio.get_running_loop().run_in_executor(
                None, lambda: _compare(old, new, mapped))  # noqa: B023 - awaited at once
            alerts.extend(found)
        return alerts, compared

    # --- the unmapped queue and suggestions ------------------------------------------

    async def suggestion_index(
        self,
    ) -> tuple[SuggestionIndex | None, tuple[str, ...], list[CatalogVersion]]:
        """The index over the latest catalogs, built once per set of versions.

        Returns:
            The index (None when no catalog has been imported), the versions it covers,
            and those versions.
        """
        async with self._catalog_lock:
            versions = [v for v in (await self._latest()).values() if v is not None]
            if not versions:
                return None, (), []
            labels = tuple(f"{v.kind} {v.version}" for v in versions)
            key = tuple(f"{v.kind} {v.version} {v.imported_at.isoformat()}" for v in versions)
            if self._index is None or self._index[0] != key:
                index = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: build_index(e for v in versions for e in v.entries.values()))
                self._index = (key, index)
            return self._index[1], labels, versions

    async def queue(self, *, hospital: str | None = None, limit: int = 5,
                    item_code: str | None = None, max_items: int = 100,
                    ) -> tuple[list[QueueItem], int, tuple[str, ...]]:
        """The unmapped items still without an entry today, each with ranked suggestions.

        Args:
            hospital: only this hospital's items.
            limit: suggestions per item.
            item_code: only this item (with ``hospital``).
            max_items: describe at most this many items (most frequent first).

        Returns:
            The items, how many are queued in all, and the catalog versions suggestions
            came from (empty when no catalog is imported: the items then carry none).
        """
        today = self.clock().date()
        crosswalk = self.crosswalk
        items = [i for i in await self.store.unmapped(hospital)
                 if crosswalk.lookup(i.hospital_id, i.item_code, today) is None
                 and (item_code is None or i.item_code == item_code)]
        total = len(items)
        items = items[:max_items]
        index, labels, catalogs = await self.suggestion_index()
        lines: dict[tuple[str, str], Line] = {}
        if items:
            try:
                lines = await self.store.held_lines(hospital, _HELD_SCAN)
            except StoreError:  # descriptions only sharpen suggestions; the queue still answers
                log.warning("could not read held events for the unmapped queue", exc_info=True)

        def work() -> list[QueueItem]:
            out = []
            habits: dict[str, HospitalHabits] = {}
            for item in items:
                line = lines.get(_item_key(item))
                if item.hospital_id not in habits:
                    habits[item.hospital_id] = _habits(crosswalk, catalogs, item.hospital_id)
                out.append(QueueItem(item, line.unit if line else "",
                                     _suggest(index, catalogs, item, line, limit,
                                              habits[item.hospital_id])))
            return out
        return await asyncio.get_running_loop().run_in_executor(None, work), total, labels

    async def accept(self, hospital: str, item_code: str, *, user: str,
                     national_code: str | None = None, rank: int | None = None,
                     overrides: dict[str, Any] | None = None, note: str = "") -> ChangeResult:
        """Map a queued item to one of its suggestions, named by code or rank (1 = best).

        ``overrides`` may set factor, hospital_unit, national_unit, item_name, valid_from,
        valid_to; the factor defaults to the proposed conversion, when there is one.

        Raises:
            NotFound: the item is not in the unmapped queue.
            Conflict: no catalog, or the code is not among the item's suggestions.
            CrosswalkEntryError: no factor could be settled, or the entry is invalid.
        """
        queue, _, labels = await self.queue(hospital=hospital, limit=10, item_code=item_code)
        found = next(iter(queue), None)
        if found is None:
            raise NotFound([f"{hospital}/{item_code} is not in the unmapped queue"])
        if not labels:
            raise Conflict(["no national catalog imported: there are no suggestions to accept; "
                            "import one (POST /api/mappings/catalogs) or create the entry"])
        if (national_code is None) == (rank is None):
            raise CrosswalkEntryError(["name the suggestion to accept: national_code or rank"])
        pick = None
        if rank is not None:
            if 1 <= rank <= len(found.suggestions):
                pick = found.suggestions[rank - 1]
        else:
            pick = next((s for s in found.suggestions if s[0].national_code == national_code),
                        None)
        if pick is None:
            offered = ", ".join(s.national_code for s, _ in found.suggestions) or "none"
            what = f"rank {rank}" if rank is not None else repr(national_code)
            raise Conflict([f"{hospital}/{item_code}: {what} is not among the suggestions "
                            f"({offered}); map another code with POST /entries"])
        suggestion, conversion = pick
        given = dict(overrides or {})
        problems: list[str] = []
        factor = _decimal(given.get("factor"), problems)
        if factor is None and conversion is not None:
            factor = conversion.factor
        if factor is None and not problems:
            problems.append(f"{hospital}/{item_code}: give factor (national units per "
                            f"{found.unit or 'hospital unit'}): no conversion can be proposed")
        valid_from = _iso_date(given.get("valid_from"), "valid_from", problems)
        valid_to = _iso_date(given.get("valid_to"), "valid_to", problems)
        if problems:
            raise CrosswalkEntryError(problems)
        assert factor is not None
        entry = CrosswalkEntry(
            hospital_id=hospital, item_code=item_code, national_code=suggestion.national_code,
            item_name=str(given.get("item_name") or found.item.item_name),
            hospital_unit=str(given.get("hospital_unit")
                              or (conversion.hospital_unit if conversion else found.unit)),
            national_unit=str(given.get("national_unit")
                              or (conversion.national_unit if conversion else "")),
            factor=factor, valid_from=valid_from, valid_to=valid_to)
        why = f"accepted suggestion ({suggestion.score:.2f}: {'; '.join(suggestion.reasons)})"
        return await self.create(entry, user=user, note=f"{note} — {why}" if note else why)


def _compare(old: CatalogVersion, new: CatalogVersion, mapped: dict[str, list[str]]
             ) -> tuple[CatalogDiff, list[WithdrawnAlert]]:
    change = diff(old, new)
    return change, withdrawn_mapped(change, mapped)


def _habits(crosswalk: Crosswalk, catalogs: Sequence[CatalogVersion],
            hospital: str) -> HospitalHabits:
    """What a hospital already maps to (makers, packs): its accepted mappings weigh in."""
    entries = (found for e in crosswalk if e.hospital_id == hospital
               for v in catalogs if (found := v.get(e.national_code)))
    return learn_habits(entries)


def _suggest(index: SuggestionIndex | None, catalogs: Sequence[CatalogVersion],
             item: UnmappedItem, line: Line | None, limit: int,
             habits: HospitalHabits | None = None
             ) -> tuple[tuple[Suggestion, Conversion | None], ...]:
    if index is None:
        return ()
    query = HospitalItem(
        code=item.item_code, name=item.item_name, specification=item.specification,
        manufacturer=item.manufacturer,
        approval_no=line.approval_no if line else "",
        standard_code=line.standard_code if line else "")
    out = []
    for s in index.suggest(query, limit=limit, habits=habits):
        entry = next((found for v in catalogs if (found := v.get(s.national_code))), None)
        conversion = None
        if entry is not None and line is not None:
            conversion = propose_conversion(line.unit, item.specification, entry)
        out.append((s, conversion))
    return tuple(out)


def _one(change: tuple[Crosswalk, AuditRecord]) -> tuple[Crosswalk, tuple[AuditRecord]]:
    return change[0], (change[1],)


def _decimal(value: Any, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        problems.append(f"factor {value!r} is not a number")
        return None


def _iso_date(value: Any, name: str, problems: list[str]) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{name} {value!r} is not a date (YYYY-MM-DD)")
        return None
