"""Big messages are parsed in a worker process: the same answers as a parse in the loop,
and a worker's faults (a bug, a parse that never ends) cost the sender that message only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from helpers import (
    HOSPITAL,
    MLLPClient,
    RunningGateway,
    ack_fields,
    many_lines,
    numbered_dispense,
)

from adapters.base import Outcome, OutcomeStatus
from adapters.hl7v2 import HL7v2Adapter
from adapters.registry import create
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ
from gateway.ingest.limits import Limits
from gateway.ingest.offload import LINES_PER_PIECE, ParseWorkers, WorkerFailed
from gateway.keys import METRICS

CONFIG = {"facilities": {"ZJSRMYY": HOSPITAL}}
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA_TZ)


def many_codes(n: int, count: int, prefix: str = "BIG") -> bytes:
    """A sample dispense whose line carries ``count`` traceability codes (~21 bytes each)."""
    codes = "~".join(f"8{n:05d}{i:014d}" for i in range(count))
    return numbered_dispense(n, prefix).replace(b"81234567890123456789~81234567890123456790",
                                                codes.encode())


@pytest.fixture
async def workers() -> AsyncIterator[ParseWorkers]:
    pool = ParseWorkers(min_bytes=1, timeout_s=5)
    yield pool
    await pool.close()


async def test_a_parse_in_a_worker_gives_what_a_parse_in_the_loop_gives(
        workers: ParseWorkers) -> None:
    adapter = create("hl7v2", CONFIG)
    workers.register(adapter, "hl7v2", CONFIG)
    raw = many_codes(1, 3_000)
    assert workers.takes(adapter, raw)
    here = adapter.parse(raw, received_at=NOW)
    there = await workers.parse(adapter, raw, NOW, Limits())
    assert there.events == here.events and len(there.events[0].lines[0].trace_codes) == 3_000
    # the reply built from the worker's parse is the reply built from the loop's
    accepted = Outcome(OutcomeStatus.ACCEPTED)
    assert (adapter.reply(there, raw, accepted, now=NOW).body
            == adapter.reply(here, raw, accepted, now=NOW).body)


async def test_a_many_line_dispense_comes_back_from_a_worker_line_for_line(
        workers: ParseWorkers) -> None:
    """The lines come back in pieces (LINES_PER_PIECE each, the last one shorter): every
    line, in order, equal to the loop's parse."""
    adapter = create("hl7v2", CONFIG)
    workers.register(adapter, "hl7v2", CONFIG)
    raw = many_lines(7, 2 * LINES_PER_PIECE + 37)
    here = adapter.parse(raw, received_at=NOW)
    there = await workers.parse(adapter, raw, NOW, Limits())
    assert len(there.events[0].lines) == 2 * LINES_PER_PIECE + 37
    assert there.events == here.events
    assert (there.adapter, there.sender, there.control_id, there.message_type) == (
        here.adapter, here.sender, here.control_id, here.message_type)


async def test_a_worker_gives_the_cpu_to_the_gateway_first(workers: ParseWorkers) -> None:
    """On a small server a long parse must not take a core from the listeners and the
    store, which answer everyone else's messages meanwhile."""
    import os

    from gateway.ingest.offload import WORKER_NICENESS

    adapter = create("hl7v2", CONFIG)
    workers.register(adapter, "hl7v2", CONFIG)
    await workers.parse(adapter, many_codes(4, 10), NOW, Limits())  # the workers started
    assert workers._pool is not None
    niceness = await asyncio.wrap_future(workers._pool.schedule(os.nice, (0,)))
    assert niceness >= min(19, os.nice(0) + WORKER_NICENESS)


async def test_a_refusal_in_a_worker_names_the_field_or_the_limit(
        workers: ParseWorkers) -> None:
    adapter = create("hl7v2", CONFIG)
    workers.register(adapter, "hl7v2", CONFIG)
    bad_time = numbered_dispense(2).replace(b"|20261123093000|", b"|2026112309300\xc2\xb2|")
    with pytest.raises(MessageRejected) as here:
        adapter.parse(bad_time, received_at=NOW)
    with pytest.raises(MessageRejected) as there:
        await workers.parse(adapter, bad_time, NOW, Limits())
    assert there.value.location == "RXD-3"
    assert ((there.value.reason, there.value.code, there.value.reject)
            == (here.value.reason, here.value.code, here.value.reject))
    with pytest.raises(MessageRejected) as caught:
        await workers.parse(adapter, many_codes(3, 50), NOW, Limits(max_trace_codes=20))
    assert "limits.max_trace_codes" in caught.value.reason
    assert caught.value.location == "line 1 trace_codes"


async def test_an_adapter_bug_in_a_worker_is_a_fault_not_a_refusal(
        workers: ParseWorkers) -> None:
    adapter = create("faulty_adapters:ExplodingAdapter", CONFIG)
    workers.register(adapter, "faulty_adapters:ExplodingAdapter", CONFIG)
    with pytest.raises(WorkerFailed, match="KeyError"):
        await workers.parse(adapter, numbered_dispense(4), NOW, Limits())
    # the worker lives on for the next message
    good = create("hl7v2", CONFIG)
    workers.register(good, "hl7v2", CONFIG)
    parsed = await workers.parse(good, numbered_dispense(5), NOW, Limits())
    assert parsed.control_id.endswith("5")


