"""What a vendor profile can fill, named as the platforms' field specifications name
their sources (``line.lot_no``, ``party.pharmacist.name``, ``extra.invoice_no`` …).

``check-config`` compares these with the mandatory fields of each destination: a
profile that maps no 操作员姓名 can never fill 3503's ``purc_retn_opter_name``.
"""

from __future__ import annotations

from adapters.vendor.profile import Profile
from canonical.model import EventKind

__all__ = ["outputs"]

_PARTIES = ("prescriber", "pharmacist", "department", "supplier")


def _event_source(name: str) -> str:
    role, _, attr = name.partition(".")
    if role in _PARTIES:
        return f"party.{role}.{attr}"
    if role == "patient":
        return name
    return f"event.{name}"


def outputs(profile: Profile) -> dict[EventKind, frozenset[str]]:
    """The values the profile fills, for each kind of event it produces."""
    kind = {**profile.header, **profile.event}["kind"]
    kinds = {EventKind(kind.value)} if kind.value is not None else {
        EventKind(k) for k in (kind.map or {}).values()}
    filled = frozenset(
        {_event_source(n) for n in (*profile.header, *profile.event)}
        | {f"extra.{n}" for n in profile.extra}
        | {f"line.{n}" for n in profile.lines.fields}
        | {f"line_extra.{n}" for n in profile.lines.extra})
    return dict.fromkeys(kinds, filled)
