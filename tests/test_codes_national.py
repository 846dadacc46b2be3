"""National code validation against the real NHSA code list and mutated codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from codes import (
    CodeError,
    CodeKind,
    ConsumableCode,
    DrugCode,
    HerbalCode,
    enterprise_from_standard_code,
    is_valid,
    kind_of,
    parse_national_code,
    split_standard_code,
    validate,
)

DATA = Path(__file__).parent / "data" / "codes"


def _real_codes() -> list[str]:
    with (DATA / "nhsa_drug_codes.csv").open(encoding="utf-8", newline="") as fh:
        return [row["national_code"] for row in csv.DictReader(fh)]


REAL = _real_codes()


def test_every_real_code_validates() -> None:
    assert len(REAL) == 10_870
    failures = {c: validate(c) for c in REAL if validate(c) is not None}
    assert failures == {}
    kinds = [kind_of(c) for c in REAL]
    assert kinds.count(CodeKind.WESTERN_DRUG) == 3_755
    assert kinds.count(CodeKind.PATENT_MEDICINE) == 7_115


def test_every_real_code_parses_back_to_itself() -> None:
    for code in REAL:
        parsed = parse_national_code(code)
        assert isinstance(parsed, DrugCode)
        rebuilt = (
            parsed.category
            + parsed.drug_class
            + parsed.generic_name_code
            + (parsed.dosage_form or "")
            + parsed.specification
            + parsed.packaging
            + parsed.enterprise
        )
        assert rebuilt == code


def test_western_segments() -> None:
    code = parse_national_code("XA01ABD075A002010100483")
    assert code == DrugCode(
        code="XA01ABD075A002010100483",
        kind=CodeKind.WESTERN_DRUG,
        drug_class="A01AB",
        generic_name_code="D075",
        dosage_form="A002",
        specification="01",
        packaging="01",
        enterprise="00483",
    )
    assert code.generic_name_initial == "D"
    assert code.generic_group == "XA01ABD075"
    assert code.product_without_enterprise == "XA01ABD075A0020101"


def test_patent_medicine_segments() -> None:
    code = parse_national_code("ZA09BAD0254010102017")
    assert isinstance(code, DrugCode)
    assert code.kind is CodeKind.PATENT_MEDICINE
    assert code.drug_class == "A09BA"
    assert code.generic_name_code == "D0254"
    assert code.dosage_form is None
    assert (code.specification, code.packaging, code.enterprise) == ("01", "01", "02017")
    assert code.generic_group == "ZA09BAD0254"


def test_same_generic_name_shares_group_in_real_data() -> None:
    # 复方聚乙二醇(3350)电解质散 from three enterprises: one generic group, three enterprises.
    codes = [c for c in REAL if c.startswith("XA06ADF336P001")]
    parsed = [parse_national_code(c) for c in codes]
    assert len(codes) >= 3
    assert {p.generic_group for p in parsed if isinstance(p, DrugCode)} == {"XA06ADF336"}
    enterprises = {p.enterprise for p in parsed if isinstance(p, DrugCode)}
    assert enterprises == {"00233", "05816", "84196"}
    assert {c[-5:] for c in codes} == enterprises


def test_consumable_20_and_27() -> None:
    short = parse_national_code("C0101010011303807555")
    assert short == ConsumableCode(
        code="C0101010011303807555",
        discipline="01",
        use="01",
        site_function="01",
        generic_name="001",
        material="13",
        feature="038",
        enterprise="07555",
        spec_model_serial=None,
    )
    long = parse_national_code("C01010100113038075550001234")
    assert isinstance(long, ConsumableCode)
    assert long.spec_model_serial == "0001234"
    assert long.base_code == "C0101010011303807555"
    assert long.classification == "010101"
    assert kind_of("C01010100113038075550001234") is CodeKind.CONSUMABLE


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("C010101001130380755", "consumable code (C) must be 20 or 27 characters long, got 19"),
        ("C01010100113038075551", "consumable code (C) must be 20 or 27 characters long, got 21"),
        ("C01010100113038075550001", "must be 20 or 27 characters long, got 24"),
        ("C01010100A1303807555", "position 10 must be a digit (generic-name code), got 'A'"),
        ("C0101010011303807555000123X", "position 27 must be a digit"),
    ],
)
def test_consumable_rejections(code: str, reason: str) -> None:
    got = validate(code)
    assert got is not None and reason in got


def test_herbal_piece() -> None:
    herbal = parse_national_code("T000700412")
    assert herbal == HerbalCode(code="T000700412", body="000700412")
    assert herbal.kind is CodeKind.HERBAL_PIECE
    assert validate("T00070041") == "herbal-piece code (T) must be 10 characters long, got 9"
    assert validate("T00070041.") == (
        "position 10 must be a letter or digit (herbal-piece serial), got '.'"
    )


# Mutations of real codes: each must be rejected for the reason the mutation introduced.
WESTERN = "XA01ABD075A002010100483"
PATENT = "ZA09BAD0254010102017"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (WESTERN[:-1], "western-drug code (X) must be 23 characters long, got 22"),
        (WESTERN + "0", "western-drug code (X) must be 23 characters long, got 24"),
        (PATENT[:-2], "Chinese-patent-medicine code (Z) must be 20 characters long, got 18"),
        (PATENT + "1", "Chinese-patent-medicine code (Z) must be 20 characters long, got 21"),
        (WESTERN.lower(), "position 1 must be upper case, got 'x'"),
        ("XA01AbD075A002010100483", "position 6 must be upper case (ATC pharmacological"),
        ("XA01ABd075A002010100483", "position 7 must be upper case (pinyin initial"),
        (
            "XA01AB3075A002010100483",
            "position 7 must be a letter (pinyin initial of the generic name), got '3'",
        ),
        ("XA01ABD0O5A002010100483", "position 9 must be a digit (generic-name serial), got 'O'"),
        ("XA01ABD0751002010100483", "position 11 must be a letter (dosage-form letter), got '1'"),
        ("XA01ABD075A002010I00483", "position 18 must be a digit (packaging variant), got 'I'"),
        ("XA01ABD075A00201010048B", "position 23 must be a digit (enterprise code), got 'B'"),
        ("XAO1ABD075A002010100483", "position 3 must be a digit (ATC therapeutic subgroup)"),
        ("ZA09BA90254010102017", "position 7 must be a letter (pinyin initial"),
        ("ZA09BAD02540101020I7", "position 19 must be a digit (enterprise code), got 'I'"),
        ("YA01ABD075A002010100483", "position 1 must be X (western drug), Z (Chinese patent"),
        ("1A01ABD075A002010100483", "got '1'"),
        ("XA01ABD075A００2010100483", "position 12 must be a digit (dosage-form serial), got '０'"),
        ("", "code is empty"),
        (" " + WESTERN, "leading or trailing whitespace"),
        (WESTERN + "\n", "leading or trailing whitespace"),
    ],
)
def test_mutated_codes_rejected_with_reason(code: str, reason: str) -> None:
    got = validate(code)
    assert got is not None
    assert reason in got
    assert not is_valid(code)
    assert kind_of(code) is None
    with pytest.raises(CodeError) as info:
        parse_national_code(code)
    assert info.value.reason == got
    assert isinstance(info.value, ValueError)


def test_every_single_character_mutation_of_real_codes_is_caught() -> None:
    # Swapping a letter position for a digit (and vice versa) must never slip through.
    for code in REAL[::97]:
        for i, ch in enumerate(code):
            mutated = code[:i] + ("7" if ch.isalpha() else "K") + code[i + 1 :]
            if i == 0:
                assert validate(mutated) is not None
                continue
            reason = validate(mutated)
            assert reason is not None, mutated
            assert reason.startswith(f"position {i + 1} must be"), reason


def test_is_valid_with_kind() -> None:
    assert is_valid(WESTERN, CodeKind.WESTERN_DRUG)
    assert not is_valid(WESTERN, CodeKind.PATENT_MEDICINE)
    assert is_valid(PATENT, CodeKind.PATENT_MEDICINE)
    assert is_valid("C0101010011303807555", CodeKind.CONSUMABLE)
    assert is_valid("81234560012345678901", CodeKind.TRACE)
    assert not is_valid("81234560012345678901")  # a trace code is not a national code
    assert not is_valid(WESTERN, CodeKind.TRACE)


def test_non_string_is_rejected_not_crashing() -> None:
    assert validate(12345) == "code must be a string, got int"  # type: ignore[arg-type]
    assert kind_of(None) is None  # type: ignore[arg-type]


def test_enterprise_from_standard_code() -> None:
    assert enterprise_from_standard_code("86900166000077") == "00166"
    assert enterprise_from_standard_code("86902816000048甲") == "02816"
    assert enterprise_from_standard_code(" 86902816000048乙 ") == "02816"
    assert enterprise_from_standard_code("1034") is None
    assert enterprise_from_standard_code("国药准字Z13020622") is None
    assert enterprise_from_standard_code("") is None
    assert split_standard_code("86902816000048甲") == ("86902816000048", "甲")
    assert split_standard_code("86902816000048") == ("86902816000048", None)
    assert split_standard_code("甲86902816000048乙") is None


def test_standard_code_enterprise_matches_national_code_in_real_catalog() -> None:
    # SOURCES.md counts 7,422 agreeing rows by prefix; one of them is a 本位码 run together
    # with a thousand characters of other cells, which is not trusted as a 本位码.
    agree = 0
    with (DATA / "nhsa_drug_catalog_sample.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if enterprise_from_standard_code(row["药品本位码"]) == row["医保药品编码"][-5:]:
                agree += 1
    assert agree == 7_421
