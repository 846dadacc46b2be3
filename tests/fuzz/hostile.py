"""Hostile inputs for the whole-gateway fuzz test, from the samples under ``tests/data``.

Deterministic for a seed: the same seed gives the same inputs, so a failure is replayed
by running the test again. What a clumsy HIS or an attacker sends: bytes flipped and
spans deleted, segments and repetitions multiplied, fields replaced by huge or signed
numbers, odd digits, control characters, other charsets and very long text, JSON values
of the wrong type, deep nesting, XML entities (internal expansion and external files).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data"
MAX_FRAME = 1_000_000  # under the listener's max_frame_bytes: every input is one message

ODD_VALUES: tuple[str, ...] = (
    "", "0", "-1", "-0.0000001", "81000000000000000123", "1e400", "NaN", "Infinity",
    "²", "١٢٣", "１２", "2026-31-10", "20261331250000", "20261123093000-2400",
    "20261123093000+9999", "\\X0D\\", "\\F\\\\S\\", "\\E\\", "'; DROP TABLE outbox;--",
    "阿莫西林胶囊" * 200, "x" * 70_000, "\x00", "\x1b[31m", "\x7f", "\ufeff", "\ud7ff",
    "UNICODE UTF-8", "GB 18030-2000", "8859/1", "ASCII", "EBCDIC",
)
CONTROL = (b"\x00", b"\x01", b"\x08", b"\x1c", b"\x1b", b"\r", b"\n", b"\xff", b"\xfe",
           b"|", b"^", b"~", b"\\", b"&")
XML_ATTACKS: tuple[bytes, ...] = (
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>',
)


def _samples(folder: str, suffix: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((DATA / folder).glob(f"*/*{suffix}"))] + \
        [p.read_bytes() for p in sorted((DATA / folder).glob(f"*{suffix}"))]


class Hostile:
    """Random and mutated inputs; every call draws from the seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.hl7_samples = _samples("hl7v2", ".hl7")
        self.fhir_samples = _samples("fhir-r4", ".json")
        self.xml_samples = _samples("vendor-xml", ".xml")
        self.json_samples = _samples("vendor-json", ".json")
        self.count = 0

    # -- HL7 v2 over MLLP ----------------------------------------------------
    def hl7(self) -> bytes:
        """One MLLP payload: exactly one frame (no start or end marker inside it)."""
        self.count += 1
        r = self.rng
        if r.random() < 0.05:
            raw = r.randbytes(r.randint(0, 3000))
        else:
            raw = r.choice(self.hl7_samples)
            # most get a fresh control id, so they are handled and not found duplicates
            if r.random() < 0.8:
                raw = self._fresh_control_id(raw)
            for _ in range(r.randint(1, 3)):
                raw = r.choice(self._hl7_mutations)(self, raw)[:MAX_FRAME]
        return raw.replace(b"\x0b", b"").replace(b"\x1c\r", b"\x1c")

    def _fresh_control_id(self, raw: bytes) -> bytes:
        head, sep, rest = raw.partition(b"\r")
        fields = head.split(b"|")
        if len(fields) > 9:
            fields[9] = f"FZ{self.count:06d}{self.rng.randint(0, 999):03d}".encode()
        return b"|".join(fields) + sep + rest

    def _flip(self, raw: bytes) -> bytes:
        if not raw:
            return raw
        b = bytearray(raw)
        for _ in range(self.rng.randint(1, 8)):
            b[self.rng.randrange(len(b))] = self.rng.randrange(256)
        return bytes(b)

    def _insert(self, raw: bytes) -> bytes:
        at = self.rng.randint(0, len(raw))
        junk = b"".join(self.rng.choice(CONTROL) for _ in range(self.rng.randint(1, 6)))
        return raw[:at] + junk + raw[at:]

    def _delete(self, raw: bytes) -> bytes:
        if len(raw) < 2:
            return raw
        a = self.rng.randrange(len(raw))
        return raw[:a] + raw[a + self.rng.randint(1, 200):]

    def _truncate(self, raw: bytes) -> bytes:
        return raw[: self.rng.randint(0, len(raw))]

    def _segments(self, raw: bytes) -> list[bytes]:
        return raw.rstrip(b"\r").split(b"\r")

    def _multiply_segment(self, raw: bytes) -> bytes:
        segs = self._segments(raw)
        i = self.rng.randrange(len(segs))
        segs[i + 1:i + 1] = [segs[i]] * self.rng.choice((2, 50, 600))
        return b"\r".join(segs) + b"\r"

    def _shuffle_segments(self, raw: bytes) -> bytes:
        segs = self._segments(raw)
        head, rest = segs[:1], segs[1:]
        self.rng.shuffle(rest)
        return b"\r".join(head + rest) + b"\r"

    def _replace_field(self, raw: bytes) -> bytes:
        segs = self._segments(raw)
        i = self.rng.randrange(len(segs))
        fields = segs[i].split(b"|")
        j = self.rng.randrange(len(fields))
        value = self.rng.choice(ODD_VALUES)
        codec = self.rng.choice(("utf-8", "gb18030", "latin-1"))
        fields[j] = value.encode(codec, "replace")
        segs[i] = b"|".join(fields)
        return b"\r".join(segs) + b"\r"

    def _repeat_field(self, raw: bytes) -> bytes:
        segs = self._segments(raw)
        i = self.rng.randrange(len(segs))
        fields = segs[i].split(b"|")
        j = self.rng.randrange(len(fields))
        fields[j] = b"~".join([fields[j] or b"1"] * self.rng.choice((3, 300, 5000)))
        segs[i] = b"|".join(fields)
        return b"\r".join(segs) + b"\r"

    _hl7_mutations: tuple[Callable[[Hostile, bytes], bytes], ...] = (
        _flip, _insert, _delete, _truncate, _multiply_segment, _shuffle_segments,
        _replace_field, _replace_field, _repeat_field)

    # -- HTTP ------------------------------------------------------------------
    def http(self) -> tuple[str, bytes, str]:
        """(path, body, content type) for one request to the HTTP listeners."""
        self.count += 1
        r = self.rng
        kind = r.choice(("fhir", "fhir", "xml", "json"))
        if kind == "xml":
            return "/ingest/his-xml", self._xml(), "application/xml"
        samples = self.fhir_samples if kind == "fhir" else self.json_samples
        body = self._json(r.choice(samples))
        if kind == "fhir":
            path = r.choice(("/fhir", "/fhir", "/fhir/MedicationDispense", "/fhir/Bundle"))
            return path, body, "application/fhir+json"
        return "/ingest/spd-json", body, "application/json"

    def _json(self, raw: bytes) -> bytes:
        r = self.rng
        if r.random() < 0.2:
            return self._flip(self._delete(raw))
        try:
            doc = json.loads(raw)
        except ValueError:
            return self._flip(raw)
        for _ in range(r.randint(1, 4)):
            doc = self._mutate_node(doc, depth=0)
        body = json.dumps(doc, ensure_ascii=r.random() < 0.5).encode()
        if r.random() < 0.05:
            depth = r.choice((50, 5000))
            body = b"[" * depth + body + b"]" * depth
        return body[:MAX_FRAME]

    def _odd_json_value(self) -> Any:
        r = self.rng
        return r.choice((
            None, True, 0, -1, 10**30, -(10**30), 1e308, 0.1, [], {}, ["completed"],
            {"coding": [{"system": None}]}, r.choice(ODD_VALUES), [r.choice(ODD_VALUES)] * 30,
        ))

    def _mutate_node(self, node: Any, depth: int) -> Any:
        r = self.rng
        if isinstance(node, dict) and node and depth < 12:
            key = r.choice(list(node))
            roll = r.random()
            if roll < 0.2:
                del node[key]
            elif roll < 0.5:
                node[key] = self._odd_json_value()
            else:
                node[key] = self._mutate_node(node[key], depth + 1)
            return node
        if isinstance(node, list) and node and depth < 12:
            i = r.randrange(len(node))
            roll = r.random()
            if roll < 0.2:
                node.extend([node[i]] * r.choice((1, 200)))
            else:
                node[i] = self._mutate_node(node[i], depth + 1)
            return node
        return self._odd_json_value()

    def _xml(self) -> bytes:
        r = self.rng
        raw = r.choice(self.xml_samples)
        roll = r.random()
        if roll < 0.15:
            decl_end = raw.find(b"?>") + 2 if raw.startswith(b"<?xml") else 0
            root = raw.find(b"<", decl_end)
            tag = raw[root + 1:].split(b">", 1)[0].split(b" ", 1)[0]
            attack = r.choice(XML_ATTACKS).replace(b" r ", b" " + tag + b" ", 1)
            entity = b"&x;" if b"SYSTEM" in attack and b"%" not in attack else b"&f;"
            body = raw[:root] + attack + raw[root:]
            close = body.rfind(b"</")
            return body[:close] + entity + body[close:]
        if roll < 0.25:
            return b"<a>" * r.choice((100, 10_000)) + b"x" + b"</a>" * 100
        for _ in range(r.randint(1, 3)):
            raw = r.choice((self._flip, self._insert, self._delete, self._truncate,
                            self._xml_text))(raw)
        return raw

    def _xml_text(self, raw: bytes) -> bytes:
        """Replace the text of a random element with an odd value."""
        starts = [i for i in range(len(raw)) if raw[i:i + 1] == b">"]
        if not starts:
            return raw
        i = self.rng.choice(starts) + 1
        j = raw.find(b"<", i)
        if j < 0:
            return raw
        value = self.rng.choice(ODD_VALUES).replace("&", "&amp;").replace("<", "&lt;")
        return raw[:i] + value.encode("utf-8", "replace") + raw[j:]
