"""Random, truncated and mutated bytes never crash an adapter: events or a typed rejection."""

from collections.abc import Callable
from pathlib import Path

import pytest
import test_fhir_conformance
import test_hl7v2_conformance
import test_vendor_conformance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import create
from adapters.base import Adapter, Outcome, OutcomeStatus, rejection_issues
from adapters.testing import RECEIVED_AT, check_parsed
from canonical.errors import MessageRejected

DATA = Path(__file__).parent.parent / "data"

ADAPTERS: dict[str, tuple[Callable[[], Adapter], str]] = {
    "hl7v2": (lambda: create("hl7v2", test_hl7v2_conformance.CONFIG), "hl7v2"),
    "fhir-r4": (lambda: create("fhir-r4", test_fhir_conformance.CONFIG), "fhir-r4"),
    "vendor-xml": (lambda: create("vendor-xml", test_vendor_conformance.XML_CONFIG),
                   "vendor-xml"),
    "vendor-json": (lambda: create("vendor-json", test_vendor_conformance.JSON_CONFIG),
                    "vendor-json"),
}
SAMPLES = {name: [p.read_bytes() for p in sorted((DATA / folder / "valid").iterdir())
                  if p.name != "expected.yaml"]
           for name, (_, folder) in ADAPTERS.items()}
# bytes that matter to the parsers: delimiters, escapes, quotes, brackets, multibyte lead bytes
SPECIAL = st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"<", b">", b"/",
                           b'"', b"{", b"}", b"[", b"]", b",", b":", b"\x00", b"\xff",
                           b"\xe4", b"\x81", b"&lt;", b"<!DOCTYPE x>", b"\\X41\\", b"\\XZZ\\"])


def _outcome(adapter: Adapter, raw: bytes) -> None:
    try:
        parsed = adapter.parse(raw, received_at=RECEIVED_AT)
    except MessageRejected as exc:
        reply = adapter.reply(None, raw, Outcome(OutcomeStatus.REJECTED, rejection_issues(exc)),
                              now=RECEIVED_AT)
        assert reply.body
    else:
        check_parsed(adapter, parsed)
        assert adapter.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED), now=RECEIVED_AT)


@st.composite
def damaged(draw: st.DrawFn, name: str) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES[name])))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "replace" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = draw(SPECIAL)
        elif raw:
            del raw[pos : pos + draw(st.integers(1, 40))]
    cut = draw(st.integers(0, len(raw)))
    return bytes(raw[:cut]) if draw(st.booleans()) else bytes(raw)


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_random_bytes_never_crash(name: str) -> None:
    adapter = ADAPTERS[name][0]()

    @FUZZ
    @given(st.binary(max_size=2048))
    def run(raw: bytes) -> None:
        _outcome(adapter, raw)

    run()


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_damaged_valid_messages_never_crash(name: str) -> None:
    adapter = ADAPTERS[name][0]()

    @FUZZ
    @given(damaged(name))
    def run(raw: bytes) -> None:
        _outcome(adapter, raw)

    run()
