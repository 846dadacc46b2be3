"""Where a hospital's Z-segment keeps the facts HL7 v2.5 has no field for (configuration)."""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ZFields", "ZLayout"]


class ZFields(BaseModel):
    """Field positions in a hospital's Z-segment; ``None`` when the segment lacks the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specification: int | None = Field(default=1, ge=1, le=99, description="规格")
    manufacturer: int | None = Field(default=2, ge=1, le=99, description="生产企业")
    price: int | None = Field(default=3, ge=1, le=99, description="单价 (yuan per unit)")
    trace_codes: int | None = Field(default=4, ge=1, le=99,
                                    description="药品追溯码, repeated with ~")
    approval_no: int | None = Field(default=5, ge=1, le=99, description="批准文号")
    generic_name: int | None = Field(default=6, ge=1, le=99, description="通用名")
    standard_code: int | None = Field(default=None, ge=1, le=99, description="药品本位码")
    lot_no: int | None = Field(default=None, ge=1, le=99, description="批号")
    expiry: int | None = Field(default=None, ge=1, le=99, description="有效期 (DT)")

    @cached_property
    def positions(self) -> tuple[tuple[str, int], ...]:
        """(name, position) of each single-valued fact this layout carries."""
        names = ("specification", "manufacturer", "price", "approval_no", "generic_name",
                 "standard_code", "lot_no", "expiry")
        return tuple((n, getattr(self, n)) for n in names if getattr(self, n) is not None)


class ZLayout(ZFields):
    """A Z-segment name and its field positions, as one hospital's HIS sends them."""

    segment: str = Field(default="ZJC", pattern=r"^Z[A-Z0-9]{2}$")
