"""Placeholders of a statement and their values, for the WHERE builders of both stores.

No imports from the project: the row modules of every table use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Params"]


class Params:
    """The values of a statement's placeholders, in order: ``p(value)`` keeps ``value`` and
    gives the placeholder that stands for it (``mark(n)``: ``?`` or ``$n``)."""

    def __init__(self, mark: Callable[[int], str]) -> None:
        self.mark = mark
        self.args: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.args.append(value)
        return self.mark(len(self.args))
