"""The hospitals of one deployment ranked on their 集采 execution [GZ 三, GZ annex 1].

From each hospital's report (optionally one project and batch of it):

- on schedule (R3): the contracts whose completion reaches 序时进度, as a share of all;
  the progress ratio is the mean of completion ÷ 序时进度 over the contracts;
- use against the agreed ratio (R4): the mean of winning-product use share ÷ agreed ratio
  over the contracts with dispensing recorded; how many reach their ratio.

``by="use"`` (the default) ranks as GZ annex 1 does — use share, given that the agreed
volumes are kept: hospitals with no contract behind 序时进度 come first, then by use
attainment, then by the share on schedule. ``by="progress"`` ranks by the share on
schedule, then the progress ratio, then use attainment. Figures are compared to 4 decimal
places (as reports show them); a hospital without a figure ranks after those with one.
Hospitals whose figures are all equal share a rank (1, 1, 3) and are listed by hospital
code, so the same data always give the same list. The use share is the report's, to 4
places.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from gateway.ledger.ledger import Ledger
from gateway.ledger.metrics import ratio, time_progress
from gateway.ledger.report import build_report
from gateway.ledger.xlsx import PERCENT, num, table_xlsx

__all__ = ["RANK_BY", "HospitalStanding", "build_ranking", "rank_hospitals", "ranking_csv",
           "ranking_json", "ranking_xlsx", "standing"]

RankBy = Literal["use", "progress"]
RANK_BY: tuple[RankBy, ...] = ("use", "progress")
_Q = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class HospitalStanding:
    """One hospital's figures for the ranking."""

    hospital_id: str
    contracts: int
    lagging: int
    on_schedule: Decimal | None  # contracts not lagging ÷ contracts with an agreed volume
    progress_ratio: Decimal | None  # mean completion ÷ 序时进度
    use_attainment: Decimal | None  # mean use share ÷ agreed ratio
    use_ratio_met: int
    use_known: int


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


def _keep(item: dict[str, Any], project: str | None, batch: str | None) -> bool:
    return (project is None or item["project"] == project) and (
        batch is None or item["batch"] == batch)


def standing(report: dict[str, Any], project: str | None = None,
             batch: str | None = None) -> HospitalStanding:
    """A hospital's standing from its report, counting the contracts of ``project`` and
    ``batch`` when given."""
    items = [i for i in report["contracts"] if _keep(i, project, batch)]
    progress, use = [], []
    as_of = date.fromisoformat(report["period"]["to"])
    for i in items:
        # from the exact figures: the report rounds completion and 序时进度 to 4 places
        completion = ratio(Decimal(i["received_qty"]), Decimal(i["agreed_volume"]))
        elapsed, _, _ = time_progress(date.fromisoformat(i["year_start"]),
                                      date.fromisoformat(i["year_end"]), as_of)
        if completion is not None:
            progress.append(completion / elapsed if elapsed else Decimal(1))
        share, agreed = num(i["use_share"]), num(i["agreed_ratio"])
        if share is not None and agreed:
            use.append(share / agreed)
    lagging = sum(bool(i["lagging"]) for i in items)
    return HospitalStanding(
        report["hospital_id"], len(items), lagging,
        Decimal(len(progress) - lagging) / len(progress) if progress else None,
        _mean(progress), _mean(use), sum(i["use_share_meets_ratio"] is True for i in items),
        len(use))


def _key(s: HospitalStanding, by: RankBy) -> tuple[Any, ...]:
    def desc(v: Decimal | None) -> tuple[int, Decimal]:
        # missing figures last; otherwise larger first
        return (1, Decimal(0)) if v is None else (0, -v.quantize(_Q, ROUND_HALF_UP))

    if by == "progress":
        return desc(s.on_schedule), desc(s.progress_ratio), desc(s.use_attainment)
    return (s.lagging > 0 or s.on_schedule is None, desc(s.use_attainment),
            desc(s.on_schedule))


def rank_hospitals(standings: Iterable[HospitalStanding], by: RankBy = "use"
                   ) -> list[tuple[int, HospitalStanding]]:
    """(rank, standing) best first; equal figures share a rank, listed by hospital code."""
    ordered = sorted(standings, key=lambda s: (_key(s, by), s.hospital_id))
    out: list[tuple[int, HospitalStanding]] = []
    for pos, s in enumerate(ordered, start=1):
        tied = bool(out) and _key(out[-1][1], by) == _key(s, by)
        out.append((out[-1][0] if tied else pos, s))
    return out


def _r(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_Q, ROUND_HALF_UP))


def ranking_json(ranked: list[tuple[int, HospitalStanding]]) -> list[dict[str, Any]]:
    """The ranked hospitals as report rows (ratios as strings to 4 places)."""
    ranks = [r for r, _ in ranked]
    return [{"rank": r, "tied": ranks.count(r) > 1, "hospital_id": s.hospital_id,
             "contracts": s.contracts, "lagging": s.lagging,
             "on_schedule": _r(s.on_schedule), "progress_ratio": _r(s.progress_ratio),
             "use_attainment": _r(s.use_attainment), "use_ratio_met": s.use_ratio_met,
             "use_known": s.use_known} for r, s in ranked]


RANKING_COLUMNS = (("rank", "排名", None), ("hospital_id", "医疗机构", None),
                   ("contracts", "品种数", None), ("lagging", "低于序时进度品种数", None),
                   ("on_schedule", "达到序时进度品种占比", PERCENT),
                   ("progress_ratio", "完成率/序时进度", PERCENT),
                   ("use_attainment", "使用比例/约定比例", PERCENT),
                   ("use_ratio_met", "达到约定比例品种数", None),
                   ("use_known", "有使用数据品种数", None), ("tied", "并列", None))


def ranking_csv(rows: list[dict[str, Any]]) -> str:
    """The ranking as CSV (UTF-8 with BOM so Excel shows the Chinese)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([key for key, _, _ in RANKING_COLUMNS])
    for row in rows:
        w.writerow(["" if row[k] is None else row[k] for k, _, _ in RANKING_COLUMNS])
    return buf.getvalue()


def ranking_xlsx(rows: list[dict[str, Any]]) -> bytes:
    """The ranking as a one-sheet workbook under Chinese headers."""
    return table_xlsx("排名", RANKING_COLUMNS, rows)


async def build_ranking(ledger: Ledger, now: datetime, month: str | None, *,
                        visible: Callable[[str], bool] = lambda _: True,
                        project: str | None = None, batch: str | None = None,
                        by: RankBy = "use") -> dict[str, Any]:
    """The ranking of the hospitals ``visible`` admits (those with contracts of ``project``
    and ``batch`` when given) for ``month`` (``YYYY-MM``; to date when None).

    Raises:
        ValueError: a malformed month.
    """
    hospitals = sorted({c.hospital_id for c in ledger.contracts() if visible(c.hospital_id)})
    standings = []
    for hospital in hospitals:
        found = standing(await build_report(ledger, hospital, now, month), project, batch)
        if found.contracts:
            standings.append(found)
    return {"as_of": now.isoformat(), "month": month, "project": project, "batch": batch,
            "by": by, "hospitals": ranking_json(rank_hospitals(standings, by))}
