"""What a committed event changes in the 对码 queue (the ``unmapped`` table), decided once
for every store."""

from __future__ import annotations

from canonical.model import Event, EventKind, Line, OrderControl

__all__ = ["unmapped_changes"]

_GONE = frozenset({OrderControl.CANCEL, OrderControl.DISCONTINUE})


def unmapped_changes(event: Event, held: bool) -> tuple[tuple[Line, ...], tuple[str, ...]]:
    """The lines to queue for mapping and the item codes to take off the queue.

    A held event queues its unmapped lines (each one an occurrence). An item master is
    never held: its unknown items are queued, and the items it deletes or deactivates
    leave the queue, since nobody should map an item that is going away.
    """
    if event.kind is EventKind.ITEM_MASTER:
        gone = tuple(li.item_code for li in event.lines if li.order_control in _GONE)
        keep = tuple(li for li in event.lines
                     if li.order_control not in _GONE and li.national_code is None)
        return keep, gone
    if held:
        return tuple(li for li in event.lines if li.national_code is None), ()
    return (), ()
