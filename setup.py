"""Build hook: compile the message-parsing hot path to C with mypyc and Cython.

Everything else about the package lives in pyproject.toml. The modules listed in
``gateway/native.py`` (``COMPILED``) are plain, strictly typed Python that mypyc
turns into a C extension (about twice as fast on the MLLP path); the same ``.py``
files stay the source of truth and run as they are when the extension is not built.
``CYTHONIZED`` lists Cython sources built against the headers of the lxml they
will read trees of (the vendor XML field walk); each has a pure-Python stand-in.

The build needs a C compiler and the Python headers. Without them, or with
``JCGW_PURE_PYTHON=1`` in the environment, the package installs as pure Python:
every feature works, parsing is slower. ``jicai-gateway check-config`` says which
one is running.
"""

from __future__ import annotations

import glob
import os
import runpy
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# the list and the build manifest live beside the code that reports on them
_NATIVE = runpy.run_path(os.path.join("gateway", "native.py"))
COMPILED: list[str] = list(_NATIVE["COMPILED"])
CYTHONIZED: list[str] = list(_NATIVE["CYTHONIZED"])
GROUP = "jicai_gateway_native"


def _say(text: str) -> None:
    print(f"jicai-gateway build: {text}", file=sys.stderr)


def _module(path: str) -> str:
    return os.path.splitext(path)[0].replace("/", ".")


def _remove_builds(paths: list[str], *, group: bool = False) -> None:
    """Delete compiled modules a previous in-place build left (they would shadow the .py);
    ``group`` also the mypyc group's shared library."""
    for path in paths:
        for built in glob.glob(os.path.splitext(path)[0] + ".*.so") + glob.glob(
                os.path.splitext(path)[0] + ".*.pyd"):
            os.remove(built)
    if group:
        for built in glob.glob(f"{GROUP}__mypyc.*.so") + glob.glob(f"{GROUP}__mypyc.*.pyd"):
            os.remove(built)


def _remove_orphan_builds() -> None:
    """Delete in-place builds of modules no longer compiled: each would shadow its .py."""
    listed = {os.path.splitext(path)[0] for path in COMPILED + CYTHONIZED}
    for package in ("adapters", "gateway", "codes", "mappings"):
        for built in glob.glob(f"{package}/**/*.so", recursive=True) + glob.glob(
                f"{package}/**/*.pyd", recursive=True):
            stem = built.split(".", 1)[0]  # adapters/vendor/safe_xml.cpython-311-….so
            if stem not in listed and os.path.exists(stem + ".py"):
                os.remove(built)


class _GroupsOrNothing(build_ext):
    """The mypyc group is built whole or not at all (a half-built group would not import);
    each Cython module on its own. Whatever fails installs as pure Python."""

    def build_extensions(self) -> None:
        cython = {_module(path) for path in CYTHONIZED}
        group = [ext for ext in self.extensions if ext.name not in cython]
        try:
            for ext in group:
                self.build_extension(ext)
        except Exception as exc:  # no compiler, a compiler error, out of memory …
            _say(f"compiling the mypyc modules failed ({exc}); installing them as pure Python")
            self._drop(group)
            _remove_builds(COMPILED, group=True)
        for ext in [ext for ext in self.extensions if ext.name in cython]:
            try:
                self.build_extension(ext)
            except Exception as exc:
                _say(f"compiling {ext.name} failed ({exc}); its pure-Python stand-in serves")
                self._drop([ext])
                _remove_builds([p for p in CYTHONIZED if _module(p) == ext.name])

    def _drop(self, extensions: list[Any]) -> None:
        for ext in extensions:
            built = self.get_ext_fullpath(ext.name)
            if os.path.exists(built):
                os.remove(built)
            self.extensions.remove(ext)  # nothing to copy into the source tree or wheel


def _mypyc_extensions() -> list[Any]:
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not available: the mypyc modules install as pure Python")
        _remove_builds(COMPILED, group=True)
        return []
    # mypyc type-checks what it compiles (pydantic is a build requirement so that the
    # models' types are real); other modules are followed silently
    try:
        return list(mypycify(["--ignore-missing-imports", "--follow-imports=silent",
                              "--no-warn-unused-ignores", *COMPILED],
                             opt_level="3", group_name=GROUP))
    except (Exception, SystemExit) as exc:  # any failure: install pure Python
        _say(f"mypyc could not compile the hot path ({exc!r}): the mypyc modules install "
             "as pure Python")
        _remove_builds(COMPILED, group=True)
        return []


def _cython_extensions() -> list[Any]:
    try:
        import lxml
        from Cython.Build import cythonize
        from setuptools import Extension

        modules = [Extension(_module(path), [path], include_dirs=lxml.get_include())
                   for path in CYTHONIZED]
        return list(cythonize(modules, language_level=3, quiet=True))
    except Exception as exc:  # no Cython, no lxml headers: those modules stay pure Python
        _say(f"Cython could not compile {', '.join(CYTHONIZED)} ({exc!r}); their "
             "pure-Python stand-ins serve")
        _remove_builds(CYTHONIZED)
        return []


def _extensions() -> list[Any]:
    if os.environ.get("JCGW_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        _say("JCGW_PURE_PYTHON is set: installing without compiled modules")
        _remove_builds(COMPILED, group=True)
        _remove_builds(CYTHONIZED)
        if os.path.exists(_NATIVE["MANIFEST"]):
            os.remove(_NATIVE["MANIFEST"])
        return []
    _remove_orphan_builds()
    extensions = _mypyc_extensions() + _cython_extensions()
    if extensions:
        _NATIVE["write_manifest"]()  # what the build compiled, to tell an edit afterwards
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": _GroupsOrNothing})
