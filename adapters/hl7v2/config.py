"""Configuration of the HL7 v2 adapter (validated at start, frozen)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.hl7v2.layout import ZFields, ZLayout
from adapters.hl7v2.warehouse import DEFAULT_DOC_TYPES
from canonical.model import EventKind

__all__ = ["SUPPORTED_VERSIONS", "HL7v2Config"]

SUPPORTED_VERSIONS = ("2.3.1", "2.4", "2.5", "2.5.1")


class HL7v2Config(BaseModel):
    """Configuration of the HL7 v2 adapter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    facilities: dict[str, str] = Field(
        default_factory=dict,
        description="MSH-4 sending facility (namespace id) → 12-character 定点医药机构编号",
    )
    default_hospital: str | None = Field(
        default=None, description="hospital code for messages whose MSH-4 is not listed")
    default_charset: str = Field(default="utf-8",
                                 description="codec when MSH-18 is empty (GB18030 tried next)")
    versions: tuple[str, ...] = SUPPORTED_VERSIONS
    z_segment: str = Field(default="ZJC", pattern=r"^Z[A-Z0-9]{2}$",
                           description="Z-segment carrying spec / maker / price / trace codes")
    z_fields: ZFields = Field(default_factory=ZFields,
                              description="field positions in the default Z-segment")
    z_by_facility: dict[str, ZLayout] = Field(
        default_factory=dict,
        description="MSH-4 sending facility → its own Z-segment name and field positions")
    warehouse_doc_types: dict[str, EventKind] = Field(
        default_factory=lambda: dict(DEFAULT_DOC_TYPES),
        description="ZWH^Z01 document type (ZWD-2) → event kind")

    @field_validator("facilities")
    @classmethod
    def _codes_are_hospital_codes(cls, v: dict[str, str]) -> dict[str, str]:
        for fac, code in v.items():
            if len(code) != 12 or not code.isalnum():
                raise ValueError(
                    f"facility {fac!r} maps to {code!r}: a 定点医药机构编号 has 12 letters/digits")
        return v
