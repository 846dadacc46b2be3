"""Audited create / update / delete / import over the crosswalk."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from mappings.changes import (
    AuditAction,
    AuditRecord,
    apply_import,
    create_entry,
    delete_entry,
    update_entry,
)
from mappings.crosswalk import Crosswalk
from mappings.entry import CrosswalkEntry, CrosswalkEntryError

H = "310100000001"
CODE = "XG04BET001A001041803307"
CODE2 = "XG04BET001A001010206988"
AT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
DAY = date(2024, 5, 1)


def e(item: str = "YP1", code: str = CODE, **kw: object) -> CrosswalkEntry:
    return CrosswalkEntry(hospital_id=H, item_code=item, national_code=code, **kw)  # type: ignore[arg-type]


def test_create_returns_new_state_and_record_and_keeps_the_old() -> None:
    old = Crosswalk()
    new, record = create_entry(old, e(), user="药剂科 张三", at=AT)
    assert new.lookup(H, "YP1", DAY) == e()
    assert old.lookup(H, "YP1", DAY) is None
    assert record == AuditRecord(at=AT, user="药剂科 张三", action=AuditAction.CREATE,
                                 before=None, after=e())
    assert AuditRecord.from_dict(record.to_dict()) == record


def test_create_refuses_invalid_code_with_the_reason() -> None:
    with pytest.raises(CrosswalkEntryError) as err:
        create_entry(Crosswalk(), e(code="XG04BET001A00104180330"), user="u", at=AT)
    assert "invalid" in str(err.value) and "XG04BET001A00104180330" in str(err.value)


def test_create_refuses_code_not_in_catalog_bad_factor_and_no_user() -> None:
    with pytest.raises(CrosswalkEntryError) as err:
        create_entry(Crosswalk(), e(factor=Decimal(0)), user=" ", at=AT, known_codes={CODE2})
    text = " | ".join(err.value.problems)
    assert "not in the national catalog" in text
    assert "factor" in text
    assert "user" in text


def test_create_refuses_overlap_and_accepts_an_adjacent_range() -> None:
    cw, _ = create_entry(Crosswalk(), e(valid_to=date(2024, 6, 30)), user="u", at=AT)
    with pytest.raises(CrosswalkEntryError, match="overlaps"):
        create_entry(cw, e(code=CODE2, valid_from=date(2024, 6, 1)), user="u", at=AT)
    cw2, _ = create_entry(cw, e(code=CODE2, valid_from=date(2024, 7, 1)), user="u", at=AT)
    assert cw2.lookup(H, "YP1", date(2024, 7, 1)).national_code == CODE2  # type: ignore[union-attr]


def test_update_records_before_and_after() -> None:
    cw, _ = create_entry(Crosswalk(), e(), user="u", at=AT)
    after = e(code=CODE2, factor=Decimal(7))
    new, record = update_entry(cw, e().key, after, user="李四", at=AT, note="换中选企业")
    assert new.lookup(H, "YP1", DAY) == after
    assert (record.action, record.before, record.after, record.note) == (
        AuditAction.UPDATE, e(), after, "换中选企业")


def test_update_errors_name_the_problem() -> None:
    cw, _ = create_entry(Crosswalk(), e(), user="u", at=AT)
    with pytest.raises(CrosswalkEntryError, match="nothing changed"):
        update_entry(cw, e().key, e(), user="u", at=AT)
    with pytest.raises(CrosswalkEntryError, match="no entry"):
        update_entry(cw, (H, "YP9", None), e(item="YP9"), user="u", at=AT)
    with pytest.raises(CrosswalkEntryError, match="cannot move"):
        update_entry(cw, e().key, e(item="YP2"), user="u", at=AT)


def test_delete_unmaps_the_item() -> None:
    cw, _ = create_entry(Crosswalk(), e(), user="u", at=AT)
    new, record = delete_entry(cw, e().key, user="u", at=AT)
    assert new.lookup(H, "YP1", DAY) is None
    assert (record.action, record.before, record.after) == (AuditAction.DELETE, e(), None)


def test_import_creates_updates_skips_equal_and_is_all_or_nothing() -> None:
    cw, _ = create_entry(Crosswalk(), e(), user="u", at=AT)
    cw, _ = create_entry(cw, e(item="YP2"), user="u", at=AT)
    new, records = apply_import(cw, [e(), e(item="YP2", code=CODE2), e(item="YP3")],
                                user="导入", at=AT)
    assert [r.action for r in records] == [AuditAction.UPDATE, AuditAction.CREATE]
    assert new.lookup(H, "YP2", DAY).national_code == CODE2  # type: ignore[union-attr]
    assert len(new) == 3
    with pytest.raises(CrosswalkEntryError, match="invalid"):
        apply_import(cw, [e(item="YP4"), e(item="YP5", code="bad")], user="u", at=AT)
    assert cw.lookup(H, "YP4", DAY) is None
