"""Adapter parse-path benchmarks, each beside the library it is measured against.

Run from the repository root: ``python bench/adapters.py``. The last line is
``RESULT hl7_ratio=<ours/python-hl7> fhir_per_s=<MedicationRequests/s> xml_per_s=<documents/s>``.

* HL7 v2: the adapter's full parse (decode, split, map to canonical events) of
  every valid sample in tests/data/hl7v2/valid, against python-hl7's
  ``hl7.parse`` of the same messages (given already-decoded text, which only
  helps the baseline).
* FHIR: MedicationRequest ingest (JSON decode, R4 validation with fhir.resources
  R4B models, mapping to an event) of the MedicationRequest samples, against
  fhir.resources' own ``model_validate_json`` of the same bytes.
* Vendor XML: the his-prescription profile on a 2.3 KB prescription document
  (hardened parse, DOCTYPE and depth checks, 40 fields, 2 line items), against
  a bare hardened lxml parse with 2 XPath look-ups.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hl7  # noqa: E402
from lxml import etree  # noqa: E402

from adapters.fhir import FhirR4Adapter  # noqa: E402
from adapters.hl7v2 import HL7v2Adapter  # noqa: E402
from adapters.vendor import VendorXmlAdapter  # noqa: E402

DATA = ROOT / "tests" / "data"
NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)


def _calls_for(fn: Callable[[], object], seconds: float) -> int:
    fn()
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < 0.05:
        fn()
        n += 1
    return max(1, int(seconds * n / (time.perf_counter() - start)))


def compare(ours: Callable[[], object], theirs: Callable[[], object], items: int,
            seconds: float = 0.4, rounds: int = 7) -> tuple[float, float, float]:
    """Items/s of both and their ratio: medians over interleaved rounds.

    The machine is shared, so the two sides alternate round by round and the
    ratio is taken per round: a burst of load from elsewhere hits both.
    """
    n_ours, n_theirs = _calls_for(ours, seconds), _calls_for(theirs, seconds)
    a_rates, b_rates, ratios = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n_ours):
            ours()
        a = n_ours * items / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(n_theirs):
            theirs()
        b = n_theirs * items / (time.perf_counter() - t0)
        a_rates.append(a)
        b_rates.append(b)
        ratios.append(a / b)
    return statistics.median(a_rates), statistics.median(b_rates), statistics.median(ratios)


def bench_hl7() -> float:
    cfg = {"facilities": {"ZJSRMYY": "H33010200001", "HZSDYYY": "H33010600017"},
           "z_by_facility": {"HZSDYYY": {"segment": "ZYP", "manufacturer": 1, "approval_no": 2,
                                         "specification": 3, "price": 4, "standard_code": 5,
                                         "trace_codes": 6, "generic_name": 7}}}
    adapter = HL7v2Adapter(cfg)
    raws = [p.read_bytes() for p in sorted((DATA / "hl7v2" / "valid").glob("*.hl7"))]
    texts = [adapter.parse(r, received_at=NOW) and r.decode("gb18030" if b"GB18030" in r[:200]
                                                            else "utf-8") for r in raws]

    def ours() -> None:
        for r in raws:
            adapter.parse(r, received_at=NOW)

    def theirs() -> None:
        for t in texts:
            hl7.parse(t)

    a, b, ratio = compare(ours, theirs, len(raws))
    print(f"hl7v2   ours (parse → events)      {a:>10,.0f} msgs/s   "
          f"({len(raws)} messages, {sum(map(len, raws)) // len(raws)} B avg)")
    print(f"hl7v2   python-hl7 hl7.parse       {b:>10,.0f} msgs/s")
    print(f"hl7v2   ratio (median of rounds)   {ratio:>10.1f}×")
    return ratio


def bench_fhir() -> float:
    from fhir.resources.R4B.medicationrequest import MedicationRequest

    adapter = FhirR4Adapter({"organizations": {"Organization/zjsrmyy": "H33010200001"}})
    raws = [p.read_bytes() for p in sorted((DATA / "fhir-r4" / "valid").glob("medicationrequest*"))]

    def ours() -> None:
        for r in raws:
            adapter.parse(r, received_at=NOW)

    def theirs() -> None:
        for r in raws:
            MedicationRequest.model_validate_json(r)

    a, b, _ = compare(ours, theirs, len(raws))
    print(f"fhir    ours (decode+validate+map)  {a:>9,.0f} MedicationRequests/s "
          f"({len(raws)} resources, {sum(map(len, raws)) // len(raws)} B avg)")
    print(f"fhir    fhir.resources R4B validate {b:>9,.0f} MedicationRequests/s")
    return a


def bench_xml() -> float:
    adapter = VendorXmlAdapter({"profile": "his-prescription-xml"})
    raw = (DATA / "vendor-xml" / "valid" / "outpatient_prescription_two_drugs.xml").read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    x1 = etree.XPath("/处方信息/消息头/消息ID/text()")
    x2 = etree.XPath("//药品/院内编码/text()")

    def ours() -> None:
        adapter.parse(raw, received_at=NOW)

    def theirs() -> None:
        root = etree.fromstring(raw, parser)
        x1(root)
        x2(root)

    a, b, _ = compare(ours, theirs, 1)
    print(f"xml     ours (profile → event)     {a:>10,.0f} documents/s ({len(raw)} B)")
    print(f"xml     lxml parse + 2 XPath       {b:>10,.0f} documents/s")
    return a


def main() -> None:
    ratio = bench_hl7()
    fhir = bench_fhir()
    xml = bench_xml()
    print(f"RESULT hl7_ratio={ratio:.1f} fhir_per_s={fhir:.0f} xml_per_s={xml:.0f}")


if __name__ == "__main__":
    main()