async def test_a_parse_that_takes_too_long_is_stopped_and_refused_naming_the_limit() -> None:
    workers = ParseWorkers(min_bytes=1, timeout_s=1)
    try:
        slow = create("faulty_adapters:SlowAdapter", CONFIG)
        workers.register(slow, "faulty_adapters:SlowAdapter", CONFIG)
        good = create("hl7v2", CONFIG)
        workers.register(good, "hl7v2", CONFIG)
        await workers.parse(good, numbered_dispense(6), NOW, Limits())  # started
        with pytest.raises(MessageRejected) as caught:
            await workers.parse(slow, numbered_dispense(7), NOW, Limits())
        assert "limits.parse_timeout_s" in caught.value.reason and caught.value.reject
        # the stuck worker was replaced: the next message is parsed at once
        parsed = await asyncio.wait_for(
            workers.parse(good, numbered_dispense(8), NOW, Limits()), 10)
        assert parsed.control_id.endswith("8")
    finally:
        await workers.close()


async def test_only_registered_adapters_and_big_enough_messages_go_to_a_worker() -> None:
    workers = ParseWorkers(min_bytes=10_000, timeout_s=5)
    adapter = create("hl7v2", CONFIG)
    other = HL7v2Adapter(HL7v2Adapter.config_model(**CONFIG))
    workers.register(adapter, "hl7v2", CONFIG)
    assert workers.takes(adapter, many_codes(9, 1_000))
    assert not workers.takes(adapter, numbered_dispense(9))
    assert not workers.takes(other, many_codes(9, 1_000))
    assert not ParseWorkers(min_bytes=0, timeout_s=5).takes(adapter, many_codes(9, 1_000))


async def _send_big(gw: RunningGateway, big: bytes) -> dict[str, list[str]]:
    """Send a message big enough for a parse worker over MLLP; its ACK's fields."""
    assert len(big) > 65_536
    client = await MLLPClient.connect(gw.mllp_port)
    try:
        return ack_fields(await client.send(big, timeout=60))
    finally:
        await client.close()


def _parsed_in_worker(gw: RunningGateway) -> float:
    value = gw.app[METRICS].registry.get_sample_value("jcgw_parsed_in_worker_total",
                                                      {"adapter": "hl7v2"})
    return value or 0.0


@pytest.mark.parametrize("gateway", [{"limits": {"parse_offload_bytes": 65_536}}],
                         indirect=True)
async def test_a_big_dispense_is_parsed_in_a_worker_stored_and_mirrored(
        gateway: RunningGateway) -> None:
    ack = await _send_big(gateway, many_codes(10, 10_000))  # 210 KB
    assert ack["MSA"][1] == "AA"
    assert _parsed_in_worker(gateway) == 1
    [msgid] = await gateway.delivered(1, timeout=30)
    envelope = gateway.simulator.accepted[msgid]
    assert len(envelope["input"]["selinfo"]["drugtracinfo"]) == 10_000


@pytest.mark.parametrize("gateway", [{"limits": {"parse_offload_bytes": 65_536}}],
                         indirect=True)
async def test_a_big_dispense_without_the_licence_number_is_held_as_a_small_one_is(
        gateway: RunningGateway) -> None:
    # the mandatory-data check of a big message runs off the event loop, to the same end
    ack = await _send_big(gateway, many_codes(11, 10_000).replace(b"|Y|330102201500231",
                                                                   b"|Y|"))
    assert ack["MSA"][1] == "AA" and _parsed_in_worker(gateway) == 1
    held = await gateway.store.held_events()
    assert len(held) == 1 and held[0].lines[0].trace_codes[0].startswith("8")
    incomplete = gateway.app[METRICS].registry.get_sample_value(
        "jcgw_events_incomplete_total",
        {"destination": "nhsa", "field": "3505 phar_prac_cert_no"})
    assert incomplete == 1
    assert gateway.simulator.calls == 0  # nothing sent to be refused


@pytest.mark.parametrize("gateway", [{"limits": {"parse_offload_bytes": 65_536}}],
                         indirect=True)
async def test_frames_behind_a_big_one_on_a_connection_are_committed_after_it(
        gateway: RunningGateway) -> None:
    big, small = many_codes(11, 10_000), numbered_dispense(12, "SMALL")
    r, w = await asyncio.open_connection("127.0.0.1", gateway.mllp_port)
    try:
        w.write(b"\x0b" + big + b"\x1c\r" + b"\x0b" + small + b"\x1c\r")  # pipelined
        await w.drain()
        first = await asyncio.wait_for(r.readuntil(b"\x1c\r"), 60)
        second = await asyncio.wait_for(r.readuntil(b"\x1c\r"), 60)
    finally:
        w.close()
    assert b"MSA|AA|BIG" in first and b"MSA|AA|SMALL" in second
    rows = await gateway.store.read(lambda con: [r[0] for r in con.execute(
        "SELECT control_id FROM messages ORDER BY id")])
    assert [c[:3] for c in rows] == ["BIG", "SMA"]
