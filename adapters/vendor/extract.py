"""Compiled field readers: a profile's paths turned into functions over XML or JSON.

Each reader returns every string found at its path (a list, empty when the path
is absent), so one code path serves single values, repeated values and
absence. Paths are compiled once per adapter, not per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree

__all__ = ["Reader", "json_nodes", "json_reader", "xml_nodes", "xml_reader"]

# (current node, root) → values
Reader = Callable[[Any, Any], list[str]]


def _text(value: Any) -> str:
    if isinstance(value, etree._Element):
        return (value.text or "").strip()
    return str(value).strip()


def xml_reader(path: str, namespaces: Mapping[str, str]) -> Reader:
    """A reader for an XPath 1.0 expression (plain child paths go to ``xml_plan``)."""
    xpath = etree.XPath(path, namespaces=dict(namespaces), smart_strings=False)

    def read(node: Any, root: Any) -> list[str]:
        result = xpath(node)
        if isinstance(result, list):
            return [_text(r) for r in result]
        if isinstance(result, bool):
            return ["true" if result else "false"]
        if isinstance(result, float) and result.is_integer():
            return [str(int(result))]
        return [_text(result)] if result != "" else []

    return read


def xml_nodes(path: str, namespaces: Mapping[str, str]) -> Callable[[Any], list[Any]]:
    """The elements at ``path`` (documents or line items), relative to the node given."""
    xpath = etree.XPath(path, namespaces=dict(namespaces), smart_strings=False)

    def nodes(node: Any) -> list[Any]:
        result = xpath(node)
        return [r for r in result if isinstance(r, etree._Element)] \
            if isinstance(result, list) else []

    return nodes


def _pointer(path: str) -> tuple[bool, list[str]]:
    from_root = path.startswith("$")
    p = path[1:] if from_root else path
    if p and not p.startswith("/"):
        p = "/" + p
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in p.split("/")[1:]] if p else []
    return from_root, tokens


def _walk(value: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(value, Mapping):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
        if value is None:
            return None
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def json_reader(path: str) -> Reader:
    """A reader for a JSON pointer (``$``-prefixed: from the root)."""
    from_root, tokens = _pointer(path)

    def read(node: Any, root: Any) -> list[str]:
        value = _walk(root if from_root else node, tokens)
        if value is None:
            return []
        if isinstance(value, list):
            return [_scalar(v) for v in value if v is not None and not isinstance(v, dict)]
        if isinstance(value, dict):
            return []
        return [_scalar(value)]

    return read


def json_nodes(path: str) -> Callable[[Any], list[Any]]:
    """The objects at a JSON pointer: each item of an array, or the object itself."""
    _, tokens = _pointer(path)

    def nodes(node: Any) -> list[Any]:
        value = _walk(node, tokens)
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
        return [value] if isinstance(value, dict) else []

    return nodes
