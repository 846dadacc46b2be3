"""The plan walk in use: the compiled one when installed and built for this lxml.

``JCGW_PURE_PYTHON=1`` at run time picks the pure-Python walk even when the
compiled module is there. Readers take ``IMPLEMENTATION`` when they are created,
so a test can set it to ``PURE`` or ``COMPILED`` first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from lxml import etree

from adapters.vendor.xml_plan import (
    Plan,
    Steps,
    exceeds_depth_py,
    prepare_py,
    select_py,
    walk_children_py,
    walk_root_py,
)

__all__ = ["COMPILED", "IMPLEMENTATION", "PURE", "XmlWalk"]

log = logging.getLogger(__name__)

# (element, prepared plan, values by field index, plain values by name)
Walk = Callable[[Any, Any, list[list[str] | None], dict[str, Any]], None]


class XmlWalk(NamedTuple):
    """One implementation of the walk (see ``xml_plan``)."""

    name: str
    prepare: Callable[[Plan], Any]  # a plan in the shape this walk reads
    walk_children: Walk
    walk_root: Walk
    select: Callable[[Any, Steps], list[Any]]
    exceeds_depth: Callable[[Any, int], bool]


PURE = XmlWalk("pure-python", prepare_py, walk_children_py, walk_root_py, select_py,
               exceeds_depth_py)


def _native() -> XmlWalk | None:
    try:
        from adapters.vendor import _xml_walk  # type: ignore[attr-defined]
    except ImportError:  # not built (no compiler): the pure-Python walk, silently
        return None
    except Exception as exc:  # built, but lxml's types do not match it
        log.warning("vendor XML: compiled field walk unusable (%s); reinstall the "
                    "gateway to rebuild it — using the pure-Python walk", exc)
        return None
    if not _xml_walk.compatible(etree.LXML_VERSION):
        log.warning("vendor XML: compiled field walk was built for lxml %s, lxml %s is "
                    "installed; reinstall the gateway to rebuild it — using the "
                    "pure-Python walk", _xml_walk.BUILT_WITH_LXML,
                    ".".join(map(str, etree.LXML_VERSION)))
        return None
    m: Any = _xml_walk
    return XmlWalk("compiled", m.prepare, m.walk_children, m.walk_root, m.select, m.exceeds_depth)


COMPILED: XmlWalk | None = _native()
_pure_wanted = os.environ.get("JCGW_PURE_PYTHON", "").lower() in ("1", "true", "yes")
IMPLEMENTATION: XmlWalk = PURE if COMPILED is None or _pure_wanted else COMPILED
