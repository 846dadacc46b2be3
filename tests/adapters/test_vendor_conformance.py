"""The conformance kit run on the vendor XML and JSON adapters with the shipped profiles."""

from pathlib import Path

from adapters.testing import make_conformance_tests
from adapters.vendor import VendorJsonAdapter, VendorXmlAdapter

DATA = Path(__file__).parent.parent / "data"

CONFIG = XML_CONFIG = {"profile": "his-prescription-xml"}
JSON_CONFIG = {"profile": "warehouse-stock-json", "hospital_id": "H33010200001"}
PAYMENT_CONFIG = {"profile": "finance-payment-json"}

TestVendorXmlConformance = make_conformance_tests(
    VendorXmlAdapter, XML_CONFIG, DATA / "vendor-xml", alias="vendor-xml")
TestVendorJsonConformance = make_conformance_tests(
    VendorJsonAdapter, JSON_CONFIG, DATA / "vendor-json", alias="vendor-json")
TestVendorPaymentConformance = make_conformance_tests(
    VendorJsonAdapter, PAYMENT_CONFIG, DATA / "vendor-json" / "payments", alias="vendor-json")
