"""Helpers for loading large tables in one go."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic structures.

    Loading 300,000 catalog rows allocates millions of objects; without this the
    collector rescans everything already loaded again and again (it makes no
    cycles, so nothing is lost by waiting).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
