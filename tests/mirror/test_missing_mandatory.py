"""Every mandatory field of 3501–3507, taken away at its source, holds the event and is
named — generated from the field specification itself, so a field added to the
specification is covered without a new test."""

from __future__ import annotations

import msgspec
import pytest
from factory import dispense
from rig import gateway_config

from canonical.model import Event, EventKind, OrderControl
from gateway.platforms.fields import MANDATORY
from gateway.platforms.nhsa import INFNO, NhsaInventoryProfile

PROFILE = NhsaInventoryProfile(
    gateway_config([{"name": "nhsa", "url": "http://127.0.0.1:9/fsi/api/inventory"}])
    .destinations[0], gateway_config([]))

# a complete event of each kind, as the adapters deliver them
_EXTRA = {
    EventKind.STOCK_CHANGE: (("inv_chg_type", "104"),),
    EventKind.RETURN: (("original_no", "RK2026112300012"),),
}
KINDS = {infno: kind for kind, (infno, _) in INFNO.items()}
# sources that are never empty (the quantity, the time, the batch number …)
_ALWAYS = {"derived.quantity", "derived.moved_quantity", "derived.time", "derived.date",
           "derived.bchno", "derived.inv_data_type", "derived.trdn_flag"}


def _complete(kind: EventKind) -> Event:
    ev = dispense(7, kind=kind)
    return msgspec.structs.replace(ev, extra=ev.extra + _EXTRA.get(kind, ()))


def _line(ev: Event, **changes: object) -> Event:
    return ev.with_lines(tuple(msgspec.structs.replace(li, **changes) for li in ev.lines))


def _without(ev: Event, source: str) -> Event:
    """``ev`` with what ``source`` reads taken away."""
    kind, _, rest = source.partition(".")
    if kind == "line":
        empty: object = None if rest in ("rx_only", "national_price") else ""
        return _line(ev, **{rest: empty})
    if kind == "event":
        return msgspec.structs.replace(ev, **{rest: ""})
    if kind == "party":
        return msgspec.structs.replace(ev, **{rest.partition(".")[0]: None})
    if kind == "extra":
        return msgspec.structs.replace(ev, extra=tuple(kv for kv in ev.extra if kv[0] != rest))
    if source == "derived.mdtrt_sn":
        return msgspec.structs.replace(ev, patient=None)
    if source == "derived.rx_flag":
        return _line(ev, rx_only=None)
    if source == "derived.supplier_name":
        return _line(msgspec.structs.replace(ev, supplier=None), supplier=None)
    raise AssertionError(f"no way to take away {source}")


CASES = [(infno, spec.name, spec.source) for infno, kind in KINDS.items()
         for spec in MANDATORY[infno] if spec.source not in _ALWAYS and spec.default is None]


@pytest.mark.parametrize("infno", sorted(KINDS))
def test_a_complete_event_lacks_nothing(infno: str) -> None:
    assert PROFILE.missing(_complete(KINDS[infno])) == {}


@pytest.mark.parametrize(("infno", "field", "source"), CASES,
                         ids=[f"{i}-{f}" for i, f, _ in CASES])
def test_each_mandatory_field_taken_away_is_named_with_its_source(
        infno: str, field: str, source: str) -> None:
    event = _without(_complete(KINDS[infno]), source)
    missing = PROFILE.missing(event)
    assert missing.get(f"{infno} {field}") == f"has no value (source {source})", missing


def test_a_field_default_fills_a_gap_and_lines_alike_are_checked_once() -> None:
    ev = _without(_complete(EventKind.DISPENSE), "extra.phar_prac_cert_no")
    big = ev.with_lines(tuple(msgspec.structs.replace(ev.lines[0], seq=i + 1)
                              for i in range(2000)))
    assert PROFILE.missing(big) == {
        "3505 phar_prac_cert_no": "has no value (source extra.phar_prac_cert_no)"}
    filled = NhsaInventoryProfile(PROFILE.dest.model_copy(
        update={"field_defaults": {"phar_prac_cert_no": "330102201500231"}}), gateway_config([]))
    assert filled.missing(big) == {}
    # a gap in one line among many is found
    one_bad = big.with_lines((*big.lines[:-1],
                              msgspec.structs.replace(big.lines[-1], lot_no="")))
    assert "3505 manu_lotnum" in filled.missing(one_bad)


def test_a_cancellation_goes_out_as_3507_which_needs_only_the_batch_number() -> None:
    ev = _without(_complete(EventKind.DISPENSE), "extra.phar_prac_cert_no")
    cancel = msgspec.structs.replace(ev, order_control=OrderControl.CANCEL)
    assert PROFILE.missing(cancel) == {}
