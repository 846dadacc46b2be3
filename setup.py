"""Build hook: compile the message-parsing hot path to C with mypyc.

Everything else about the package lives in pyproject.toml. The modules listed in
``gateway/native.py`` (``COMPILED``) are plain, strictly typed Python that mypyc
turns into a C extension (about twice as fast on the MLLP path); the same ``.py``
files stay the source of truth and run as they are when the extension is not built.

The build needs a C compiler and the Python headers. Without them, or with
``JCGW_PURE_PYTHON=1`` in the environment, the package installs as pure Python:
every feature works, parsing is slower. ``jicai-gateway check-config`` says which
one is running.
"""

from __future__ import annotations

import os
import runpy
import sys

from setuptools import setup

# the list lives beside the code that reports on it (stdlib-only module)
COMPILED = list(runpy.run_path(os.path.join("gateway", "native.py"))["COMPILED"])


def _extensions() -> list[object]:
    if os.environ.get("JCGW_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        print("JCGW_PURE_PYTHON is set: installing without compiled modules", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mypyc is not available: installing without compiled modules", file=sys.stderr)
        return []
    # mypyc type-checks what it compiles (pydantic is a build requirement so that the
    # models' types are real); other modules are followed silently
    try:
        extensions = mypycify(["--ignore-missing-imports", "--follow-imports=silent",
                               "--no-warn-unused-ignores", *COMPILED],
                              opt_level="3", group_name="jicai_gateway_native")
    except (Exception, SystemExit) as exc:  # any failure: install pure Python
        print(f"mypyc could not compile the hot path ({exc!r}): installing without "
              "compiled modules", file=sys.stderr)
        return []
    for ext in extensions:
        ext.optional = True  # no C compiler: warn and install the pure-Python modules
    return list(extensions)


setup(ext_modules=_extensions())
