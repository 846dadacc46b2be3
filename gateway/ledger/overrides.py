"""How prescribers answered the warnings: accepted / overridden, per doctor and department."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from typing import Any

from gateway.store.ledger_records import CardRow, FeedbackRow

__all__ = ["override_report", "override_report_csv"]


def override_report(rows: Iterable[tuple[CardRow, FeedbackRow | None]]) -> dict[str, Any]:
    """Per doctor and department, and per rule: cards shown, accepted, overridden (with
    reasons) and unanswered, from the cards with their feedback
    (``CdsTables.feedback_rows``)."""
    groups: dict[tuple[str, str], Counter[str]] = {}
    reasons: dict[tuple[str, str], Counter[str]] = {}
    by_rule: dict[str, Counter[str]] = {}
    for card, fb in rows:
        doctor, dept, rule = card.doctor, card.department, card.rule_id
        outcome = fb.outcome if fb else ""
        reason_code = fb.reason_code if fb else ""
        reason_display = fb.reason_display if fb else ""
        key = (doctor, dept)
        g = groups.setdefault(key, Counter())
        r = by_rule.setdefault(rule, Counter())
        for c in (g, r):
            c["shown"] += 1
            c[outcome or "unanswered"] += 1
        if outcome == "overridden":
            reasons.setdefault(key, Counter())[reason_display or reason_code or "未说明"] += 1
    out = []
    for (doctor, dept), g in sorted(groups.items(), key=lambda x: (x[0][1], x[0][0])):
        answered = g["accepted"] + g["overridden"]
        out.append({"doctor": doctor, "department": dept, "shown": g["shown"],
                     "accepted": g["accepted"], "overridden": g["overridden"],
                     "unanswered": g["unanswered"],
                     "override_rate": None if not answered
                     else round(g["overridden"] / answered, 4),
                     "reasons": dict(reasons.get((doctor, dept), Counter()).most_common())})
    return {"by_prescriber": out,
            "by_rule": {k: dict(v) for k, v in sorted(by_rule.items())}}


def override_report_csv(report: dict[str, Any]) -> str:
    """The per-prescriber rows as CSV (UTF-8 with BOM)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(("department", "doctor", "shown", "accepted", "overridden", "unanswered",
                "override_rate", "reasons"))
    for r in report["by_prescriber"]:
        reasons = "；".join(f"{k}×{v}" for k, v in r["reasons"].items())
        w.writerow((r["department"], r["doctor"], r["shown"], r["accepted"], r["overridden"],
                    r["unanswered"], "" if r["override_rate"] is None else r["override_rate"],
                    reasons))
    return buf.getvalue()
