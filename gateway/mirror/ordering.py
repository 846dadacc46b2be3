"""The order a claimed batch goes out in: what waits for what, as data.

Within one hospital's ordering scope (:func:`gateway.store.plan.order_scope`), units of
the same key go one after the other, units of different keys together, and a scope-wide
unit (a sale return, a stock movement) waits for everything before it in the scope and
holds up everything after it. A batch therefore runs, per scope, as a list of *phases*:
each phase a set of chains run concurrently, each chain in commit order, and a phase
starts only when every unit of the one before it went through.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.store.base import OutboxItem
from gateway.store.plan import order_scope

__all__ = ["Phase", "by_scope", "phases"]

Phase = list[list[OutboxItem]]  # chains run concurrently, each in commit order


def _key(item: OutboxItem) -> str:
    return item.order_key or item.stream


def by_scope(items: Iterable[OutboxItem]) -> dict[tuple[str, str], list[OutboxItem]]:
    """Claimed units grouped by (hospital, scope), each group in commit order."""
    scopes: dict[tuple[str, str], list[OutboxItem]] = {}
    for it in sorted(items, key=lambda i: i.id):
        scopes.setdefault((it.hospital_id, order_scope(_key(it))), []).append(it)
    return scopes


def phases(scope_items: list[OutboxItem]) -> list[Phase]:
    """The phases of one scope's units (in commit order)."""
    out: list[Phase] = []
    chains: dict[str, list[OutboxItem]] = {}
    for it in scope_items:
        key = _key(it)
        if key == order_scope(key):  # scope-wide: alone, after all before it
            if chains:
                out.append(list(chains.values()))
                chains = {}
            out.append([[it]])
        else:
            chains.setdefault(key, []).append(it)
    if chains:
        out.append(list(chains.values()))
    return out
