"""A dispense whose message does not say whether the drug is prescription-only waits;
importing a national catalog that says it releases the dispense, with rx_flag from the
catalog."""

from __future__ import annotations

from helpers import DATA, sample

RX_CATALOG = DATA / "codes" / "nhsa_drug_catalog_rx_flag.csv"
PLAIN_CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"


async def _import(gw, path, version: str) -> dict:
    _, answer = await gw.api("POST", "/catalogs", params={"version": version},
                             data=path.read_bytes(), headers={"Content-Type": "text/csv"},
                             expect=201)
    return answer


async def _held(gw) -> list[dict]:
    async with gw.session.get(gw.url("/api/held")) as r:
        assert r.status == 200
        return await r.json()


async def test_a_catalog_with_the_prescription_flag_releases_a_held_dispense(gateway) -> None:
    await gateway.send(sample("rds_o13_dispense_no_rx_flag.hl7"))  # acknowledged AA
    (held,) = await _held(gateway)
    assert held["document_no"] == "CF20261123000991"
    assert any("3505 rx_flag" in reason for reason in held["reasons"]), held["reasons"]
    # a catalog without the column gives nothing to fill it: still held, nothing sent
    await _import(gateway, PLAIN_CATALOG, "2025-first")
    assert len(await _held(gateway)) == 1
    assert gateway.simulator.order == []
    answer = await _import(gateway, RX_CATALOG, "2025-first-rx")
    assert answer["columns"]["rx_flag"] == "处方药标志"
    await gateway.delivered(1)
    (sent,) = gateway.received()
    assert sent["rtal_docno"] == "CF20261123000991" and sent["rx_flag"] == "1"
    assert await _held(gateway) == []
