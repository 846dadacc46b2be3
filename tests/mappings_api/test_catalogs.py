"""National catalog versions through the API: import, diff, withdrawn-code alerts."""

from __future__ import annotations

import csv
import io

from api_helpers import OPERATOR
from helpers import DATA, HOSPITAL

CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"
MAPPED = "XL02BGA045A001010104520"  # Y0012345 in the sample crosswalk
CHANGED = "XL02BGA045A001010104641"


def _next_version() -> bytes:
    """The sample catalog with one mapped code withdrawn, one entry changed, one code added."""
    rows = list(csv.reader(io.StringIO(CATALOG.read_text("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    code_at, maker_at = header.index("医保药品编码"), header.index("药品生产企业")
    kept = [r for r in body if r[code_at] != MAPPED]
    assert len(kept) == len(body) - 1
    for r in kept:
        if r[code_at] == CHANGED:
            r[maker_at] = "海正药业(杭州)有限公司"
    added = list(kept[0])
    added[code_at] = "XL02BGA045A001010199999"
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept, added])
    return out.getvalue().encode("utf-8")


async def _import(gw, data: bytes, version: str, expect: int = 201):
    return await gw.api("POST", "/catalogs", params={"version": version}, data=data,
                        headers={"Content-Type": "text/csv"}, expect=expect)


async def test_import_versions_diff_and_withdrawn_alert(gateway) -> None:
    _, first = await _import(gateway, CATALOG.read_bytes(), "2025-first")
    assert first["kind"] == "drug" and first["entries"] == 7703
    assert first["diff"] is None and first["withdrawn_alerts"] == []
    _, alerts = await gateway.api("GET", "/alerts/withdrawn", expect=200)
    assert alerts["alerts"] == [] and "fewer than two" in alerts["message"]

    _, second = await _import(gateway, _next_version(), "2026-01")
    assert second["diff"]["counts"] == {"added": 1, "changed": 1, "withdrawn": 1}
    [alert] = second["withdrawn_alerts"]
    assert alert["code"] == MAPPED
    assert alert["mapped_items"] == [f"{HOSPITAL}/Y0012345"]
    assert "withdrawn in catalog 2026-01" in alert["message"]

    _, versions = await gateway.api("GET", "/catalogs", expect=200)
    assert [v["version"] for v in versions["drug"]] == ["2025-first", "2026-01"]
    _, d = await gateway.api("GET", "/catalogs/diff",
                             params={"from": "2025-first", "to": "2026-01"}, expect=200)
    assert [e["code"] for e in d["withdrawn"]] == [MAPPED]
    assert [e["code"] for e in d["added"]] == ["XL02BGA045A001010199999"]
    [change] = d["changed"]
    assert change["code"] == CHANGED
    assert change["changes"] == [{"field": "manufacturer", "old": "浙江海正药业股份有限公司",
                                  "new": "海正药业(杭州)有限公司"}]
    _, alerts = await gateway.api("GET", "/alerts/withdrawn", expect=200)
    assert [a["code"] for a in alerts["alerts"]] == [MAPPED]

    # once the item is mapped to a listed code, the alert is gone
    await gateway.api("PUT", f"/entries/{HOSPITAL}/Y0012345", params={"valid_from": "2026-01-01"},
                      json={"national_code": "XL02BGA045A001010204641", "factor": "28"},
                      headers=OPERATOR, expect=200)
    _, alerts = await gateway.api("GET", "/alerts/withdrawn", expect=200)
    assert alerts["alerts"] == []


async def test_codes_must_be_in_the_imported_catalog(gateway) -> None:
    await _import(gateway, _next_version(), "2026-01")
    entry = {"hospital_id": HOSPITAL, "item_code": "Y0099001", "national_code": MAPPED,
             "factor": "14"}
    status, err = await gateway.api("POST", "/entries", json=entry, headers=OPERATOR)
    assert status == 400 and "not in the national catalog" in err["problems"][0]


async def test_bad_catalog_requests(gateway) -> None:
    await _import(gateway, CATALOG.read_bytes(), "2025-first")
    status, err = await _import(gateway, CATALOG.read_bytes(), "2025-first", expect=409)
    assert "exists" in err["problems"][0]
    status, err = await _import(gateway, "姓名,年龄\n张三,30\n".encode(), "junk", expect=400)
    assert "nothing was imported" in err["error"]
    status, err = await gateway.api("GET", "/catalogs/diff",
                                    params={"from": "2025-first", "to": "2030"})
    assert status == 404
    status, err = await gateway.api("GET", "/catalogs/diff", params={"from": "2025-first"})
    assert status == 400 and "to=" in err["problems"][0]
    _, versions = await gateway.api("GET", "/catalogs", expect=200)
    assert [v["version"] for v in versions["drug"]] == ["2025-first"]


async def test_search_the_latest_catalog_by_code_standard_code_approval_and_words(
        gateway) -> None:
    import random

    from codes.catalog_files import read_catalog_csv

    await _import(gateway, CATALOG.read_bytes(), "2025-first")
    entries = list(read_catalog_csv(CATALOG).entries.values())
    picked = random.Random(1204).choice([e for e in entries if e.standard_code
                                         and e.approval_no and e.generic_name])
    for query in (picked.code, picked.standard_code, picked.approval_no,
                  f"{picked.generic_name} {picked.manufacturer[:4]}"):
        _, found = await gateway.api("GET", "/catalogs/search", params={"q": query},
                                     expect=200)
        assert picked.code in [h["code"] for h in found["hits"]], query
        assert all(h["version"] == "2025-first" and h["reason"] for h in found["hits"])
    _, first = await gateway.api("GET", "/catalogs/search", params={"q": picked.code},
                                 expect=200)
    assert first["hits"][0]["code"] == picked.code
    assert first["hits"][0]["reason"] == "国家编码一致"
    _, few = await gateway.api("GET", "/catalogs/search", params={"q": "片", "limit": "3"},
                               expect=200)
    assert len(few["hits"]) == 3
    status, err = await gateway.api("GET", "/catalogs/search", params={"q": " "})
    assert status == 400 and "q=" in err["problems"][0]
