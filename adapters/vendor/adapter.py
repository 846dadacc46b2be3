"""Vendor XML and JSON over HTTP, driven by a declarative profile.

The gateway mounts each configured listener on ``POST /ingest/{listener}``. One
adapter instance serves one profile; ``kinds`` of the instance is the profile
name, which is also each parsed message's ``message_type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
from lxml import etree
from pydantic import BaseModel

from adapters.base import Outcome, OutcomeStatus, ParsedMessage, Reply, ReplySummary, Severity
from adapters.vendor.config import VendorConfig
from adapters.vendor.engine import JsonProfileReader, ProfileReader, XmlProfileReader
from adapters.vendor.profile import load_profile
from adapters.vendor.safe_xml import parse_xml
from canonical.errors import MessageRejected

__all__ = ["VendorConfig", "VendorJsonAdapter", "VendorXmlAdapter", "shipped_profiles"]


class _VendorAdapter:
    """Shared part of the XML and JSON vendor adapters: the contract around a reader."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    config_model: ClassVar[type[BaseModel]] = VendorConfig
    transport: ClassVar[str] = "http"
    _engine: ClassVar[type[ProfileReader]]

    def __init__(self, config: VendorConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, VendorConfig):
            config = VendorConfig.model_validate(config)
        self.config = config
        self.profile = load_profile(config.profile)
        self._reader = self._engine(self.profile, config, self.name)
        self.kinds = frozenset({self.profile.name})  # type: ignore[misc]

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """Read every document of the body into one event each, as the profile says.

        Args:
            raw: the HTTP request body.
            received_at: the gateway's receipt time, timezone-aware.

        Returns:
            The parsed message; ``message_type`` is the profile name.

        Raises:
            MessageRejected: the body is malformed or a field is missing or invalid;
                ``location`` is the path of the offending value.
        """
        return self._reader.parse(raw, received_at=received_at)

    # --- reply
    def _reply_fields(self, parsed: ParsedMessage | None, raw: bytes,
                      outcome: Outcome) -> tuple[int, bool, str, list[tuple[str, str]]]:
        ok = outcome.status in (OutcomeStatus.ACCEPTED, OutcomeStatus.DUPLICATE) \
            and not outcome.blocked
        if ok:
            status = 200
        elif outcome.status is OutcomeStatus.CONFLICT:
            status = 409
        elif outcome.status is OutcomeStatus.ERROR and not outcome.blocked and all(
                i.code in ("", "207") for i in outcome.issues if i.severity is Severity.ERROR):
            # the gateway's own fault (code 207, or nothing named): the sender resends
            status = 500
        elif outcome.blocked or (all(i.code in ("204", "205") for i in outcome.issues
                                    if i.severity is Severity.ERROR) and outcome.issues):
            status = 422
        else:
            status = 400
        control = parsed.control_id if parsed is not None else ""
        errors = [(i.location, i.text) for i in outcome.issues]
        return status, ok, control, errors

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """The answer in the vendor's own shape (profile ``reply``): code, message, errors."""
        raise NotImplementedError


class VendorXmlAdapter(_VendorAdapter):
    """Vendor XML documents, hardened parsing, fields by XPath."""

    name: ClassVar[str] = "vendor-xml"
    kinds: ClassVar[frozenset[str]] = frozenset({"vendor-xml"})
    _engine: ClassVar[type[ProfileReader]] = XmlProfileReader

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """An XML answer with the profile's element names."""
        spec = self.profile.reply
        status, ok, control, errors = self._reply_fields(parsed, raw, outcome)
        root = etree.Element(spec.root)
        etree.SubElement(root, spec.code).text = spec.success_code if ok else spec.failure_code
        first = next((t for _, t in errors), "")
        etree.SubElement(root, spec.message).text = spec.success_message if ok else first
        etree.SubElement(root, spec.control_id).text = control
        for location, text in errors:
            el = etree.SubElement(root, spec.errors)
            el.set(spec.error_location, location)
            el.text = text
        body = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
        return Reply(body, "application/xml; charset=utf-8", status)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read an XML answer back.

        Raises:
            MessageRejected: the body is not such an answer.
        """
        spec = self.profile.reply
        root = parse_xml(reply.body, max_bytes=1 << 20, max_depth=8)
        code = root.findtext(spec.code) or ""
        locations = tuple(e.get(spec.error_location) or "" for e in root.iterchildren(spec.errors))
        return ReplySummary(code == spec.success_code, root.findtext(spec.control_id) or "",
                            locations)


class VendorJsonAdapter(_VendorAdapter):
    """Vendor JSON documents, fields by JSON pointer."""

    name: ClassVar[str] = "vendor-json"
    kinds: ClassVar[frozenset[str]] = frozenset({"vendor-json"})
    _engine: ClassVar[type[ProfileReader]] = JsonProfileReader

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """A JSON answer with the profile's key names."""
        spec = self.profile.reply
        status, ok, control, errors = self._reply_fields(parsed, raw, outcome)
        first = next((t for _, t in errors), "")
        body = {spec.code: spec.success_code if ok else spec.failure_code,
                spec.message: spec.success_message if ok else first,
                spec.control_id: control,
                spec.errors: [{spec.error_location: loc, spec.message: text}
                              for loc, text in errors]}
        return Reply(orjson.dumps(body), "application/json", status)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read a JSON answer back.

        Raises:
            MessageRejected: the body is not such an answer.
        """
        spec = self.profile.reply
        try:
            body = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise MessageRejected("reply is not JSON", code="100") from None
        locations = tuple(str(e.get(spec.error_location, "")) for e in body.get(spec.errors, ()))
        return ReplySummary(str(body.get(spec.code)) == spec.success_code,
                            str(body.get(spec.control_id) or ""), locations)


def shipped_profiles() -> list[Path]:
    """The profile files that ship with the gateway."""
    return sorted((Path(__file__).parent / "profiles").glob("*.yaml"))
