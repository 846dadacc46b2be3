"""The ledger follows the store, and its rules reach prescribers through the RDE^O11 ACK."""

from __future__ import annotations

import aiohttp
from helpers import HOSPITAL, MLLPClient, ack_fields, eventually, numbered_dispense, sample

from gateway.app import LEDGER_FEED


async def test_rde_with_non_winning_product_gets_aa_with_warning_err(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    raw = sample("rde_o11_prescription_utf8.hl7")
    ack_text = (await client.send(raw)).decode()
    await client.close()
    segs = [s.split("|") for s in ack_text.split("\r") if s]
    assert segs[1][:3] == ["MSA", "AA", "RDE20261123000042"]
    errs = [s for s in segs if s[0] == "ERR"]
    assert errs, "a lagging contract and a non-winning product must produce a warning"
    err = errs[0]
    assert err[4] == "W"  # warning severity: advice, the prescription was taken
    assert "阿那曲唑片" in err[8] and "中选" in err[8]
    rows = await gateway.store.query("SELECT count(*) FROM events WHERE kind = 'prescription'")
    assert rows[0][0] == 1


async def test_ledger_folds_each_committed_dispense_once_and_reports_it(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    for n in range(5):
        assert ack_fields(await client.send(numbered_dispense(n)))["MSA"][1] == "AA"
    await client.close()
    feed = gateway.app[LEDGER_FEED]

    async def unfolded() -> int:
        rows = await gateway.store.query("SELECT count(*) FROM ledger_pending")
        return int(rows[0][0])
    await eventually(lambda: feed.folded >= 5, what="the feed folded the dispenses")
    # each event is marked folded in the transaction that counted it: nothing is left to
    # fold, and a second fold finds nothing
    assert await unfolded() == 0
    assert feed.folded == 5
    assert await feed.fold_pending() == 0
    async with aiohttp.ClientSession() as s, \
            s.get(gateway.url(f"/ledger/report/{HOSPITAL}")) as r:
        assert r.status == 200
        report = await r.json()
    anastrozole = next(c for c in report["contracts"] if c["generic_key"] == "XL02BGA045")
    # only the winning product was dispensed: its use share of the generic name is 100 %
    assert anastrozole["use_share"] == "1.0000"
    assert anastrozole["lagging"] is True  # nothing received into stock yet


def test_rules_and_cds_resolve_hospital_codes_with_the_current_crosswalk() -> None:
    from decimal import Decimal

    from gateway.ledger.wiring import item_resolver
    from mappings.crosswalk import Crosswalk, CrosswalkEntry

    holder = {"cw": Crosswalk([])}
    resolve = item_resolver(lambda: holder["cw"])
    assert resolve(HOSPITAL, "Y9990001") is None
    holder["cw"] = holder["cw"].with_changes(add=[CrosswalkEntry(
        HOSPITAL, "Y9990001", "XL02BGA045A001010104641", factor=Decimal(14))])
    assert resolve(HOSPITAL, "Y9990001") == "XL02BGA045A001010104641"
