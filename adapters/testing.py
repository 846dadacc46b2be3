"""The adapter conformance kit: the standard checks every adapter must pass.

A vendor writes one line in a test module::

    from adapters.testing import make_conformance_tests

    TestMyAdapter = make_conformance_tests(MyAdapter, {"hospital_id": "H33010200001"},
                                           Path(__file__).parent / "data", alias="my-dialect")

and pytest runs the checks against the adapter and its sample messages:

* the class declares the contract (name, kinds, transport, a config model that
  rejects unknown keys) and, given ``alias``, the registry finds it;
* ``samples/valid/*`` each parse into well-formed canonical events, the same
  ones twice (the adapter is pure), and match ``valid/expected.yaml`` where it
  names a sample;
* ``samples/invalid/*`` each raise :class:`~canonical.errors.MessageRejected`
  (never another exception) at the location ``invalid/expected.yaml`` gives;
* replies round-trip: the reply to each outcome reads back as accepted or not,
  echoes the control id and names the location of each problem;
* truncated and mutated valid samples give events or a typed rejection.

``expected.yaml`` maps a file name to what must hold. For a valid sample::

    rde_o11_new.hl7:
      message_type: RDE^O11
      events:                      # a subset of event_to_dict() per event, in order
        - kind: prescription
          document_no: CF20261123000123
          lines: [{item_code: Y0012345, quantity: "2"}]

For an invalid one::

    rde_bad_quantity.hl7: {location: RXE-10, code: "102", contains: "not a number"}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from adapters.base import (
    Adapter,
    Outcome,
    OutcomeStatus,
    ParsedMessage,
    Reply,
    ReplyReader,
    rejection_issues,
)
from adapters.registry import resolve
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, event_from_dict, event_to_dict

__all__ = [
    "RECEIVED_AT",
    "check_event",
    "check_parsed",
    "load_samples",
    "make_conformance_tests",
    "mutations",
]

RECEIVED_AT = datetime(2026, 11, 23, 9, 30, 0, tzinfo=timezone(timedelta(hours=8)))
EXPECTED_FILE = "expected.yaml"
_TRANSPORTS = frozenset({"mllp", "http"})


def load_samples(folder: Path) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """The sample files of ``folder`` (sorted) and its ``expected.yaml`` entries."""
    if not folder.is_dir():
        return [], {}
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.name != EXPECTED_FILE and not p.name.startswith("."))
    expected_path = folder / EXPECTED_FILE
    expected: dict[str, dict[str, Any]] = {}
    if expected_path.is_file():
        loaded = yaml.safe_load(expected_path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{expected_path}: expected a mapping of file name → expectations")
        expected = {str(k): dict(v or {}) for k, v in loaded.items()}
    unknown = sorted(set(expected) - {p.name for p in files})
    if unknown:
        raise ValueError(f"{expected_path}: names files that do not exist: {unknown}")
    return files, expected


def _check_line(line: Line, where: str) -> None:
    assert isinstance(line, Line), f"{where}: not a Line"
    assert isinstance(line.seq, int) and line.seq >= 1, f"{where}: seq must be ≥ 1"
    assert isinstance(line.item_code, str) and line.item_code.strip(), f"{where}: empty item_code"
    assert isinstance(line.quantity, Decimal) and line.quantity.is_finite(), \
        f"{where}: quantity must be a finite Decimal"
    assert line.price is None or (isinstance(line.price, Decimal) and line.price.is_finite()), \
        f"{where}: price must be None or a finite Decimal"
    assert isinstance(line.trace_codes, tuple), f"{where}: trace_codes must be a tuple"
    assert line.national_code is None, f"{where}: adapters never set national_code (mapping does)"


def check_event(event: Event, where: str = "event") -> None:
    """Assert that ``event`` is a well-formed canonical event that survives serialisation."""
    assert isinstance(event, Event), f"{where}: not an Event"
    assert isinstance(event.kind, EventKind), f"{where}: kind is not an EventKind"
    assert event.event_id, f"{where}: empty event_id"
    assert event.hospital_id, f"{where}: empty hospital_id"
    assert event.source, f"{where}: empty source"
    assert event.occurred_at.tzinfo is not None, f"{where}: occurred_at must be timezone-aware"
    # a payment may name only the receipts it settles, without itemising them
    assert event.lines or event.kind is EventKind.PAYMENT, \
        f"{where}: an event needs at least one line"
    seqs = [line.seq for line in event.lines]
    assert len(set(seqs)) == len(seqs), f"{where}: line seq numbers repeat: {seqs}"
    for line in event.lines:
        _check_line(line, f"{where} line {line.seq}")
    wire = orjson.loads(orjson.dumps(event_to_dict(event)))
    assert event_from_dict(wire) == event, f"{where}: does not survive event_to_dict/from_dict"


def check_parsed(adapter: Adapter, parsed: ParsedMessage) -> None:
    """Assert that a parse result is well formed for ``adapter``."""
    assert isinstance(parsed, ParsedMessage), "parse() must return a ParsedMessage"
    assert parsed.adapter == adapter.name, "ParsedMessage.adapter must be the adapter's name"
    assert parsed.control_id, "ParsedMessage.control_id is empty (it is the dedup key)"
    assert parsed.sender, "ParsedMessage.sender is empty (it is the dedup key)"
    assert parsed.message_type in adapter.kinds, \
        f"message type {parsed.message_type!r} is not among the adapter's kinds"
    ids = [e.event_id for e in parsed.events]
    assert len(set(ids)) == len(ids), f"event ids repeat: {ids}"
    for i, event in enumerate(parsed.events):
        check_event(event, f"event {i}")


def _matches(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{where}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: no key {key!r}"
            _matches(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), \
            f"{where}: expected {len(expected)} items, got {len(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _matches(a, e, f"{where}[{i}]")
    else:
        assert str(actual) == str(expected), f"{where}: expected {expected!r}, got {actual!r}"


def mutations(raw: bytes) -> list[bytes]:
    """Deterministic damaged copies of a valid message: truncations and byte flips."""
    n = len(raw)
    out = [raw[: n * k // 4] for k in (1, 2, 3)] + [raw[:-1], raw + raw[: n // 3]]
    for pos in range(7, n, max(n // 13, 1)):
        out.append(raw[:pos] + bytes([raw[pos] ^ 0x5A]) + raw[pos + 1 :])
    return out


def _reader(adapter: Adapter) -> ReplyReader | None:
    return adapter if isinstance(adapter, ReplyReader) else None


def make_conformance_tests(
    adapter_cls: type[Any],
    config: Mapping[str, Any] | BaseModel | None,
    samples_dir: Path | str,
    *,
    alias: str | None = None,
    received_at: datetime = RECEIVED_AT,
    factory: Callable[[Any], Adapter] | None = None,
) -> type:
    """Build the standard pytest test class for one adapter.

    Args:
        adapter_cls: the adapter class under test.
        config: its configuration (a mapping or an instance of ``config_model``).
        samples_dir: a folder with ``valid/`` and ``invalid/`` sample messages.
        alias: the name the adapter is registered under; the registry must resolve it.
        received_at: the receipt time passed to ``parse``.
        factory: builds the adapter from the validated config (default: ``adapter_cls(config)``).

    Returns:
        A test class; assign it to a module-level name starting with ``Test``.

    Raises:
        ValueError: an ``expected.yaml`` is malformed or names missing files.
    """
    root = Path(samples_dir)
    valid, valid_expected = load_samples(root / "valid")
    invalid, invalid_expected = load_samples(root / "invalid")
    make = factory or adapter_cls

    def build() -> Adapter:
        model: type[BaseModel] = adapter_cls.config_model
        cfg = config if isinstance(config, BaseModel) else model.model_validate(dict(config or {}))
        adapter: Adapter = make(cfg)
        return adapter

    def ids(paths: list[Path]) -> list[str]:
        return [p.name for p in paths]

    class AdapterConformance:
        """Standard checks generated by :func:`adapters.testing.make_conformance_tests`."""

        def test_declares_contract(self) -> None:
            assert isinstance(adapter_cls.name, str) and adapter_cls.name
            assert isinstance(adapter_cls.kinds, frozenset) and adapter_cls.kinds
            assert adapter_cls.transport in _TRANSPORTS
            assert issubclass(adapter_cls.config_model, BaseModel)
            assert isinstance(build(), Adapter)

        def test_config_validates_and_round_trips(self) -> None:
            model: type[BaseModel] = adapter_cls.config_model
            cfg = config if isinstance(config, BaseModel) else model.model_validate(
                dict(config or {}))
            again = model.model_validate(cfg.model_dump())
            assert again == cfg

        def test_config_rejects_unknown_keys(self) -> None:
            model: type[BaseModel] = adapter_cls.config_model
            base = (config.model_dump() if isinstance(config, BaseModel)
                    else dict(config or {}))
            with pytest.raises(ValidationError):
                model.model_validate({**base, "no_such_option_x": 1})

        def test_registry_resolves_alias(self) -> None:
            if alias is None:
                pytest.skip("no alias given")
            assert resolve(alias) is adapter_cls

        def test_has_samples(self) -> None:
            assert valid, f"no valid samples in {root / 'valid'}"
            assert invalid, f"no invalid samples in {root / 'invalid'}"
            kinds_seen = set()
            adapter = build()
            for path in valid:
                kinds_seen.add(adapter.parse(path.read_bytes(),
                                             received_at=received_at).message_type)
            assert kinds_seen, "valid samples cover no message type"

        @pytest.mark.parametrize("sample", valid, ids=ids(valid))
        def test_valid_sample_parses(self, sample: Path) -> None:
            adapter = build()
            raw = sample.read_bytes()
            parsed = adapter.parse(raw, received_at=received_at)
            check_parsed(adapter, parsed)
            assert parsed.events, f"{sample.name}: a valid sample should carry events"
            again = adapter.parse(raw, received_at=received_at)
            assert again.events == parsed.events, "parse() is not deterministic"
            assert again.control_id == parsed.control_id
            expected = valid_expected.get(sample.name)
            if expected:
                actual = {"message_type": parsed.message_type, "control_id": parsed.control_id,
                          "sender": parsed.sender,
                          "events": [event_to_dict(e) for e in parsed.events]}
                _matches(actual, expected, sample.name)

        @pytest.mark.parametrize("sample", valid, ids=ids(valid))
        def test_reply_round_trips(self, sample: Path) -> None:
            adapter = build()
            raw = sample.read_bytes()
            parsed = adapter.parse(raw, received_at=received_at)
            reader = _reader(adapter)
            for status, accepted in ((OutcomeStatus.ACCEPTED, True),
                                     (OutcomeStatus.DUPLICATE, True),
                                     (OutcomeStatus.ERROR, False),
                                     (OutcomeStatus.CONFLICT, False)):
                reply = adapter.reply(parsed, raw, Outcome(status), now=received_at)
                assert isinstance(reply, Reply) and isinstance(reply.body, bytes)
                if reader is None:
                    continue
                summary = reader.read_reply(reply)
                assert summary.accepted is accepted, f"{status}: read back as {summary}"
                if summary.control_id:
                    assert summary.control_id == parsed.control_id

        @pytest.mark.parametrize("sample", invalid, ids=ids(invalid))
        def test_invalid_sample_rejected(self, sample: Path) -> None:
            adapter = build()
            raw = sample.read_bytes()
            expected = invalid_expected.get(sample.name)
            assert expected is not None, \
                f"{sample.name}: add it to invalid/{EXPECTED_FILE} with its expected location"
            with pytest.raises(MessageRejected) as info:
                adapter.parse(raw, received_at=received_at)
            exc = info.value
            if "location" in expected:
                assert exc.location == str(expected["location"]), exc.reason
            if "code" in expected:
                assert exc.code == str(expected["code"]), exc.reason
            if "contains" in expected:
                assert str(expected["contains"]) in exc.reason
            issues = rejection_issues(exc)
            outcome = Outcome(OutcomeStatus.REJECTED, issues)
            reply = adapter.reply(None, raw, outcome, now=received_at)
            assert isinstance(reply, Reply) and reply.body
            reader = _reader(adapter)
            if reader is not None:
                summary = reader.read_reply(reply)
                assert not summary.accepted
                for issue in issues:
                    if issue.location:
                        assert issue.location in summary.locations, \
                            f"reply does not name {issue.location!r}: {summary.locations}"

        @pytest.mark.parametrize("sample", valid, ids=ids(valid))
        def test_damaged_sample_never_crashes(self, sample: Path) -> None:
            adapter = build()
            for damaged in mutations(sample.read_bytes()):
                try:
                    parsed = adapter.parse(damaged, received_at=received_at)
                except MessageRejected as exc:
                    outcome = Outcome(OutcomeStatus.REJECTED, rejection_issues(exc))
                    assert adapter.reply(None, damaged, outcome, now=received_at).body
                else:
                    check_parsed(adapter, parsed)

    AdapterConformance.__name__ = f"Test{adapter_cls.__name__}Conformance"
    AdapterConformance.__qualname__ = AdapterConformance.__name__
    return AdapterConformance
