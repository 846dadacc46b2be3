"""Bad input gets a clear NAK (or a closed connection), is quarantined, and harms nobody else."""

from __future__ import annotations

import asyncio

import pytest
from helpers import MLLPClient, ack_fields, eventually, sample

from gateway.ingest.framing import START


async def _quarantine(gateway) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    """What is in quarantine. Bytes on a connection are quarantined before any answer
    that follows them is sent (answers go in arrival order), so after an ACK this is
    complete up to that message."""
    return [(r[0], r[1]) for r in
            await gateway.store.query("SELECT reason, raw FROM quarantine ORDER BY id")]


@pytest.mark.parametrize(("name", "code", "location", "words"), [
    ("bad_missing_msh.hl7", "AR", "MSH^1", "does not start with an MSH"),
    ("bad_encoding_chars.hl7", "AR", "MSH^1^2", "encoding characters"),
    ("bad_unknown_type_adt.hl7", "AR", "MSH^1^9", "unsupported message type ADT^A01"),
    ("bad_quantity.hl7", "AE", "RXD^1^4", "RXD-4 is not a number"),
    ("bad_unknown_facility.hl7", "AE", "MSH^1^4", "unknown sending facility"),
])
async def test_bad_message_gets_nak_naming_the_problem_and_is_quarantined(
        gateway, name: str, code: str, location: str, words: str) -> None:
    raw = sample(name)
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(raw))
    assert ack["MSA"][1] == code
    assert words in ack["MSA"][3]
    err = ack["ERR"]
    assert err[2] == location
    assert words in err[8]
    assert err[4] == "E"
    # the listener keeps serving the same connection
    good = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
    assert good["MSA"][1] == "AA"
    await client.close()
    kept = await _quarantine(gateway)
    assert kept[0][1] == raw
    assert words in kept[0][0]
    assert (await gateway.store.query("SELECT count(*) FROM events"))[0][0] == 1


async def test_truncated_frame_is_quarantined_and_others_still_served(gateway) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", gateway.mllp_port)
    partial = sample("rds_o13_dispense_utf8.hl7")[:120]
    w.write(START + partial)  # never finished
    await w.drain()
    w.close()
    other = await MLLPClient.connect(gateway.mllp_port)
    assert ack_fields(await other.send(sample("rds_o13_dispense_utf8.hl7")))["MSA"][1] == "AA"
    await other.close()
    # the cut-off frame is quarantined when its connection ends: no answer follows it
    kept = await eventually(lambda: _quarantine(gateway), what="the cut-off frame quarantined")
    assert kept[0][1] == partial
    assert "cut off" in kept[0][0]


async def test_frame_cut_by_next_start_block_is_quarantined_and_next_answered(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    cut = sample("rds_o13_dispense_utf8.hl7")[:80]
    client.writer.write(START + cut)
    ack = ack_fields(await client.send(sample("rds_o13_dispense_gb18030.hl7")), "gb18030")
    assert ack["MSA"][1] == "AA"
    await client.close()
    kept = await _quarantine(gateway)
    assert kept[0][1] == cut


async def test_bytes_outside_framing_are_quarantined(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    client.writer.write(b"GET / HTTP/1.1\r\n\r\n")
    ack = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
    assert ack["MSA"][1] == "AA"
    await client.close()
    kept = await _quarantine(gateway)
    assert kept[0][1] == b"GET / HTTP/1.1\r\n\r\n"
    assert "outside MLLP framing" in kept[0][0]


@pytest.mark.parametrize("gateway", [{"max_frame": 65536}], indirect=True)
async def test_ten_megabyte_frame_is_refused_quarantined_and_listener_keeps_serving(
        gateway) -> None:
    head = sample("rds_o13_dispense_utf8.hl7")
    huge = head + b"NTE|1||" + b"X" * (10 * 1024 * 1024) + b"\r"
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(huge, timeout=30))
    assert ack["MSA"][1] == "AR"
    assert ack["MSA"][2] == "RDS20261123000001"
    assert "exceeds the limit of 65536 bytes" in ack["MSA"][3]
    other = await MLLPClient.connect(gateway.mllp_port)
    assert ack_fields(await other.send(sample("rds_o13_dispense_gb18030.hl7")),
                      "gb18030")["MSA"][1] == "AA"
    await other.close()
    await client.close()
    kept = await _quarantine(gateway)
    # quarantine keeps store.quarantine_max_bytes (1 MiB) of it, and says how much it had
    assert kept[0][1] == huge[:1 << 20] + (
        f"\n[truncated by jicai-gateway: {1 << 20} of {len(huge)} bytes kept]".encode())
    sizes = await gateway.store.query("SELECT original_size FROM quarantine")
    assert sizes == [(len(huge),)]
    assert (await gateway.store.query("SELECT count(*) FROM messages"))[0][0] == 1


async def test_random_garbage_frames_never_stop_the_listener(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    for payload in (b"", b"\x00\xff\xfe", b"MSH", b"MSH|", "MSH|^~\\&|病人".encode("gb18030")):
        ack = ack_fields(await client.send(payload), "latin-1")
        assert ack["MSA"][1] in ("AR", "AE")
    assert ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))["MSA"][1] == "AA"
    await client.close()
    assert len(await _quarantine(gateway)) == 5


