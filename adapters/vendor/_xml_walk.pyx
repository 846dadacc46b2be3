# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The plan walk of ``xml_plan`` over libxml2's nodes (the tree lxml parsed).

Only reads node fields: no libxml2 function is called, so nothing links against
libxml2 and the lxml that parsed the tree is the one whose headers this was
built with (Cython's type import refuses an ``_Element`` of another size, and
:func:`compatible` compares lxml's version). Same semantics as the pure-Python
walk in ``xml_plan.py``; ``tests/adapters/test_vendor_xml_walk.py`` runs both.
"""

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.dict cimport PyDict_SetDefault
from cpython.mem cimport PyMem_Free, PyMem_Malloc
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


cdef inline bint _ascii_space(unsigned char c) noexcept:
    # str.strip()'s ASCII whitespace: \t \n \v \f \r, \x1c-\x1f and space
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef inline bint _space3(unsigned char a, unsigned char b, unsigned char c) noexcept:
    # the 3-byte UTF-8 whitespace of str.strip(): U+1680, U+2000-U+200A, U+2028,
    # U+2029, U+202F, U+205F, U+3000
    if a == 0xE3:
        return b == 0x80 and c == 0x80
    if a == 0xE2:
        if b == 0x80:
            return 0x80 <= c <= 0x8A or c == 0xA8 or c == 0xA9 or c == 0xAF
        return b == 0x81 and c == 0x9F
    return a == 0xE1 and b == 0x9A and c == 0x80


cdef inline bint _space2(unsigned char a, unsigned char b) noexcept:
    return a == 0xC2 and (b == 0x85 or b == 0xA0)  # U+0085, U+00A0


cdef str _stripped(const unsigned char* s, Py_ssize_t n):
    """UTF-8 bytes decoded and stripped exactly as ``str.strip()`` would, in C."""
    cdef Py_ssize_t lo = 0, hi = n
    while lo < hi:
        if _ascii_space(s[lo]):
            lo += 1
        elif hi - lo >= 2 and _space2(s[lo], s[lo + 1]):
            lo += 2
        elif hi - lo >= 3 and _space3(s[lo], s[lo + 1], s[lo + 2]):
            lo += 3
        else:
            break
    while hi > lo:
        if _ascii_space(s[hi - 1]):
            hi -= 1
        elif hi - lo >= 2 and _space2(s[hi - 2], s[hi - 1]):
            hi -= 2
        elif hi - lo >= 3 and _space3(s[hi - 3], s[hi - 2], s[hi - 1]):
            hi -= 3
        else:
            break
    if lo == hi:
        return ""
    return PyUnicode_DecodeUTF8(<const char*>s + lo, hi - lo, NULL)


cdef str _text(xmlNode* first):
    """Leading text and CDATA of a node's children, stripped (lxml's ``.text``)."""
    cdef xmlNode* c = first
    cdef const char* s
    if not _is_text(c):
        return ""
    if not _is_text(c.next):  # the usual case: one text node
        s = <const char*>c.content
        return _stripped(<const unsigned char*>s, strlen(s))
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


cdef class Prepared:
    """A plan node in C arrays: the child names to compare, with what each one reads."""

    cdef Py_ssize_t n
    cdef const char** names  # point into the bytes of ``plan``, which this keeps alive
    cdef int* bits
    cdef tuple ids, keys, subs, attrs
    cdef readonly tuple plan

    def __dealloc__(self):
        PyMem_Free(self.names)
        PyMem_Free(self.bits)


def prepare(tuple plan not None):
    """The plan in the shape the compiled walk reads (see ``xml_plan.Plan``).

    Every part is type-checked here, once, so that the walk can read it unchecked.
    """
    cdef Prepared node = Prepared.__new__(Prepared)
    cdef tuple attrs = <tuple?>plan[0]
    cdef tuple entries = <tuple?>plan[1]
    cdef tuple entry
    cdef Py_ssize_t k, n = len(entries)
    for spec in attrs:
        if not (type(spec) is tuple and len(spec) == 4 and type(spec[0]) is bytes
                and type(spec[2]) is tuple and type(spec[3]) is tuple):
            raise TypeError(f"malformed plan attribute {spec!r}")
    node.plan = plan
    node.n = n
    node.names = <const char**>PyMem_Malloc(max(n, 1) * sizeof(char*))
    node.bits = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
    if node.names is NULL or node.bits is NULL:
        raise MemoryError()
    ids, keys, subs = [], [], []
    for k in range(n):
        entry = <tuple?>entries[k]
        if len(entry) != 6:
            raise TypeError(f"malformed plan entry {entry!r}")
        node.names[k] = PyBytes_AS_STRING(<bytes?>entry[0])
        ids.append(<tuple?>entry[2])
        keys.append(<tuple?>entry[3])
        subs.append(None if entry[4] is None else prepare(<tuple?>entry[4]))
        node.bits[k] = entry[5] if entry[4] is not None else -1
        if entry[4] is not None and not 0 <= node.bits[k] < 64:
            raise ValueError(f"plan entry {k}: bit {entry[5]} is not in 0..63")
    node.ids, node.keys, node.subs = tuple(ids), tuple(keys), tuple(subs)
    node.attrs = attrs
    return node


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


cdef inline Py_ssize_t _find(Prepared node, const char* name) noexcept:
    cdef Py_ssize_t k
    for k in range(node.n):
        if node.names[k][0] == name[0] and strcmp(node.names[k], name) == 0:
            return k
    return -1


cdef int _read(xmlNode* c, Prepared node, Py_ssize_t k, list out, dict plain) except -1:
    cdef tuple ids = <tuple>node.ids[k]
    cdef tuple keys = <tuple>node.keys[k]
    if ids or keys:
        _add(out, plain, ids, keys, _text(c.children))
    return 0


cdef int _walk(xmlNode* el, Prepared node, list out, dict plain) except -1:
    cdef unsigned long long entered = 0, bit
    cdef xmlNode* c
    cdef Py_ssize_t k
    cdef object sub
    if node.attrs:
        _attrs(el, node.attrs, out, plain)
    c = el.children
    while c is not NULL:
        if c.type == tree.XML_ELEMENT_NODE and c.ns is NULL:
            k = _find(node, <const char*>c.name)
            if k >= 0:
                _read(c, node, k, out, plain)
                if node.bits[k] >= 0:
                    bit = 1ULL << node.bits[k]
                    if not entered & bit:
                        entered |= bit
                        _walk(c, <Prepared>node.subs[k], out, plain)
        c = c.next
    return 0


def walk_children(cetree._Element el not None, Prepared plan not None, list out not None,
                  dict plain not None):
    """Read the plan's values under ``el`` (see ``xml_plan.walk_children_py``)."""
    _walk(el._c_node, plan, out, plain)


