"""Vendor XML and JSON over HTTP, described by declarative profiles."""

from adapters.vendor.adapter import (
    VendorConfig,
    VendorJsonAdapter,
    VendorXmlAdapter,
    shipped_profiles,
)
from adapters.vendor.profile import Profile, load_profile
from adapters.vendor.safe_xml import parse_xml

__all__ = [
    "Profile",
    "VendorConfig",
    "VendorJsonAdapter",
    "VendorXmlAdapter",
    "load_profile",
    "parse_xml",
    "shipped_profiles",
]
