"""``check-config`` names the mandatory platform fields the configured adapters cannot
fill: events of that kind would all be held. A warning, not a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, write_config

from gateway.cli.main import main
from gateway.config import parse_config
from gateway.platforms.coverage import config_gaps

SHIPPED = ROOT / "adapters" / "vendor" / "profiles" / "warehouse-stock-json.yaml"
ZHAOCAI = {"name": "zj", "profile": "zhaocai", "url": "http://127.0.0.1:9/zc/api",
           "app_code": "JCGW-HZ-001", "app_secret": "zc-secret"}


def _profile_without(tmp: Path, *keys: str) -> Path:
    """The shipped warehouse profile with the event fields ``keys`` not mapped."""
    profile = yaml.safe_load(SHIPPED.read_text("utf-8"))
    for key in keys:
        del profile["event"][key]
    path = tmp / "warehouse-no-operator.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")
    return path


def _config(tmp: Path, profile: Path, **nhsa: Any) -> Path:
    spd = {"name": "spd", "adapter": "vendor-json", "transport": "http",
           "config": {"profile": str(profile)}}
    path = write_config(tmp, mllp_port=2575, http_port=8080, platform_url="http://127.0.0.1:9/")
    data = yaml.safe_load(path.read_text("utf-8"))
    data["listeners"].append(spd)
    data["destinations"][0].update(nhsa)
    data["destinations"].append(ZHAOCAI)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def test_a_profile_that_maps_no_operator_name_is_warned_of_per_destination(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, _profile_without(tmp_path, "pharmacist.name", "pharmacist.id"))
    assert main(["check-config", "-c", str(config)]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    for expected in ("nhsa 3503 purc_retn_opter_name", "nhsa 3504 purc_retn_opter_name",
                     "zj delivery.receive receiver"):
        (line,) = [w for w in warnings if expected in w]
        assert "listener spd (vendor-json) fills no party.pharmacist.name" in line
        assert "field_defaults." in line
    # the HL7 v2 listener carries the operator (ZWD-5): no warning names it for that field
    assert not any("his-mllp" in w and "opter_name" in w for w in warnings)


def test_a_field_default_or_the_shipped_profile_leaves_no_such_warning(tmp_path: Path) -> None:
    def fields(cfg_path: Path) -> set[tuple[str, str, str]]:
        cfg = parse_config(yaml.safe_load(cfg_path.read_text("utf-8")), str(cfg_path))
        gaps, unchecked = config_gaps(cfg)
        assert unchecked == []
        return {(g.destination, g.transaction, g.field) for g in gaps if g.listener == "spd"}

    lacking = _profile_without(tmp_path, "pharmacist.name", "pharmacist.id")
    assert ("nhsa", "3503", "purc_retn_opter_name") in fields(_config(tmp_path, lacking))
    defaulted = _config(tmp_path, lacking,
                        field_defaults={"purc_retn_opter_name": "药库管理员"})
    assert ("nhsa", "3503", "purc_retn_opter_name") not in fields(defaulted)
    assert ("zj", "delivery.receive", "receiver") in fields(defaulted)  # its own default
    shipped = fields(_config(tmp_path, SHIPPED))
    assert not any(f in ("purc_retn_opter_name", "receiver") for _, _, f in shipped)
    # the shipped profile reads the stock-change type of a 报损 / 调拨 (变动类型)
    assert ("nhsa", "3502", "inv_chg_type") not in shipped
    no_type = _profile_without(tmp_path, "pharmacist.name")
    profile = yaml.safe_load(no_type.read_text("utf-8"))
    del profile["extra"]["inv_chg_type"]
    no_type.write_text(yaml.safe_dump(profile, allow_unicode=True), "utf-8")
    assert ("nhsa", "3502", "inv_chg_type") in fields(_config(tmp_path, no_type))


def test_a_fact_the_catalog_can_supply_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path, mllp_port=2575, http_port=8080,
                        platform_url="http://127.0.0.1:9/")
    data = yaml.safe_load(path.read_text("utf-8"))
    # a hospital's own Z segment without the prescription-only flag
    data["listeners"][0]["config"].update(z_segment="ZYP", z_fields={"specification": 1})
    gaps, _ = config_gaps(parse_config(data, "gw.yaml"))
    (rx,) = [g for g in gaps if (g.transaction, g.field) == ("3505", "rx_flag")]
    assert rx.catalog and "处方药标志" in rx.message


def test_payments_from_finance_json_and_hl7_fill_the_settlements_receipts(
        tmp_path: Path) -> None:
    payments = ROOT / "adapters" / "vendor" / "profiles" / "finance-payment-json.yaml"
    path = _config(tmp_path, SHIPPED)
    data = yaml.safe_load(path.read_text("utf-8"))
    data["listeners"].append({"name": "finance", "adapter": "vendor-json", "transport": "http",
                              "config": {"profile": str(payments)}})
    gaps, unchecked = config_gaps(parse_config(data, "gw.yaml"))
    assert unchecked == []
    settlement = {(g.listener, g.field) for g in gaps if g.transaction == "settlement.submit"}
    # the receipts a payment settles: 入库单号 (JSON) and ZWD-13 (HL7 v2 FK)
    assert not any(field == "receiptNos" for _, field in settlement), settlement


def test_every_derived_source_of_every_specification_is_known_to_the_report() -> None:
    """``serve`` and ``check-config`` ask each mandatory field's inputs: a derived source
    missing from ``DERIVED_INPUTS`` stopped the gateway's start with a KeyError."""
    from gateway.platforms.coverage import inputs_of
    from gateway.platforms.fields import SPECS
    from gateway.platforms.zhaocai_fields import DOCUMENTS

    sources = {spec.source for specs in SPECS.values() for spec in specs}
    sources |= {spec.source for doc in DOCUMENTS.values() for _, spec in doc.fields()}
    for source in sorted(sources):
        assert isinstance(inputs_of(source), tuple), source
