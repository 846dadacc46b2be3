"""The conformance kit run on the HL7 v2 adapter with its sample corpus."""

from pathlib import Path

from adapters.hl7v2 import HL7v2Adapter
from adapters.testing import make_conformance_tests

DATA = Path(__file__).parent.parent / "data" / "hl7v2"

CONFIG = {
    "facilities": {
        "ZJSRMYY": "H33010200001",  # 浙江省人民医院
        "HZSDYYY": "H33010600017",  # 杭州市第一人民医院
    },
    "z_by_facility": {
        # this hospital's pharmacy system sends its own Z-segment layout
        "HZSDYYY": {"segment": "ZYP", "manufacturer": 1, "approval_no": 2, "specification": 3,
                    "price": 4, "standard_code": 5, "trace_codes": 6, "generic_name": 7},
    },
}

TestHL7v2Conformance = make_conformance_tests(HL7v2Adapter, CONFIG, DATA, alias="hl7v2")
