"""The hot-path modules compiled to C by mypyc at install time, and their state.

``setup.py`` reads ``COMPILED`` from this file (so it imports nothing beyond the
standard library). A compiled module is an extension file beside its ``.py``;
Python prefers the extension, so a source edited after the build would silently
not run: :func:`native_status` reports such stale modules, ``serve`` and
``check-config`` warn about them and the test suite refuses to start.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES

__all__ = ["COMPILED", "NativeStatus", "native_status"]

# Source paths relative to the repository root, in build order.
COMPILED: tuple[str, ...] = (
    "adapters/hl7v2/message.py",
    "adapters/hl7v2/fields.py",
    "adapters/hl7v2/pharmacy.py",
    "adapters/hl7v2/supply.py",
    "adapters/hl7v2/warehouse.py",
    "adapters/hl7v2/ack.py",
    "adapters/hl7v2/adapter.py",
)


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """Which of the ``COMPILED`` modules run as C extensions."""

    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    stale: tuple[str, ...]  # compiled, but the .py was changed after the build

    def summary(self) -> str:
        """One line for logs and ``check-config``."""
        if not self.compiled:
            return ("parsing hot path: pure Python (no compiled modules; install with a C "
                    "compiler for about twice the HL7 v2 throughput)")
        text = f"parsing hot path: {len(self.compiled)} of {len(COMPILED)} modules compiled"
        if self.stale:
            text += (f"; STALE (source newer than the build, the old build runs): "
                     f"{', '.join(self.stale)} — reinstall with `pip install -e .`")
        return text


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def native_status() -> NativeStatus:
    """Inspect the installed modules (their packages get imported, they need not be)."""
    compiled, pure, stale = [], [], []
    for path in COMPILED:
        name = _module_name(path)
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(EXTENSION_SUFFIXES)):
            pure.append(name)
            continue
        compiled.append(name)
        source = os.path.join(os.path.dirname(origin), os.path.basename(path))
        if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(origin):
            stale.append(name)
    return NativeStatus(tuple(compiled), tuple(pure), tuple(stale))
