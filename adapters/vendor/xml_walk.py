"""The plan walk in use: the compiled one when installed and built for this lxml.

``JCGW_PURE_PYTHON=1`` at run time picks the pure-Python walk even when the
compiled module is there (the tests run both).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from lxml import etree

from .xml_plan import Plan, Steps, exceeds_depth_py, select_py, walk_children_py, walk_root_py

__all__ = ["COMPILED", "exceeds_depth", "select", "walk_children", "walk_root"]

log = logging.getLogger(__name__)

Walk = Callable[[Any, Plan, list[list[str] | None], dict[str, str]], None]


def _native() -> Any:
    if os.environ.get("JCGW_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from . import _xml_walk  # type: ignore[attr-defined]
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
    return _xml_walk


_module = _native()
COMPILED: bool = _module is not None
walk_children: Walk = _module.walk_children if _module else walk_children_py
walk_root: Walk = _module.walk_root if _module else walk_root_py
exceeds_depth: Callable[[Any, int], bool] = (_module.exceeds_depth if _module
                                             else exceeds_depth_py)
select: Callable[[Any, Steps], list[Any]] = _module.select if _module else select_py
