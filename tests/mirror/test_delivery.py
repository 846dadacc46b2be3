"""What a hospital relies on from the mirror, against the platform simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from factory import HOSPITALS, PATIENT, REJECTED_CODE, TADALAFIL, dispense
from helpers import eventually
from rig import HASH_SECRET, Rig, ShiftedClock, destination

from canonical.model import EventKind, OrderControl
from gateway.mirror.worker import QUICK_TRIES
from gateway.platforms.signing import SigningKeys, hmac_sm3, sm2_public_key
from gateway.platforms.simulator import SimulatorState
from gateway.store.base import OutboxQuery

RigFactory = Callable[..., Awaitable[Rig]]


def _outbound(sim: SimulatorState) -> str:
    return "\n".join(str(env) for env in sim.accepted.values())


async def test_no_patient_name_id_card_or_phone_leaves_unless_configured(sqlite_rig) -> None:
    plain, hashed, named = SimulatorState(), SimulatorState(), SimulatorState()
    rig = await sqlite_rig([
        destination("plain", "{plain}/fsi/api/inventory"),
        destination("hashed", "{hashed}/fsi/api/inventory",
                    patient_fields=["visit_no", "id_card", "insurance_no", "phone"],
                    hash_identifiers=True),
        destination("named", "{named}/fsi/api/inventory", patient_fields=["name", "visit_no"]),
    ], {"plain": plain, "hashed": hashed, "named": named})
    await rig.send([dispense(i, h) for i, h in enumerate(HOSPITALS[:2])])
    await rig.settle()
    for sim in (plain, hashed, named):
        assert len(sim.order) == 2
    secrets = (PATIENT.name, PATIENT.id_card, PATIENT.phone, PATIENT.insurance_no)
    for s in secrets:
        assert s not in _outbound(plain)
        assert s not in _outbound(hashed)
    assert PATIENT.id_card not in _outbound(named) and PATIENT.phone not in _outbound(named)
    assert "张伟" in _outbound(named)  # configured: the name goes, nothing else
    sel = [env["input"]["selinfo"] for env in hashed.accepted.values()]
    by_hospital = {env["fixmedins_code"]: env["input"]["selinfo"]
                   for env in hashed.accepted.values()}
    expected = hmac_sm3(f"{HASH_SECRET}-0".encode(), PATIENT.id_card.encode()).hex()
    assert by_hospital[HOSPITALS[0]]["certno"] == expected
    assert by_hospital[HOSPITALS[0]]["certno"] != by_hospital[HOSPITALS[1]]["certno"]
    assert all("psn_name" not in s for s in sel)


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-sm3", "sm2"])
async def test_signed_and_sm4_encrypted_requests_are_verified_by_the_platform(
        sqlite_rig, scheme: str) -> None:
    private = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
    sm4_key = "0123456789abcdeffedcba9876543210"
    sim = SimulatorState()
    sim.keys = SigningKeys(scheme=scheme, paasid="hz_jcgw_01", secret=b"s3cr3t-paas",
                           sm4_key=sm4_key if scheme != "hmac-sha256" else "",
                           sm2_public_key=sm2_public_key(private))
    extra: dict[str, Any] = {"signing": scheme, "paas_id": "hz_jcgw_01"}
    if scheme == "sm2":
        extra["sm2_private_key"] = private
    else:
        extra["app_secret"] = "s3cr3t-paas"
    if scheme != "hmac-sha256":
        extra["sm4_key"] = sm4_key
    rig = await sqlite_rig([destination("nhsa", "{sim}/fsi/api/inventory", **extra)],
                           {"sim": sim})
    await rig.send([dispense(1), dispense(2)])
    await rig.settle()
    assert len(sim.order) == 2 and sim.rejected == []


async def test_wrong_key_holds_events_without_dead_letters(sqlite_rig) -> None:
    sim = SimulatorState()
    sim.keys = SigningKeys(scheme="hmac-sha256", paasid="p1", secret=b"the-right-one")
    rig = await sqlite_rig([destination("nhsa", "{sim}/fsi/api/inventory",
                                        signing="hmac-sha256", paas_id="p1",
                                        app_secret="a-wrong-one", breaker_failures=2)],
                           {"sim": sim})
    await rig.send([dispense(i) for i in range(3)])
    await eventually(lambda: rig.mirror.breakers["nhsa"].opened_count >= 1,
                     what="the circuit opened")
    balance = await rig.store.balance()
    assert balance.queued == {"nhsa": 3} and balance.dead == {}
    assert sim.order == []


async def test_a_change_goes_out_as_delete_then_upload_and_a_cancel_as_delete(
        sqlite_rig) -> None:
    sim = SimulatorState()
    rig = await sqlite_rig([destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    doc = "CF202611230042"
    await rig.send([dispense(1, doc=doc, quantity=28)])
    await rig.send([dispense(2, doc=doc, quantity=14, control=OrderControl.CHANGE)])
    await rig.send([dispense(3, doc="CF202611230043")])
    await rig.send([dispense(4, doc="CF202611230043", control=OrderControl.CANCEL)])
    await rig.settle()
    infnos = [sim.accepted[m]["infno"] for m in sim.order]
    assert infnos == ["3505", "3507", "3505", "3505", "3507"]
    delete = sim.accepted[sim.order[1]]["input"]["data"]
    assert delete == {"fixmedins_bchno": f"{doc}-1", "inv_data_type": "4"}
    live = {k[2]: sim.accepted[m]["input"]["selinfo"]["sel_retn_cnt"]
            for k, m in sim.live.items()}
    assert live == {f"{doc}-1": 14}  # the change replaced the upload; the cancel removed it


async def test_a_silent_overwrite_is_refused_by_the_platform_and_dead_lettered(
        sqlite_rig) -> None:
    sim = SimulatorState()
    rig = await sqlite_rig([destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    await rig.send([dispense(1, doc="CF1")])
    await rig.send([dispense(2, doc="CF1", quantity=7)])  # same batch, no delete first
    await rig.settle()
    dead = await rig.store.list_outbox(OutboxQuery())
    assert len(dead) == 1 and "3507" in dead[0].last_error


async def test_poison_event_becomes_a_dead_letter_without_blocking_others(any_rig) -> None:
    sim = SimulatorState()
    sim.faults.fail_items = ["Y9999999"]  # the platform answers 500 for this item, always
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory", max_attempts=3,
                                     breaker_failures=50)], {"sim": sim})
    poison = dispense(1, HOSPITALS[0], item="Y9999999", code=TADALAFIL)
    await rig.send([poison, dispense(2, HOSPITALS[0]), dispense(3, HOSPITALS[1]),
                    dispense(4, HOSPITALS[0], code=REJECTED_CODE)])
    await rig.settle(timeout=20)
    dead = await rig.store.list_outbox(OutboxQuery())
    assert sorted(r.attempts for r in dead) == [1, 3]  # a rejection is final at once
    assert any("HTTP 500" in r.last_error for r in dead)
    assert any("国家医保编码" in r.last_error for r in dead)
    docs = [sim.accepted[m]["input"]["selinfo"]["rtal_docno"] for m in sim.order]
    assert sorted(docs) == sorted([dispense(2).document_no, dispense(3, HOSPITALS[1])
                                   .document_no])


async def test_a_time_budget_dead_letters_an_event_that_keeps_failing(any_rig) -> None:
    sim = SimulatorState()
    sim.faults.fail_items = ["Y9999999"]  # HTTP 500 for this item, however often it is sent
    clock = ShiftedClock()
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory", max_attempts=1000,
                                     max_age_s=3600, breaker_failures=1000)], {"sim": sim},
                        clock=clock)
    poison = dispense(1, HOSPITALS[0], item="Y9999999", code=TADALAFIL)
    await rig.send([poison, dispense(2, HOSPITALS[0]), dispense(3, HOSPITALS[1])])

    async def failing_again() -> bool:
        rows = await rig.store.list_outbox(OutboxQuery(states=("pending",)))
        return any(r.event_id == poison.event_id and r.attempts >= 2 for r in rows)

    await eventually(failing_again, what="the poison event charged twice")
    clock.advance(3600)  # an hour later, as the mirror sees it
    await rig.settle(timeout=20)
    dead = await rig.store.list_outbox(OutboxQuery())
    assert len(dead) == 1 and dead[0].event_id == poison.event_id
    assert 1 < dead[0].attempts < 1000  # tried again and again, then out of time
    assert "HTTP 500" in dead[0].last_error and "failing for" in dead[0].last_error
    assert len(sim.order) == 2  # the others went through


async def test_down_platform_opens_the_circuit_and_spends_no_retry_budget(any_rig) -> None:
    sim = SimulatorState()
    sim.faults.down = True
    rig = await any_rig([destination("nhsa", "{sim}/fsi/api/inventory", max_attempts=3,
                                     breaker_failures=3, breaker_cooldown_s=0.01,
                                     breaker_cooldown_max_s=0.05)], {"sim": sim})
    await rig.send([dispense(i, HOSPITALS[i % 2]) for i in range(6)])
    breaker = rig.mirror.breakers["nhsa"]
    await eventually(lambda: breaker.failed_probes >= 4, what="four failed probes")
    # several cool-downs later the platform was not hammered: before the circuit opened
    # each of the two groups made at most its quick tries; since then, one call per probe
    # (and perhaps one for a probe whose failure is not recorded yet)
    assert breaker.opened_count == 1
    assert sim.calls <= 2 * QUICK_TRIES + breaker.failed_probes + 1
    # more failures than max_attempts, and none charged to the events
    assert (await rig.store.balance()).dead == {}
    sim.faults.down = False
    await rig.settle(timeout=20)
    assert len(sim.order) == 6 and (await rig.store.balance()).dead == {}


async def test_one_platform_down_never_stalls_another(sqlite_rig) -> None:
    down, up = SimulatorState(), SimulatorState()
    down.faults.down = True
    up.apps["JCGW-HZ-001"] = b"zc-secret"
    rig = await sqlite_rig([
        destination("nhsa", "{down}/fsi/api/inventory"),
        destination("zhejiang", "{up}/zc/api", profile="zhaocai", app_code="JCGW-HZ-001",
                    app_secret="zc-secret"),
    ], {"down": down, "up": up})
    receipts = [dispense(i, kind=EventKind.RECEIPT) for i in range(5)]
    await rig.send(receipts)
    await eventually(lambda: len(up.order) == 5, what="5 receipts at the up platform")
    assert down.order == []

    async def settled() -> bool:  # outcomes are recorded a moment after their answers
        balance = await rig.store.balance()
        return balance.delivered == {"zhejiang": 5} and balance.queued == {"nhsa": 5}
    await eventually(settled, what="5 delivered to zhejiang, 5 queued for nhsa")


async def test_zhaocai_token_is_fetched_and_renewed_and_documents_go_whole(sqlite_rig) -> None:
    sim = SimulatorState()
    sim.apps["JCGW-HZ-001"] = b"zc-secret"
    rig = await sqlite_rig([destination("zj", "{sim}/zc/api", profile="zhaocai",
                                        app_code="JCGW-HZ-001", app_secret="zc-secret")],
                           {"sim": sim})
    await rig.send([dispense(1, kind=EventKind.RECEIPT, lines=3)])
    await eventually(lambda: len(sim.order) == 1, what="the first receipt delivered")
    sim.faults.expire_tokens = True
    await rig.send([dispense(2, kind=EventKind.PURCHASE_ORDER, lines=2),
                    dispense(3, kind=EventKind.PAYMENT)])
    await rig.settle()
    assert len(sim.order) == 3
    profile = rig.mirror.destinations[0].profile
    assert profile.token_fetches == 2  # type: ignore[attr-defined]
    first = sim.accepted[sim.order[0]]
    assert first["infno"] == "delivery.receive" and len(first["input"]["data"]["lines"]) == 3
    assert {sim.accepted[m]["infno"] for m in sim.order[1:]} == {"order.submit",
                                                                 "settlement.submit"}
    assert "张伟" not in _outbound(sim)


async def test_timeouts_drops_and_garbage_answers_still_deliver_each_event_once(
        sqlite_rig) -> None:
    sim = SimulatorState()
    sim.set_faults({"drop_next": 2, "malformed_next": 2,
                    "transactions": {"3505": {"hang_s": 1.5, "hang_ratio": 0.2}}})
    rig = await sqlite_rig([destination("nhsa", "{sim}/fsi/api/inventory", timeout_s=0.5,
                                        max_attempts=50, breaker_failures=50)], {"sim": sim})
    await rig.send([dispense(i, HOSPITALS[i % 4]) for i in range(20)])
    await rig.settle(timeout=40)
    assert len(sim.order) == 20
    assert sim.injected.get("drop") == 2 and sim.injected.get("malformed") == 2
    assert sim.injected.get("hang", 0) >= 1
    assert (await rig.store.balance()).delivered == {"nhsa": 20}
