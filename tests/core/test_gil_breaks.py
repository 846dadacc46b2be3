"""A big message's work in a helper thread leaves the GIL to the event loop and the store's
writer now and then: the breaks come on time, only where asked for, and the loops of that
work (mapping, the platform checks) have a break point on every line."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest
from helpers import HOSPITAL, many_lines, nhsa_profile, sample_crosswalk

from adapters.registry import create
from canonical.breaks import Breaks, take_break, taking_breaks, with_breaks
from canonical.model import CHINA_TZ, Event
from mappings.crosswalk import map_event

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA_TZ)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_break_comes_once_a_slice_has_passed_and_lasts_the_pause() -> None:
    clock, slept = FakeClock(), []
    breaks = Breaks(slice_s=1.0, pause_s=0.25, clock=clock, sleep=slept.append)
    clock.now = 0.5
    breaks()
    assert slept == [] and breaks.taken == 0
    clock.now = 1.0
    breaks()
    assert slept == [0.25] and breaks.taken == 1
    clock.now = 1.9  # the next slice runs from the end of the break
    breaks()
    assert slept == [0.25]
    clock.now = 2.0
    breaks()
    assert slept == [0.25, 0.25] and breaks.taken == 2


def test_no_break_outside_a_job_that_asked_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop runs the same loops for small messages: it must never sleep in them."""
    slept: list[float] = []
    monkeypatch.setattr("canonical.breaks.time.sleep", slept.append)
    for _ in range(10_000):
        take_break()
    assert slept == []


def test_breaks_end_with_the_job_even_when_it_fails() -> None:
    clock, slept = FakeClock(), []
    breaks = Breaks(slice_s=0.0, pause_s=0.001, clock=clock, sleep=slept.append)

    def failing() -> None:
        take_break()
        raise ValueError("bad line")

    with pytest.raises(ValueError), taking_breaks(breaks):
        failing()
    take_break()
    assert slept == [0.001]


def test_with_breaks_returns_the_result_and_breaks_only_in_its_own_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A job in one helper thread does not make another thread's work pause."""
    def job(a: int, *, b: int) -> int:
        take_break()
        return a + b

    assert with_breaks(job, 2, b=3) == 5
    slept: list[float] = []
    monkeypatch.setattr("canonical.breaks.time.sleep", slept.append)

    def elsewhere() -> None:
        for _ in range(1_000):
            take_break()

    with taking_breaks(Breaks(slice_s=0.0, sleep=slept.append)):
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        take_break()
    assert len(slept) == 1  # this thread's one point, none of the other's


def _big_dispense(lines: int) -> Event:
    """The sample dispense (浙江省人民医院) with ``lines`` order groups."""
    return create("hl7v2", {"facilities": {"ZJSRMYY": HOSPITAL}}).parse(
        many_lines(1, lines), received_at=NOW).events[0]


def test_mapping_and_the_platform_checks_have_a_break_point_on_every_line() -> None:
    event = _big_dispense(2_000)
    every_call = Breaks(slice_s=0.0, pause_s=0.0, clock=FakeClock(), sleep=lambda s: None)
    with taking_breaks(every_call):
        mapped, unmapped = map_event(event, sample_crosswalk(), date(2026, 11, 23))
    assert not unmapped and every_call.taken == 2_000
    profile = nhsa_profile()
    every_call.taken = 0
    with taking_breaks(every_call):
        assert profile.missing(mapped) == {}
    assert every_call.taken == profile.units(mapped) == 2_000
