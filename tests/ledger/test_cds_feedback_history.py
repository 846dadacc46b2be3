"""CDS feedback is each card's history: a second answer does not replace the first."""

from __future__ import annotations

from datetime import datetime

import pytest
from ledger_helpers import HOSPITAL, row_before_migration

from gateway.ledger import override_report
from gateway.store.ledger_records import CardRow, FeedbackRow

CARD = CardRow("3f1c0c52-5a7e-4d8e-9d43-0b6a2b1f7a01", "jicai-order-sign", HOSPITAL,
               "Practitioner/D10023", "肿瘤内科", "nonwinning-while-lagging",
               "XL02BGY096A001010178720", ("s-1",), datetime.fromisoformat(
                   "2026-07-02T10:00:00+08:00"))
OVERRIDDEN = FeedbackRow(CARD.uuid, "overridden", "clinical-necessity", "临床必需，不可替代",
                         "既往用药", (), "2026-07-02T10:00:05+08:00")
ACCEPTED = FeedbackRow(CARD.uuid, "accepted", "", "", "", ("s-1",),
                       "2026-07-02T10:03:40+08:00")


async def test_answers_are_appended_and_the_report_reads_the_latest(make_store):
    store = await make_store()
    await store.cds.save_cards([CARD])
    await store.cds.save_feedback([OVERRIDDEN])
    await store.cds.save_feedback([ACCEPTED])
    await store.cds.save_feedback([ACCEPTED])  # the client sent it again
    history = await store.cds.feedback_history(CARD.uuid)
    assert history == [OVERRIDDEN, ACCEPTED]  # the override's reason is still there
    [(card, latest)] = await store.cds.feedback_rows()
    assert card == CARD and latest == ACCEPTED
    [row] = override_report([(card, latest)])["by_prescriber"]
    assert (row["shown"], row["accepted"], row["overridden"]) == (1, 1, 0)


async def test_feedback_stored_before_the_migration_is_kept(make_store,
                                                             monkeypatch: pytest.MonkeyPatch):
    await row_before_migration(make_store, monkeypatch, "cds_feedback_history", "cds_feedback",
                               (CARD.uuid, "overridden", "clinical-necessity",
                                "临床必需，不可替代", "既往用药", b"[]", OVERRIDDEN.at))
    store = await make_store()
    await store.cds.save_feedback([ACCEPTED])
    assert await store.cds.feedback_history(CARD.uuid) == [OVERRIDDEN, ACCEPTED]
