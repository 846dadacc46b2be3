"""Where a hospital's Z-segment keeps the facts HL7 v2.5 has no field for (configuration)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DOCUMENT_FACTS", "LINE_FACTS", "ZFields", "ZLayout"]

LINE_FACTS = ("specification", "manufacturer", "price", "approval_no", "generic_name",
              "standard_code", "lot_no", "expiry", "manu_date", "rx_only")
# kept in Event.extra under these names
DOCUMENT_FACTS = ("phar_prac_cert_no", "rx_circ_flag", "setl_id")
# the gateway's own ZJC after its first six fields
_ZJC_EXTENSIONS = {"manu_date": 7, "rx_only": 8, "phar_prac_cert_no": 9, "rx_circ_flag": 10,
                   "setl_id": 11}


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
    # facts of the whole dispense rather than of one product: a Z-segment is per line,
    # so the first of a prescription's Z-segments that gives one gives it for all
    phar_prac_cert_no: int | None = Field(
        default=None, ge=1, le=99, description="药师执业证书编号 of the dispensing pharmacist")
    rx_circ_flag: int | None = Field(
        default=None, ge=1, le=99,
        description="外配处方标志 (Y/N or 1/0): dispensed on a prescription from another "
                    "institution (处方流转)")
    setl_id: int | None = Field(default=None, ge=1, le=99,
                                description="医保结算ID: the insurance settlement of the visit")

    @cached_property
    def positions(self) -> tuple[tuple[str, int], ...]:
        """(name, position) of each single-valued fact of a line this layout carries."""
        return tuple((n, getattr(self, n)) for n in LINE_FACTS if getattr(self, n) is not None)

    @cached_property
    def document_positions(self) -> tuple[tuple[str, int], ...]:
        """(name, position) of each fact of the whole document this layout carries."""
        return tuple((n, getattr(self, n)) for n in DOCUMENT_FACTS
                     if getattr(self, n) is not None)


class ZLayout(ZFields):
    """A Z-segment name and its field positions, as one hospital's HIS sends them."""

    segment: str = Field(default="ZJC", pattern=r"^Z[A-Z0-9]{2}$")

    @model_validator(mode="before")
    @classmethod
    def _zjc_extensions(cls, data: Any) -> Any:
        # ZJC-7 manufacture date, ZJC-8 prescription-only, ZJC-9 pharmacist's licence
        # number, ZJC-10 外配处方标志, ZJC-11 医保结算ID; a layout of another segment
        # predates them and may use 7–11 otherwise. A position the layout gives another
        # fact stays that fact's: a hospital whose ZJC-10 was its 本位码 before ZJC-10
        # was documented must not have its 本位码 read as a flag
        if isinstance(data, dict) and data.get("segment", "ZJC") == "ZJC":
            taken = {v for v in data.values() if isinstance(v, int)}
            return {**{k: v for k, v in _ZJC_EXTENSIONS.items() if v not in taken}, **data}
        return data
