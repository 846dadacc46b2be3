"""Dead letters and replay, shared by the CLI and the HTTP API.

An operator names rows by id, commit-time range, hospital and transaction (an
infno such as ``3505``, a 招采 transaction such as ``delivery.receive``, or an event
kind such as ``dispense``), looks at them, and queues them again — to their own
destination or another one, always under their original msgids. A row the
platform already confirmed is refused unless the operator forces it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from canonical.model import CHINA_TZ, EventKind, event_to_dict
from gateway.platforms.nhsa import INFNO
from gateway.platforms.zhaocai import TRANSACTIONS
from gateway.store.base import OutboxQuery, OutboxRecord, ReplayResult

__all__ = [
    "ALL_STATES",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_ROW_ID",
    "bounded_query",
    "build_query",
    "parse_time",
    "query_from_params",
    "query_to_dict",
    "record_to_dict",
    "replay_audit",
    "streams_for",
]

ALL_STATES = ("pending", "delivered", "dead")

# an operator's listing or replay: one page of rows, never the whole outbox by accident
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
MAX_ROW_ID = 2**63 - 1  # an SQL BIGINT: larger ids cannot even be looked up
_FILTERS = ("ids", "destination", "hospital", "since", "until", "from_id", "to_id")
_HOW = ("name which rows: ids, destination, hospital, since/until (commit time) or "
        "from_id/to_id (outbox ids); or all=true with a limit (at most 5000), e.g. "
        '{"all": true, "limit": 500}, and go on from the last id with from_id')


def parse_time(value: str) -> float:
    """Unix seconds from unix seconds or ISO 8601 (China time when no offset is given).

    Raises:
        ValueError: neither form.
    """
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use 2026-11-23T09:30:00 or unix seconds)") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CHINA_TZ)
    return when.timestamp()


def streams_for(transaction: str) -> tuple[str, ...]:
    """The event kinds (outbox streams) a transaction name stands for.

    Raises:
        ValueError: an unknown transaction.
    """
    kinds = [k.value for k, (infno, _) in INFNO.items() if infno == transaction]
    kinds += [k.value for k, name in TRANSACTIONS.items() if name == transaction]
    if transaction == "3507":  # deletes travel in the stream of what they delete
        kinds = [k.value for k in INFNO]
    if transaction in {k.value for k in EventKind}:
        kinds = [transaction]
    if not kinds:
        raise ValueError(f"unknown transaction {transaction!r}: use an infno (3501–3507), a "
                         "招采 transaction or an event kind such as dispense")
    return tuple(dict.fromkeys(kinds))


def build_query(*, ids: Sequence[int] = (), destination: str | None = None,
                hospital: str | None = None, since: str | None = None,
                until: str | None = None, transaction: str | None = None,
                states: Sequence[str] = ("dead",), limit: int = 1000,
                id_from: int | None = None, id_to: int | None = None) -> OutboxQuery:
    """An :class:`OutboxQuery` from an operator's words.

    Rows named by id are looked at in every state, so that a delivered one is
    reported as refused rather than silently left out.

    Raises:
        ValueError: a bad time, transaction, state or row id.
    """
    unknown = sorted(set(states) - set(ALL_STATES))
    if unknown:
        raise ValueError(f"unknown state(s) {', '.join(map(repr, unknown))}: use "
                         f"{', '.join(ALL_STATES)}")
    for value in (*ids, id_from, id_to):
        if value is not None and not 0 <= int(value) <= MAX_ROW_ID:
            raise ValueError(f"{value} is not an outbox id (0 to {MAX_ROW_ID})")
    return OutboxQuery(
        ids=tuple(int(i) for i in ids), states=ALL_STATES if ids else tuple(states),
        destination=destination or None, hospital_id=hospital or None,
        streams=streams_for(transaction) if transaction else (),
        since=parse_time(since) if since else None, until=parse_time(until) if until else None,
        limit=limit, id_from=id_from, id_to=id_to)


def query_from_params(params: Mapping[str, Any]) -> OutboxQuery:
    """The query from HTTP query parameters or a JSON body.

    Raises:
        ValueError: bad values (of a wrong JSON type too).
    """
    try:
        return _query_from_params(params)
    except TypeError as exc:  # a list where a number belongs, and the like: the caller's
        raise ValueError(f"a value of the wrong type: {exc}") from None


def _query_from_params(params: Mapping[str, Any]) -> OutboxQuery:
    for name in ("destination", "hospital", "transaction", "to_destination"):
        if params.get(name) is not None and not isinstance(params[name], str):
            raise ValueError(f"{name} must be text")
    for name in ("since", "until"):
        if params.get(name) is not None and not isinstance(params[name], str | int | float):
            raise ValueError(f"{name} must be a time (ISO 8601 or unix seconds)")
    ids = params.get("ids") or []
    if isinstance(ids, str):
        ids = [i for i in ids.split(",") if i]
    # forcing a filter replay means "delivered ones too"
    states = params.get("states") or (["dead", "delivered"] if params.get("force") else ["dead"])
    if isinstance(states, str):
        states = states.split(",")
    return build_query(ids=[int(i) for i in ids], destination=params.get("destination"),
                       hospital=params.get("hospital"), since=_text(params.get("since")),
                       until=_text(params.get("until")), transaction=params.get("transaction"),
                       states=states, limit=int(params.get("limit", 1000)),
                       id_from=_optional_int(params.get("from_id")),
                       id_to=_optional_int(params.get("to_id")))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def bounded_query(params: Mapping[str, Any]) -> OutboxQuery:
    """:func:`query_from_params` for an operator over HTTP: a filter is required (or
    ``all`` with an explicit ``limit``), and the rows are capped (default
    :data:`DEFAULT_LIMIT`, at most :data:`MAX_LIMIT`).

    Raises:
        ValueError: no filter, ``all`` without a limit, a limit out of range, bad values;
            the message says what to send.
    """
    filtered = any(params.get(k) not in (None, "", []) for k in _FILTERS)
    limit = params.get("limit")
    if not filtered and not _flag(params.get("all")):
        raise ValueError(_HOW)
    if not filtered and limit in (None, ""):
        raise ValueError(f"all=true needs an explicit limit: {_HOW}")
    try:
        cap = DEFAULT_LIMIT if limit in (None, "") else int(limit)
    except (TypeError, ValueError):
        raise ValueError(f"limit={limit!r} is not a whole number") from None
    if not 1 <= cap <= MAX_LIMIT:
        raise ValueError(f"limit={cap} must be between 1 and {MAX_LIMIT}")
    return query_from_params({**params, "limit": cap})


def replay_audit(query: OutboxQuery, result: ReplayResult, *, force: bool,
                 to_destination: str | None) -> dict[str, Any]:
    """The audit-log fields of a replay, whoever asked for it: the filter, what it did."""
    return {"target": to_destination or query.destination or "",
            "hospital_id": query.hospital_id or "",
            "before": {**query_to_dict(query), "force": force,
                       "to_destination": to_destination},
            "after": {"queued": len(result.queued), "refused": len(result.refused),
                      "skipped": len(result.skipped), "queued_ids": list(result.queued[:200])},
            "detail": f"{len(result.queued)} row(s) queued again"}


def query_to_dict(query: OutboxQuery) -> dict[str, Any]:
    """The filter as JSON (for the audit log: what an operator asked for)."""
    return {k: v for k, v in dataclasses.asdict(query).items() if v not in (None, (), [])}


def record_to_dict(record: OutboxRecord) -> dict[str, Any]:
    """Plain JSON of a row (with its event, when loaded)."""
    out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
           if f.name != "event"}
    if record.event is not None:
        out["event"] = event_to_dict(record.event)
    return out