async def test_an_unexpected_failure_still_answers_ae_and_keeps_serving(gateway) -> None:
    from gateway.app import INGESTOR

    ingestor = gateway.app[INGESTOR]
    real_plan = ingestor.plan
    calls = {"n": 0}

    def broken_once(events, held):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated defect")
        return real_plan(events, held)

    ingestor.plan = broken_once
    client = await MLLPClient.connect(gateway.mllp_port)
    nak = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
    assert nak["MSA"][1] == "AE" and "send it again" in nak["MSA"][3]
    ok = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
    assert ok["MSA"][1] == "AA"  # the resend is taken: nothing was stored the first time
    await client.close()


async def test_control_characters_in_msh_never_reach_the_ack(gateway) -> None:
    """An MLLP end-of-block byte in MSH-18 (once stripped as whitespace and accepted, and
    copied into the ACK, whose frame then ended early at the sender)."""
    from helpers import HL7

    client = await MLLPClient.connect(gateway.mllp_port)
    try:
        for name, field in (("msh18_control_character.hl7", "MSH-18"),
                            ("msh10_control_character.hl7", "MSH-10")):
            raw = (HL7 / "invalid" / name).read_bytes()
            ack = await client.send(raw)  # one whole frame, read up to its end
            assert not any(b < 0x20 and b != 0x0D for b in ack), ack
            fields = ack_fields(ack)
            assert fields["MSA"][1] == "AR" and field.replace("-", "^1^") in fields["ERR"][2]
        # the same connection still takes a good message
        good = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
        assert good["MSA"][1] == "AA"
    finally:
        await client.close()
    assert await gateway.store.query("SELECT count(*) FROM messages") == [(1,)]


async def test_a_price_no_hospital_pays_is_refused_at_the_door_naming_the_line(
        gateway) -> None:
    """ZJC-3 = 81000000000000000123 was acknowledged and then overflowed the ledger."""
    raw = sample("rds_o13_dispense_utf8.hl7").replace(b"|32.90|", b"|81000000000000000123|")
    client = await MLLPClient.connect(gateway.mllp_port)
    try:
        ack = ack_fields(await client.send(raw))
    finally:
        await client.close()
    assert ack["MSA"][1] == "AR"
    assert "line 1 price" in ack["MSA"][3] and "out of range" in ack["MSA"][3]
    assert await gateway.store.query("SELECT count(*) FROM events") == [(0,)]
    [(reason, kept)] = await _quarantine(gateway)
    assert "out of range" in reason and kept == raw


async def test_a_half_closed_connection_still_gets_every_answer(gateway) -> None:
    """A sender that writes its frames and then shuts its writing side (5 of 5 lost their
    ACK before, though the messages were stored and mirrored)."""
    from helpers import numbered_dispense

    from gateway.ingest.framing import END

    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.mllp_port)
    try:
        for n in range(3):
            writer.write(START + numbered_dispense(700 + n) + END)
        await writer.drain()
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), timeout=10)  # until the gateway closes
    finally:
        writer.close()
    frames = [f for f in data.split(END) if f]
    assert [ack_fields(f[f.index(START) + 1:])["MSA"][1:3] for f in frames] == [
        ["AA", f"RDS{700 + n:012d}"] for n in range(3)]
    assert await gateway.store.query("SELECT count(*) FROM messages") == [(3,)]


async def test_an_ack_copies_no_more_of_a_header_field_than_the_field_may_hold(
        gateway) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz test: a 70,000-character MSH-3 came back whole in the ACK."""
    raw = sample("rds_o13_dispense_utf8.hl7").replace(b"|HIS|ZJSRMYY|", b"|" + b"x" * 70_000
                                                      + b"|ZJSRMYY|", 1)
    client = await MLLPClient.connect(gateway.mllp_port)
    try:
        ack = await client.send(raw)
    finally:
        await client.close()
    assert len(ack) < 2_000
    assert ack_fields(ack)["MSH"][4] == "x" * 227  # MSH-5 answers MSH-3, cut to an HD


async def test_a_prescription_of_many_lines_gets_a_bounded_number_of_warnings(
        gateway) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz test: one 集采 warning a line made the answer to a 600-line
    prescription 486 KB, seven times the prescription."""
    segs = sample("rde_o11_prescription_utf8.hl7").rstrip(b"\r").split(b"\r")
    head, group = segs[:3], segs[3:8]  # ORC, TQ1, RXE, RXR, ZJC of the non-winning item
    raw = b"\r".join(head + group * 600) + b"\r"
    client = await MLLPClient.connect(gateway.mllp_port)
    try:
        ack = await client.send(raw)
    finally:
        await client.close()
    errs = [s for s in ack.decode().split("\r") if s.startswith("ERR|")]
    assert ack_fields(ack)["MSA"][1] == "AA"
    assert len(errs) == 50 and "more 集采 warning(s)" in errs[-1]
    assert len(ack) < 65_536  # whatever the number of lines
