"""Dosage-form groups: a generic name's tablet and injection are two contracts.

盐酸利托君 is sold as tablets (XG02CAL073 A001 …) and as powder for injection
(XG02CAL073 B001 …, 注射用盐酸利托君): the codes share the generic-name segment, and a
batch that covers both forms has two results with two agreed volumes. The codes are real
(data/nhsa_drug_codes.csv).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from ledger_helpers import cst, event, fold

from canonical.errors import ConfigError
from canonical.model import EventKind
from gateway.cds.cards import build_cards
from gateway.ledger import (
    ContractFormatError,
    DraftLine,
    Ledger,
    LedgerSettings,
    read_contracts_csv,
)
from gateway.ledger.dosage_forms import (
    SHIPPED_DOSAGE_FORMS,
    configure_dosage_forms,
    current_dosage_forms,
    dosage_forms_from_mapping,
    load_dosage_forms,
)

HOSPITAL = "H36070200012"
TABLET_WIN = "XG02CAL073A001010100353"
TABLET_OTHER = "XG02CAL073A001010105843"
INJECTION_WIN = "XG02CAL073B001010105843"
INJECTION_OTHER = "XG02CAL073B001010100792"

HEADER = ("hospital_id,project,batch,generic_name,national_code,product_name,winning_price,"
          "supplier,cycle_start,cycle_end,agreed_volume,agreed_ratio")
ROWS = [
    f"{HOSPITAL},江西省药品集中带量采购,2026年第一批,盐酸利托君,{TABLET_WIN},"
    "盐酸利托君片 10mg,1.2000,示例制药有限公司,2026-01-01,2026-12-31,6000,0.70",
    f"{HOSPITAL},江西省药品集中带量采购,2026年第一批,盐酸利托君,{INJECTION_WIN},"
    "注射用盐酸利托君 50mg,18.5000,示例药业有限公司,2026-01-01,2026-12-31,800,0.70",
]


def _with_form(forms: tuple[str, str]) -> str:
    lines = [HEADER + ",剂型"] + [f"{r},{f}" for r, f in zip(ROWS, forms, strict=True)]
    return "\n".join(lines) + "\n"


def test_national_code_segments_name_the_group():
    forms = current_dosage_forms()
    assert forms.code_group(TABLET_WIN) == "口服常释剂型"
    assert forms.code_group(INJECTION_WIN) == "注射剂"
    assert forms.code_group("XA01ABD075A002010100483") == "A002"  # 含片: listed nowhere
    assert forms.code_group("ZA09BAD0254010102017") == ""  # Z codes carry no form
    assert forms.form_group("注射用无菌粉末") == forms.form_group("注射液") == "注射剂"
    assert forms.form_group("薄膜衣片") == forms.form_group("胶囊") == "口服常释剂型"
    assert forms.name_group("注射用盐酸利托君 50mg") == "注射剂"
    assert forms.name_group("盐酸二甲双胍缓释片 0.5g") == "缓释控释剂型"
    assert forms.name_group("维生素B12片") == "口服常释剂型"
    assert forms.name_group("克霉唑阴道片") == "阴道用制剂"


def test_a_deployment_extends_the_groups_and_mistakes_are_named(tmp_path: Path):
    data = yaml.safe_load(SHIPPED_DOSAGE_FORMS.read_text(encoding="utf-8"))
    data["groups"][0]["codes"].append("A002")
    path = tmp_path / "forms.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_dosage_forms(path).code_group("XA01ABD075A002010100483") == "口服常释剂型"
    with pytest.raises(ConfigError) as exc:
        dosage_forms_from_mapping({"groups": [{"name": "甲", "codes": ["A001"]},
                                              {"name": "乙", "codes": ["A001", "片"]}]}, "f")
    assert "code A001 is already in group 甲" in str(exc.value)
    assert "'片' is not a dosage-form segment" in str(exc.value)


def test_tablet_and_injection_are_two_contracts_with_or_without_the_column():
    old = read_contracts_csv(HEADER + "\n" + "\n".join(ROWS) + "\n")
    new = read_contracts_csv(_with_form(("片剂", "注射用无菌粉末")))
    assert old == new
    tablet, injection = new
    assert (tablet.dosage_form, injection.dosage_form) == ("口服常释剂型", "注射剂")
    assert tablet.generic_key == injection.generic_key == "XG02CAL073"
    assert tablet.contract_id != injection.contract_id
    assert tablet.winning_codes == {TABLET_WIN}
    assert injection.winning_codes == {INJECTION_WIN}


def test_a_form_that_contradicts_the_national_code_is_refused():
    with pytest.raises(ContractFormatError) as exc:
        read_contracts_csv(_with_form(("片剂", "片剂")))
    assert "row 3: dosage_form: '片剂' (口服常释剂型) is not the form of national code" \
        in str(exc.value)
    with pytest.raises(ContractFormatError) as exc:
        read_contracts_csv(_with_form(("片剂", "贴剂")))
    assert "row 3: dosage_form: '贴剂' is in no dosage-form group" in str(exc.value)


@pytest.fixture
async def ritodrine(ledger: Ledger) -> Ledger:
    await ledger.load_contracts(read_contracts_csv(_with_form(("片剂", "注射剂"))),
                                cst(2026, 1, 1))
    return ledger


def _contract(ledger: Ledger, form: str):
    [c] = [c for c in ledger.contracts(HOSPITAL) if c.generic_name == "盐酸利托君"
           and c.dosage_form == form]
    return c


async def test_each_line_counts_only_into_its_own_forms_contract(ritodrine: Ledger):
    await fold(ritodrine, [
        event(EventKind.RECEIPT, [(TABLET_WIN, 1000, "1.2000"), (TABLET_OTHER, 300, "2.5000"),
                                  (INJECTION_WIN, 200, "18.5000")], at=cst(2026, 3, 2)),
        event(EventKind.DISPENSE, [(INJECTION_WIN, 50, None), (INJECTION_OTHER, 50, None)],
              at=cst(2026, 3, 3)),
    ])
    now = cst(2026, 3, 31)
    tablet = ritodrine.status(_contract(ritodrine, "口服常释剂型"), now)
    injection = ritodrine.status(_contract(ritodrine, "注射剂"), now)
    assert tablet.received_qty == 1000
    assert tablet.completion == Decimal(1000) / Decimal(6000)
    assert tablet.qty_share == Decimal(1000) / Decimal(1300)
    assert tablet.nonwinning_codes == (TABLET_OTHER,)
    assert tablet.use_share is None  # no tablet dispensed
    assert injection.received_qty == 200
    assert injection.completion == Decimal(200) / Decimal(800)
    assert injection.qty_share == 1
    assert injection.nonwinning_codes == ()
    assert injection.use_share == Decimal("0.5")


async def test_cards_never_cross_the_dosage_form(ritodrine: Ledger):
    now = cst(2026, 7, 2, 10)  # nothing received: both forms lag their time progress
    lines = [DraftLine(1, INJECTION_WIN, "注射用盐酸利托君"),
             DraftLine(2, TABLET_OTHER, "盐酸利托君片"),
             DraftLine(3, INJECTION_OTHER, "注射用盐酸利托君")]
    findings = ritodrine.evaluate_lines(HOSPITAL, lines, now)
    by_line = {f.line_seq: f for f in findings if f.rule_id == "nonwinning-while-lagging"}
    assert 1 not in by_line  # the winning injection is not labelled non-winning
    assert [r.national_code for r in by_line[2].replacements] == [TABLET_WIN]
    assert [r.national_code for r in by_line[3].replacements] == [INJECTION_WIN]
    resources = {n: {"resourceType": "MedicationRequest", "id": f"mr{n}"} for n in (1, 2, 3)}
    cards, _ = build_cards(findings, resources, ritodrine.rules)
    suggested = [a["resource"]["medicationCodeableConcept"]["coding"][0]["code"]
                 for c in cards for s in c.get("suggestions", []) for a in s["actions"]]
    assert sorted(suggested) == sorted([TABLET_WIN, INJECTION_WIN])


async def test_a_contract_stored_by_an_earlier_release_is_taken_over(make_store, calendar,
                                                                    rules):
    ledger = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await ledger.load()
    # an earlier release kept both forms in one body under the generic key alone
    legacy_id = f"{HOSPITAL}/江西省药品集中带量采购/2026年第一批/XG02CAL073"
    rows = [dict(zip(HEADER.split(","), r.split(","), strict=True)) for r in ROWS]
    await ledger.tables.save_contracts([(legacy_id, {"rows": rows})], cst(2026, 1, 1))
    await ledger.catch_up()
    assert {c.dosage_form for c in ledger.contracts(HOSPITAL)
            if c.generic_name == "盐酸利托君"} == {"口服常释剂型", "注射剂"}
    # importing the tablet's result again retires the old body and keeps the injection
    [tablet, _] = read_contracts_csv(_with_form(("片剂", "注射剂")))
    await ledger.load_contracts([tablet], cst(2026, 2, 1))
    snap = await ledger.tables.snapshot()
    stored = [r["national_code"] for body in snap.contracts for r in body["rows"]
              if r["generic_name"] == "盐酸利托君"]
    assert sorted(stored) == sorted([TABLET_WIN, INJECTION_WIN])
    assert len([c for c in ledger.contracts(HOSPITAL) if c.generic_name == "盐酸利托君"]) == 2


async def test_a_segment_added_to_a_group_later_rekeys_the_stored_contract(make_store,
                                                                            calendar, rules):
    # 小儿氨酚黄那敏片: segment A025 is in no shipped group, so it is a group of its own
    code, other = "XN02BEX085A025010103640", "XN02BEX085A025010105153"
    csv_text = (f"{HEADER}\n{HOSPITAL},江西省药品集中带量采购,2026年第一批,小儿氨酚黄那敏片,"
                f"{code},小儿氨酚黄那敏片,0.1500,示例制药有限公司,2026-01-01,2026-12-31,"
                "5000,0.60\n")
    data = yaml.safe_load(SHIPPED_DOSAGE_FORMS.read_text(encoding="utf-8"))
    ledger = Ledger(await make_store(), LedgerSettings(calendar=calendar), rules)
    await ledger.load()
    try:
        [before] = read_contracts_csv(csv_text)
        assert before.dosage_form == "A025"
        await ledger.load_contracts([before], cst(2026, 1, 1))
        data["groups"][0]["codes"].append("A025")
        configure_dosage_forms(dosage_forms_from_mapping(data, "extended"))
        await ledger.load()  # the stored body now reads as 口服常释剂型
        [after] = read_contracts_csv(csv_text)
        assert after.contract_id != before.contract_id
        assert [c.contract_id for c in ledger.contracts(HOSPITAL)] == [after.contract_id]
        await ledger.load_contracts([after], cst(2026, 2, 1))
        snap = await ledger.tables.snapshot()
        assert [b["id"] for b in snap.contracts] == [after.contract_id]  # one body, rekeyed
        await fold(ledger, [event(EventKind.RECEIPT, [(code, 100, "0.1500"), (other, 50, "0.3")],
                                  at=cst(2026, 3, 2), hospital=HOSPITAL)])
        st = ledger.status(ledger.contracts(HOSPITAL)[0], cst(2026, 3, 31))
        assert (st.received_qty, st.nonwinning_qty) == (100, 50)
    finally:
        configure_dosage_forms(None)
