"""The Chinese working-day calendar (工作日历): weekends and public holidays off, 调休 on.

The calendar is data: one YAML file per year under ``config/calendar/`` that an
operator adds when the State Council publishes the year's holiday arrangement.
A day of a year with no file is not guessed: :class:`CalendarGapError` names the
file to add, so a deadline is never silently computed on weekends alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from canonical.errors import ConfigError, GatewayError

__all__ = [
    "CHINA_TZ",
    "CalendarGapError",
    "WorkCalendar",
    "YearCalendar",
    "end_of_day",
    "load_calendar",
    "load_year",
    "local_date",
]

# China has used UTC+8 without daylight saving since 1991; a fixed offset is exact.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


class CalendarGapError(GatewayError, LookupError):
    """A working-day question reached a year the calendar has no file for."""


def local_date(moment: datetime) -> date:
    """The calendar day of ``moment`` in China (naive datetimes are taken as China time)."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(CHINA_TZ).date()


def end_of_day(day: date) -> datetime:
    """The last microsecond of ``day`` in China time: a day-based deadline's instant."""
    return datetime.combine(day, time.max, tzinfo=CHINA_TZ)


@dataclass(frozen=True, slots=True)
class YearCalendar:
    """One year's holidays and make-up working days (调休上班)."""

    year: int
    holidays: frozenset[date]
    make_up_workdays: frozenset[date]
    source: str = ""


class WorkCalendar:
    """Working days over the years it has files for."""

    __slots__ = ("_years",)

    def __init__(self, years: Iterable[YearCalendar]) -> None:
        self._years = {y.year: y for y in years}

    @property
    def years(self) -> tuple[int, ...]:
        """The years this calendar covers, ascending."""
        return tuple(sorted(self._years))

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day.

        Raises:
            CalendarGapError: no calendar file covers ``day``'s year.
        """
        year = self._years.get(day.year)
        if year is None:
            raise CalendarGapError(
                f"no working-day calendar for {day.year}: add config/calendar/{day.year}.yaml "
                f"from the State Council's holiday arrangement (covered: {self.years})"
            )
        if day in year.make_up_workdays:
            return True
        if day in year.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted).

        "Within 7 working days" of a purchase on ``start`` ends with the day returned
        for ``n=7``.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        day = start
        remaining = n
        # 400 days bound the walk even for absurd n inside the covered years
        for _ in range(n * 3 + 400):
            if remaining == 0:
                return day
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        raise CalendarGapError(f"could not find {n} working days after {start}")

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how many working days have passed since ``start``."""
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


def _parse_day(value: Any, where: str, problems: list[str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: {value!r} is not a date (write YYYY-MM-DD)")
        return None


def _year_from_mapping(data: Any, name: str) -> YearCalendar:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError([f"{name}: top level must be a mapping with year, holidays, "
                           "make_up_workdays"])
    year = data.get("year")
    if not isinstance(year, int):
        raise ConfigError([f"{name}: year: must be an integer such as 2026"])
    holidays: set[date] = set()
    for i, item in enumerate(data.get("holidays") or []):
        where = f"{name}: holidays[{i}]"
        if not isinstance(item, dict) or "from" not in item:
            problems.append(f"{where}: needs from: and to: dates")
            continue
        first = _parse_day(item["from"], f"{where}.from", problems)
        last = _parse_day(item.get("to", item["from"]), f"{where}.to", problems)
        if first is None or last is None:
            continue
        if last < first or first.year != year or last.year != year:
            problems.append(f"{where}: {first}..{last} must be an ascending range in {year}")
            continue
        day = first
        while day <= last:
            holidays.add(day)
            day += timedelta(days=1)
    workdays: set[date] = set()
    for i, item in enumerate(data.get("make_up_workdays") or []):
        day_or_none = _parse_day(item, f"{name}: make_up_workdays[{i}]", problems)
        if day_or_none is None:
            continue
        if day_or_none.year != year:
            problems.append(f"{name}: make_up_workdays[{i}]: {day_or_none} is not in {year}")
        elif day_or_none in holidays:
            problems.append(f"{name}: make_up_workdays[{i}]: {day_or_none} is also a holiday")
        else:
            workdays.add(day_or_none)
    if problems:
        raise ConfigError(problems)
    return YearCalendar(year, frozenset(holidays), frozenset(workdays), str(data.get("source", "")))


def load_year(path: Path) -> YearCalendar:
    """Read one year's calendar file.

    Raises:
        ConfigError: the file is unreadable or malformed; problems name file and key.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        # PyYAML raises ValueError for an impossible unquoted date such as 2027-02-31
        raise ConfigError([f"{path}: cannot read calendar: {exc}"]) from exc
    return _year_from_mapping(data, str(path))


def load_calendar(directory: Path) -> WorkCalendar:
    """Read every ``<year>.yaml`` in ``directory``.

    Raises:
        ConfigError: a file is malformed, or there are none.
    """
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError([f"{directory}: no <year>.yaml calendar files"])
    return WorkCalendar(load_year(p) for p in files)
