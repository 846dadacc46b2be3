"""The console's files ship in the package: each one matches a package-data glob."""

from __future__ import annotations

import tomllib

from helpers import ROOT

from gateway.console import STATIC


def test_every_console_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["gateway.console"]
    package = STATIC.parent
    shipped = {p for g in globs for p in package.glob(g)}
    files = {p for p in STATIC.rglob("*") if p.is_file()}
    assert STATIC / "index.html" in shipped
    missing = sorted(str(p.relative_to(package)) for p in files - shipped)
    assert missing == [], f"add a glob for these to [tool.setuptools.package-data]: {missing}"
