"""A profile's plain XML paths gathered into one tree walk per element.

Reading forty fields one path at a time visits the same elements forty times. A
*plan* merges the plain child paths (``a/b/c``, ``a/@x``, ``@x``) that start at one
element into a trie, so that one pass over that element's children reads them
all. Paths that are not plain stay XPath (``extract.xml_reader``).

Semantics, the same in both walkers:

* an intermediate step follows the first child element of that name (no
  namespace); later siblings of the same name are not entered;
* a last step collects the text of every child element of that name, in
  document order; the text of an element is its leading text and CDATA, as
  ``lxml``'s ``.text``, stripped;
* ``@x`` reads the attribute ``x`` without a namespace, stripped.

The walk is implemented twice: in ``_xml_walk.pyx`` over libxml2's nodes
(compiled at install, see ``gateway/native.py``) and here over the ``lxml`` API,
which serves when no compiled module is installed; ``xml_walk`` picks one. Both
fill ``out[i]`` with the list of values of field ``i`` (``None`` when absent).
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

__all__ = [
    "Plan",
    "PlanBuilder",
    "Steps",
    "element_steps",
    "exceeds_depth_py",
    "is_plain",
    "prepare_py",
    "select_py",
    "walk_children_py",
    "walk_root_py",
]

# (attribute name as UTF-8, as str, field ids, plain field names)
Attr = tuple[bytes, str, tuple[int, ...], tuple[str, ...]]
# (tag as UTF-8, as str, field ids reading its text, plain field names reading it,
#  the plan for its children or None, its bit among the entries that have a plan)
Entry = tuple[bytes, str, tuple[int, ...], tuple[str, ...], "Plan | None", int]
# (attributes of the element, child entries, child entries by tag)
Plan = tuple[tuple[Attr, ...], tuple[Entry, ...], dict[str, Entry]]

# an XML name without a namespace prefix: a letter or "_", then letters, digits, "_-."
_NAME = r"[^\W\d][\w.-]*"
_PLAIN = re.compile(rf"/?{_NAME}(/{_NAME})*(/@{_NAME})?|@{_NAME}")
# the compiled walker keeps a bit per entered child name ("first child of that name")
MAX_ENTERED = 64


def is_plain(path: str) -> bool:
    """True for a child path the walk reads (no predicates, axes, functions, wildcards)."""
    return _PLAIN.fullmatch(path) is not None


class PlanBuilder:
    """Collects plain paths relative to one element and numbers their fields."""

    def __init__(self) -> None:
        self._trie: dict[str, Any] = {}
        self.size = 0

    def add(self, path: str, key: str | None = None) -> int:
        """Add a plain path.

        With ``key``, the walk stores the first non-empty value at ``plain[key]``
        (a text field that needs no checks) and -1 is returned; without it, every
        value goes to ``out[i]`` for the index ``i`` returned. An absolute path
        (``/root/a/b``) is kept with its root step, for ``walk_root``.
        """
        steps = path.strip("/").split("/")
        attr = steps.pop()[1:] if steps[-1].startswith("@") else None
        node = self._trie
        for step in steps:
            node = node.setdefault("children", {}).setdefault(step, {})
        if attr is not None:
            node = node.setdefault("attrs", {}).setdefault(attr, {})
        if key is not None:
            node.setdefault("keys", []).append(key)
            return -1
        index = self.size
        self.size += 1
        node.setdefault("ids", []).append(index)
        return index

    @property
    def empty(self) -> bool:
        """True while no path was added."""
        return not self._trie

    def build(self) -> Plan:
        """The plan, as nested tuples both walkers read.

        Raises:
            ValueError: fields sit under more than 64 different child elements of
                one element.
        """
        return _freeze(self._trie)


def _freeze(node: dict[str, Any]) -> Plan:
    attrs = tuple((name.encode(), name, tuple(a.get("ids", ())), tuple(a.get("keys", ())))
                  for name, a in node.get("attrs", {}).items())
    entries: list[Entry] = []
    entered = 0
    for tag, child in node.get("children", {}).items():
        sub, bit = None, -1
        if "children" in child or "attrs" in child:
            sub, bit = _freeze(child), entered
            entered += 1
        entries.append((tag.encode(), tag, tuple(child.get("ids", ())),
                        tuple(child.get("keys", ())), sub, bit))
    if entered > MAX_ENTERED:
        raise ValueError(f"fields under more than {MAX_ENTERED} different child elements "
                         "of one element")
    return attrs, tuple(entries), {e[1]: e for e in entries}


def _text(el: Any) -> str:
    return (el.text or "").strip()


def _add(out: list[list[str] | None], plain: dict[str, str], ids: tuple[int, ...],
         keys: tuple[str, ...], value: str) -> None:
    for i in ids:
        values = out[i]
        if values is None:
            out[i] = [value]
        else:
            values.append(value)
    if value:
        for key in keys:
            plain.setdefault(key, value)


def prepare_py(plan: Plan) -> Plan:
    """The pure-Python walk reads plans as they are."""
    return plan


def walk_children_py(el: Any, plan: Plan, out: list[list[str] | None],
                     plain: dict[str, str]) -> None:
    """Read the plan's values under ``el`` (its attributes and descendants)."""
    attrs, _, by_tag = plan
    for _, name, ids, keys in attrs:
        value = el.get(name)
        if value is not None:
            _add(out, plain, ids, keys, value.strip())
    entered: set[str] = set()
    for child in el:
        entry = by_tag.get(child.tag)  # comments' and namespaced tags never match
        if entry is None:
            continue
        _, tag, ids, keys, sub, _ = entry
        if ids or keys:
            _add(out, plain, ids, keys, _text(child))
        if sub is not None and tag not in entered:
            entered.add(tag)
            walk_children_py(child, sub, out, plain)


def walk_root_py(root: Any, plan: Plan, out: list[list[str] | None],
                 plain: dict[str, str]) -> None:
    """Read the plan's absolute paths (first step: the root element)."""
    entry = plan[2].get(root.tag)
    if entry is None:
        return
    _, _, ids, keys, sub, _ = entry
    if ids or keys:
        _add(out, plain, ids, keys, _text(root))
    if sub is not None:
        walk_children_py(root, sub, out, plain)


# (absolute, element names as UTF-8, as str)
Steps = tuple[bool, tuple[bytes, ...], tuple[str, ...]]


def element_steps(path: str) -> Steps | None:
    """The steps of a plain path of element names, for ``select``; None for any other."""
    if not is_plain(path) or "@" in path:
        return None
    names = tuple(path.strip("/").split("/"))
    return path.startswith("/"), tuple(n.encode() for n in names), names


def select_py(el: Any, path: Steps) -> list[Any]:
    """The elements at a plain path of element names (XPath semantics: every match)."""
    absolute, _, steps = path
    if absolute:
        if el.getparent() is not None:
            el = el.getroottree().getroot()
        found = [el] if el.tag == steps[0] else []
        steps = steps[1:]
    else:
        found = [el]
    for step in steps:
        found = [c for f in found for c in f.iterchildren(step)]
    return found


def exceeds_depth_py(root: Any, limit: int) -> bool:
    """True when elements nest deeper than ``limit`` levels (the root is level 1)."""
    xpath = _DEPTH_XPATHS.get(limit)
    if xpath is None:
        xpath = _DEPTH_XPATHS[limit] = etree.XPath("boolean(/*" + "/*" * limit + ")")
    return bool(xpath(root))


_DEPTH_XPATHS: dict[int, Any] = {}
