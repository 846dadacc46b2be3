"""Identifiers leave hashed unless a destination needs them in clear; a payload that cannot
be built is one dead letter, and the rest of the destination goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from factory import HOSPITALS, PATIENT, dispense
from rig import HASH_SECRET, Rig, destination, make_rig, stop_rig

from canonical.model import Event
from gateway.platforms.base import Request
from gateway.platforms.signing import hmac_sm3
from gateway.platforms.simulator import SimulatorState
from gateway.store.base import OutboxQuery

RigFactory = Callable[..., Awaitable[Rig]]
# a 定点医药机构 of the same city this gateway has no configuration (and no hash_secret) for
UNCONFIGURED = "H33011200058"


@pytest.fixture
async def any_rig(make_store) -> AsyncIterator[RigFactory]:  # type: ignore[no-untyped-def]
    rigs: list[Rig] = []

    async def factory(dests: list[dict[str, Any]], sims: dict[str, SimulatorState]) -> Rig:
        rig = await make_rig(await make_store(lease_s=5.0), dests, sims)
        rigs.append(rig)
        return rig
    yield factory
    for r in rigs:
        await stop_rig(r)


def _selinfo(sim: SimulatorState) -> dict[str, dict[str, Any]]:
    return {env["input"]["selinfo"]["rtal_docno"]: env["input"]["selinfo"]
            for env in sim.accepted.values()}


async def test_identifiers_leave_hashed_unless_the_destination_needs_them_in_clear(
        any_rig: RigFactory) -> None:
    default, clear = SimulatorState(), SimulatorState()
    fields = ["name", "id_card", "visit_no", "insurance_no"]
    rig = await any_rig([
        destination("nhsa", "{default}/fsi/api/inventory", patient_fields=fields),
        destination("cleartext", "{clear}/fsi/api/inventory", patient_fields=fields,
                    identifiers_in_clear=True),
    ], {"default": default, "clear": clear})
    ev = dispense(1, HOSPITALS[0])
    await rig.send([ev])
    await rig.settle()
    hashed = _selinfo(default)[ev.document_no]
    secret = f"{HASH_SECRET}-0".encode()
    assert hashed["certno"] == hmac_sm3(secret, PATIENT.id_card.encode()).hex()
    # the visit serial links the sale to its settlement and names nobody: always in clear
    assert hashed["mdtrt_sn"] == PATIENT.visit_no
    assert hashed["psn_no"] == hmac_sm3(secret, PATIENT.insurance_no.encode()).hex()
    assert hashed["psn_name"] == "张伟"  # listed, and a name is never hashed
    outbound = str(default.accepted)
    for identifier in (PATIENT.id_card, PATIENT.insurance_no):
        assert identifier not in outbound
    plain = _selinfo(clear)[ev.document_no]
    assert (plain["certno"], plain["mdtrt_sn"], plain["psn_no"]) == (
        PATIENT.id_card, PATIENT.visit_no, PATIENT.insurance_no)


async def test_an_event_of_a_hospital_without_hash_secret_is_a_dead_letter_not_a_stall(
        any_rig: RigFactory) -> None:
    sim = SimulatorState()
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory",
                                     patient_fields=["id_card"])], {"sim": sim})
    stray = dispense(2, UNCONFIGURED)
    good = [dispense(1, HOSPITALS[0]), dispense(3, HOSPITALS[0]), dispense(4, HOSPITALS[1])]
    await rig.send([good[0], stray, *good[1:]])
    await rig.settle()
    dead = await rig.store.list_outbox(OutboxQuery())
    assert [r.hospital_id for r in dead] == [UNCONFIGURED]
    assert dead[0].attempts == 1
    assert "payload cannot be built" in dead[0].last_error
    assert f"hospital {UNCONFIGURED} has no hash_secret" in dead[0].last_error
    assert sorted(_selinfo(sim)) == sorted(ev.document_no for ev in good)


async def test_a_row_that_cannot_be_built_does_not_hold_up_its_own_group(
        any_rig: RigFactory) -> None:
    sim = SimulatorState()
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    profile = rig.mirror.destinations[0].profile
    build = profile.build
    broken = dispense(2, HOSPITALS[0])

    def failing_build(event: Event, unit: int, msgid: str, now: float) -> Request:
        if event.event_id == broken.event_id:
            raise ValueError("fixmedins_bchno longer than 40 characters")
        return build(event, unit, msgid, now)

    profile.build = failing_build  # type: ignore[method-assign]
    batch = [dispense(1, HOSPITALS[0]), broken, dispense(3, HOSPITALS[0]),
             dispense(4, HOSPITALS[0])]
    await rig.send(batch)
    await rig.settle()
    dead = await rig.store.list_outbox(OutboxQuery())
    assert len(dead) == 1 and dead[0].event_id == broken.event_id
    assert "ValueError: fixmedins_bchno longer than 40 characters" in dead[0].last_error
    # FIFO within the group: the rows behind the dead letter went, in order
    assert [sim.accepted[m]["input"]["selinfo"]["rtal_docno"] for m in sim.order] == [
        batch[0].document_no, batch[2].document_no, batch[3].document_no]
    assert rig.mirror.metrics.internal_errors.labels("payload")._value.get() == 1
