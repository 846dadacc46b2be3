"""Where a hospital's Z-segment keeps the facts HL7 v2.5 has no field for (configuration)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    # the gateway's own ZJC carries these at 7–9 (see ``ZLayout``); a hospital's
    # own segment has them only where its layout says
    manu_date: int | None = Field(default=None, ge=1, le=99, description="生产日期 (DT)")
    rx_only: int | None = Field(default=None, ge=1, le=99,
                                description="处方药 (Y/N or 1/0): prescription-only product")
    phar_prac_cert_no: int | None = Field(
        default=None, ge=1, le=99, description="药师执业证书编号 of the dispensing pharmacist")

    @cached_property
    def positions(self) -> tuple[tuple[str, int], ...]:
        """(name, position) of each single-valued fact this layout carries."""
        names = ("specification", "manufacturer", "price", "approval_no", "generic_name",
                 "standard_code", "lot_no", "expiry", "manu_date", "rx_only",
                 "phar_prac_cert_no")
        return tuple((n, getattr(self, n)) for n in names if getattr(self, n) is not None)


class ZLayout(ZFields):
    """A Z-segment name and its field positions, as one hospital's HIS sends them."""

    segment: str = Field(default="ZJC", pattern=r"^Z[A-Z0-9]{2}$")

    @model_validator(mode="before")
    @classmethod
    def _zjc_extensions(cls, data: Any) -> Any:
        # ZJC-7 manufacture date, ZJC-8 prescription-only, ZJC-9 pharmacist's licence
        # number; a layout of another segment predates them and may use 7–9 otherwise
        if isinstance(data, dict) and data.get("segment", "ZJC") == "ZJC":
            return {"manu_date": 7, "rx_only": 8, "phar_prac_cert_no": 9, **data}
        return data
