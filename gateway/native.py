"""The hot-path modules compiled to C at install time (mypyc, Cython), and their state.

``setup.py`` reads ``COMPILED`` and ``CYTHONIZED`` from this file and calls
:func:`write_manifest` (so it imports nothing beyond the standard library). A compiled
module is an extension file beside its source; Python prefers the extension, so a
source edited after the build would silently not run. The build records a hash of
each source it compiled (``native_build.json``, shipped with the package);
:func:`native_status` reports a compiled module whose source no longer matches as
stale, ``serve`` and ``check-config`` warn about it and the test suite refuses to start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES

__all__ = ["COMPILED", "CYTHONIZED", "MANIFEST", "SOURCES", "NativeStatus", "native_status",
           "write_manifest"]

MANIFEST_NAME = "native_build.json"
# where setup.py writes it, from the source root
MANIFEST = os.path.join("gateway", MANIFEST_NAME)

# mypyc: typed Python sources relative to the repository root, in build order.
COMPILED: tuple[str, ...] = (
    "adapters/hl7v2/message.py",
    "adapters/hl7v2/fields.py",
    "adapters/hl7v2/pharmacy.py",
    "adapters/hl7v2/supply.py",
    "adapters/hl7v2/warehouse.py",
    "adapters/hl7v2/item_master.py",
    "adapters/hl7v2/ack.py",
    "adapters/hl7v2/adapter.py",
    "adapters/vendor/engine.py",
)
# Cython sources: the vendor XML plan walk over libxml2's nodes; their pure-Python
# stand-ins are other modules (``adapters/vendor/xml_plan.py``).
CYTHONIZED: tuple[str, ...] = (
    "adapters/vendor/_xml_walk.pyx",
)
SOURCES: tuple[str, ...] = COMPILED + CYTHONIZED
# built modules whose use is decided at import: the "module:attribute" that is None
# when the build cannot be used (the compiled walk refuses an lxml it was not built for)
IN_USE: dict[str, str] = {
    "adapters/vendor/_xml_walk.pyx": "adapters.vendor.xml_walk:COMPILED",
}


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """Which of the ``SOURCES`` modules run as C extensions."""

    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    stale: tuple[str, ...]  # compiled, but the .py was changed after the build
    unused: tuple[str, ...] = ()  # compiled, but refused at import (see ``IN_USE``)

    def summary(self) -> str:
        """One line for logs and ``check-config``."""
        if not self.compiled:
            return ("parsing hot path: pure Python (no compiled modules; install with a C "
                    "compiler for about twice the HL7 v2 throughput)")
        text = f"parsing hot path: {len(self.compiled)} of {len(SOURCES)} modules compiled"
        if self.stale:
            text += (f"; STALE (source newer than the build, the old build runs): "
                     f"{', '.join(self.stale)} — reinstall with `pip install -e .`")
        if self.unused:
            text += (f"; NOT USED (built for another lxml, the pure-Python stand-in runs): "
                     f"{', '.join(self.unused)} — reinstall to rebuild")
        return text


def _module_name(path: str) -> str:
    return os.path.splitext(path)[0].replace("/", ".")


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_manifest(root: str = ".") -> None:
    """Record the hash of every source about to be compiled (called by setup.py)."""
    hashes = {path: _digest(os.path.join(root, path)) for path in SOURCES}
    with open(os.path.join(root, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)


def _manifest(path: str | None) -> dict[str, str]:
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def native_status(manifest: str | None = None) -> NativeStatus:
    """Inspect the installed modules (their packages get imported, they need not be).

    Args:
        manifest: the build manifest to compare with; the installed one by default.
    """
    built = _manifest(manifest)
    compiled, pure, stale = [], [], []
    for path in SOURCES:
        name = _module_name(path)
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(EXTENSION_SUFFIXES)):
            pure.append(name)
            continue
        compiled.append(name)
        source = os.path.join(os.path.dirname(origin), os.path.basename(path))
        # no manifest (a build without one) or no source (a stripped install): nothing to
        # compare, so nothing is reported
        if path in built and os.path.exists(source) and _digest(source) != built[path]:
            stale.append(name)
    unused = [_module_name(path) for path, where in IN_USE.items()
              if _module_name(path) in compiled and not _in_use(where)]
    return NativeStatus(tuple(compiled), tuple(pure), tuple(stale), tuple(unused))


def _in_use(where: str) -> bool:
    module, attribute = where.split(":")
    return getattr(importlib.import_module(module), attribute) is not None
