"""Configuration of a vendor XML / JSON listener."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.vendor.profile import load_profile

__all__ = ["VendorConfig"]


class VendorConfig(BaseModel):
    """Configuration of a vendor XML / JSON listener."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str | dict[str, Any] = Field(
        description="YAML file, shipped profile name, or the profile inline")
    hospital_id: str | None = Field(
        default=None, description="定点医药机构编号 when the documents do not carry it")
    sender: str | None = Field(default=None, description="sender name when documents have none")
    max_bytes: int = Field(default=1024 * 1024, ge=256, description="largest document taken")
    max_depth: int = Field(default=32, ge=2, le=200, description="deepest XML nesting taken")
    utc_offset_hours: float = Field(default=8, ge=-14, le=14,
                                    description="zone of date-times sent without one")

    @field_validator("hospital_id")
    @classmethod
    def _hospital_code(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 12 or not v.isalnum()):
            raise ValueError(f"{v!r}: a 定点医药机构编号 has 12 letters/digits")
        return v

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        load_profile(v)  # report a bad profile at start, with every problem
        return v
