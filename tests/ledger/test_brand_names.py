"""Prescribed by generic name or by brand: words, not substrings [SX 五(三)]."""

from __future__ import annotations

import pytest
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst

from gateway.ledger import DraftLine, Ledger
from gateway.ledger.dosage_forms import current_dosage_forms
from gateway.ledger.names import drug_word, generic_stem, prescribed_by_brand

FORMS = current_dosage_forms()


@pytest.mark.parametrize(("name", "generic", "brand"), [
    ("依西美坦 25mg", "依西美坦片", False),  # the form left out: still the generic name
    ("依西美坦片25mg*30片", "依西美坦片", False),
    ("依西美坦片（阿诺新）", "依西美坦片", False),  # generic name, brand in brackets
    ("阿诺新 25mg", "依西美坦片", True),  # Pfizer's brand
    ("阿诺新（依西美坦片）", "依西美坦片", True),  # brand written first
    ("依西美坦新片", "依西美坦片", True),  # contains the generic's characters, another word
    ("瑞宁得", "阿那曲唑片", True),
    ("阿比特龙片 0.25g", "醋酸阿比特龙片", False),  # the salt left out
    ("注射用盐酸利托君 50mg", "盐酸利托君", False),
    ("维生素B12片", "维生素B12片", False),  # a digit inside the name is not a strength
    ("", "依西美坦片", False),  # no name: nothing to judge
])
def test_brand_or_generic(name: str, generic: str, brand: bool):
    assert prescribed_by_brand(name, generic, FORMS) is brand


def test_words_and_stems():
    assert drug_word("他达拉非片5mg") == "他达拉非片"
    assert drug_word("阿那曲唑片 1mg*14片") == "阿那曲唑片"
    assert generic_stem("阿托伐他汀钙片", FORMS) == generic_stem("阿托伐他汀片", FORMS)


def _brand_findings(ledger: Ledger, line: DraftLine) -> list[str]:
    return [f.rule_id for f in ledger.evaluate_lines(HOSPITAL, [line], cst(2026, 3, 2))
            if f.rule_id == "brand-instead-of-generic"]


async def test_the_brand_rule_reads_words(ledger: Ledger):
    assert _brand_findings(ledger, DraftLine(1, EXEMESTANE_WIN, "依西美坦 25mg")) == []
    assert _brand_findings(ledger, DraftLine(1, EXEMESTANE_PFIZER, "阿诺新 25mg")) == [
        "brand-instead-of-generic"]
