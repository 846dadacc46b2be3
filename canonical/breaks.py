"""Long loops that leave the GIL to the event loop and the store's writer now and then.

A big message's mapping, checks and plans (2,000 lines: tens of milliseconds of pure
Python) run in a helper thread so that the event loop keeps its turns. But CPython
hands the GIL back to a waiting thread only every ``sys.getswitchinterval()`` (5 ms),
and a thread that waits while others take turns may wait much longer: the store's
writer thread, which commits every other sender's message, was seen waiting 47 ms for
the GIL behind one such job, and every acknowledgement with it.

So the loops of that work call :func:`take_break` once per line. Outside
:func:`with_breaks` it does nothing (a context-variable read); inside, after every
``slice_s`` of work it sleeps ``pause_s``, which releases the GIL for as long: the loop
and the writer run their waiting steps, and the big message's work takes a fifth longer
or more in wall time (a 0.1 ms sleep often lasts longer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

__all__ = ["Breaks", "take_break", "taking_breaks", "with_breaks"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

SLICE_S = 0.0005  # work between breaks: what a waiting acknowledgement may wait for
PAUSE_S = 0.0001  # the break: long enough for a waiting thread to take the GIL


class Breaks:
    """Sleeps ``pause_s`` whenever ``slice_s`` has passed since the last break."""

    def __init__(self, slice_s: float = SLICE_S, pause_s: float = PAUSE_S, *,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.slice_s = slice_s
        self.pause_s = pause_s
        self._clock = clock
        self._sleep = sleep
        self._due = clock() + slice_s
        self.taken = 0  # breaks so far

    def __call__(self) -> None:
        """A point where a break may be taken."""
        if self._clock() >= self._due:
            self._sleep(self.pause_s)
            self.taken += 1
            self._due = self._clock() + self.slice_s


_BREAKS: ContextVar[Breaks | None] = ContextVar("breaks", default=None)


def take_break() -> None:
    """Give the GIL away for a moment if this runs under :func:`with_breaks` and its
    slice is used up; otherwise nothing."""
    breaks = _BREAKS.get()
    if breaks is not None:
        breaks()


@contextmanager
def taking_breaks(breaks: Breaks | None = None) -> Iterator[Breaks]:
    """Within this block (in this thread or task), :func:`take_break` takes ``breaks``."""
    breaks = Breaks() if breaks is None else breaks
    token = _BREAKS.set(breaks)
    try:
        yield breaks
    finally:
        _BREAKS.reset(token)


def with_breaks(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``fn(*args, **kwargs)`` with breaks at its :func:`take_break` points (for a helper
    thread's job: ``asyncio.to_thread(with_breaks, fn, ...)``)."""
    with taking_breaks():
        return fn(*args, **kwargs)