def walk_root(cetree._Element root not None, Prepared plan not None, list out not None,
              dict plain not None):
    """Read the plan's absolute paths, whose first step is the root."""
    cdef xmlNode* c = root._c_node
    cdef Py_ssize_t k
    if c.ns is not NULL:
        return
    k = _find(plan, <const char*>c.name)
    if k >= 0:
        _read(c, plan, k, out, plain)
        if plan.bits[k] >= 0:
            _walk(c, <Prepared>plan.subs[k], out, plain)


cdef inline bint _named(xmlNode* c, const char* name) noexcept:
    return c.type == tree.XML_ELEMENT_NODE and c.ns is NULL and strcmp(
        <const char*>c.name, name) == 0


def select(cetree._Element el not None, tuple path not None):
    """The elements at a plain path of element names (see ``xml_plan.select_py``)."""
    cdef bint absolute = path[0]
    cdef tuple steps = <tuple?>path[1]
    if not steps:
        raise ValueError("a path of no steps selects nothing")
    for step in steps:
        if type(step) is not bytes:
            raise TypeError(f"path step {step!r} is not bytes")
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


def exceeds_depth(cetree._Element root not None, int limit):
    """True when elements nest deeper than ``limit`` levels (the root is level 1)."""
    if limit < 1:
        return True
    return _deeper(root._c_node, limit - 1)
