# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The plan walk of ``xml_plan`` over libxml2's nodes (the tree lxml parsed).

Only reads node fields: no libxml2 function is called, so nothing links against
libxml2 and the lxml that parsed the tree is the one whose headers this was
built with (Cython's type import refuses an ``_Element`` of another size, and
:func:`compatible` compares lxml's version). Same semantics as the pure-Python
walk in ``xml_plan.py``; ``tests/adapters/test_vendor_xml_plan.py`` runs both.
"""

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.dict cimport PyDict_SetDefault
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport strcmp, strlen
from lxml.includes cimport etreepublic as cetree
from lxml.includes cimport tree
from lxml.includes.tree cimport xmlAttr, xmlNode

cetree.import_lxml__etree()

cdef extern from "lxml-version.h":
    cdef char* LXML_VERSION_STRING

BUILT_WITH_LXML = LXML_VERSION_STRING.decode()


def compatible(tuple lxml_version):
    """True when the running lxml is the one this module was built against."""
    built = BUILT_WITH_LXML.split(".")[:3]
    return [str(part) for part in lxml_version[:3]] == built


cdef inline bint _is_text(xmlNode* c) noexcept:
    return c is not NULL and (c.type == tree.XML_TEXT_NODE
                              or c.type == tree.XML_CDATA_SECTION_NODE)


cdef str _text(xmlNode* first):
    """Leading text and CDATA of a node's children, stripped (lxml's ``.text``)."""
    cdef xmlNode* c = first
    cdef const char* s
    if not _is_text(c):
        return ""
    if not _is_text(c.next):  # the usual case: one text node
        s = <const char*>c.content
        return PyUnicode_DecodeUTF8(s, strlen(s), NULL).strip()
    cdef list parts = []
    while _is_text(c):
        s = <const char*>c.content
        parts.append(PyUnicode_DecodeUTF8(s, strlen(s), NULL))
        c = c.next
    return "".join(parts).strip()


cdef inline int _add(list out, dict plain, tuple ids, tuple keys, str value) except -1:
    cdef object values
    for i in ids:
        values = out[i]
        if values is None:
            out[i] = [value]
        else:
            (<list>values).append(value)
    if value:
        for key in keys:
            PyDict_SetDefault(plain, key, value)
    return 0


cdef int _attrs(xmlNode* el, tuple attrs, list out, dict plain) except -1:
    cdef xmlAttr* a
    cdef const char* name
    for spec in attrs:
        name = PyBytes_AS_STRING(spec[0])
        a = el.properties
        while a is not NULL:
            if a.ns is NULL and strcmp(<const char*>a.name, name) == 0:
                _add(out, plain, <tuple>spec[2], <tuple>spec[3], _text(a.children))
                break
            a = a.next
    return 0


cdef int _walk(xmlNode* el, tuple plan, list out, dict plain) except -1:
    cdef tuple attrs = <tuple>plan[0]
    cdef tuple entries = <tuple>plan[1]
    cdef Py_ssize_t n = len(entries), k
    cdef unsigned long long entered = 0, bit
    cdef xmlNode* c
    cdef tuple entry
    cdef object sub
    if attrs:
        _attrs(el, attrs, out, plain)
    c = el.children
    while c is not NULL:
        if c.type == tree.XML_ELEMENT_NODE and c.ns is NULL:
            for k in range(n):
                entry = <tuple>entries[k]
                if strcmp(<const char*>c.name, PyBytes_AS_STRING(entry[0])) == 0:
                    if entry[2] or entry[3]:
                        _add(out, plain, <tuple>entry[2], <tuple>entry[3], _text(c.children))
                    sub = entry[4]
                    if sub is not None:
                        bit = 1ULL << <int>entry[5]
                        if not entered & bit:
                            entered |= bit
                            _walk(c, <tuple>sub, out, plain)
                    break
        c = c.next
    return 0


def walk_children(cetree._Element el, tuple plan, list out, dict plain):
    """Read the plan's values under ``el`` (see ``xml_plan.walk_children_py``)."""
    _walk(el._c_node, plan, out, plain)


def walk_root(cetree._Element root, tuple plan, list out, dict plain):
    """Read the plan's absolute paths, whose first step is the root."""
    cdef xmlNode* c = root._c_node
    cdef tuple entry
    if c.ns is not NULL:
        return
    for entry in <tuple>plan[1]:
        if strcmp(<const char*>c.name, PyBytes_AS_STRING(entry[0])) == 0:
            if entry[2] or entry[3]:
                _add(out, plain, <tuple>entry[2], <tuple>entry[3], _text(c.children))
            if entry[4] is not None:
                _walk(c, <tuple>entry[4], out, plain)
            return


cdef inline bint _named(xmlNode* c, const char* name) noexcept:
    return c.type == tree.XML_ELEMENT_NODE and c.ns is NULL and strcmp(
        <const char*>c.name, name) == 0


def select(cetree._Element el, tuple path):
    """The elements at a plain path of element names (see ``xml_plan.select_py``)."""
    cdef bint absolute = path[0]
    cdef tuple steps = <tuple>path[1]
    cdef xmlNode* start = el._c_node
    cdef xmlNode* c
    cdef list found, nxt
    cdef Py_ssize_t first = 0
    if absolute:
        while start.parent is not NULL and start.parent.type == tree.XML_ELEMENT_NODE:
            start = start.parent
        if not _named(start, PyBytes_AS_STRING(steps[0])):
            return []
        first = 1
    found = [<size_t>start]
    for step in steps[first:]:
        nxt = []
        for address in found:
            c = (<xmlNode*><size_t>address).children
            while c is not NULL:
                if _named(c, PyBytes_AS_STRING(step)):
                    nxt.append(<size_t>c)
                c = c.next
        found = nxt
    return [cetree.elementFactory(el._doc, <xmlNode*><size_t>address) for address in found]


cdef bint _deeper(xmlNode* el, int levels) noexcept:
    """True when an element lies more than ``levels`` levels below ``el``."""
    cdef xmlNode* c = el.children
    while c is not NULL:
        if c.type == tree.XML_ELEMENT_NODE:
            if levels == 0 or _deeper(c, levels - 1):
                return True
        c = c.next
    return False


def exceeds_depth(cetree._Element root, int limit):
    """True when elements nest deeper than ``limit`` levels (the root is level 1)."""
    return _deeper(root._c_node, limit - 1)
