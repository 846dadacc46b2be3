"""The compiled hot path: reported truthfully, and stale builds are caught."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
from pathlib import Path

import pytest

from gateway import native
from gateway.native import SOURCES, native_status

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_module_exists_and_is_reported_once() -> None:
    status = native_status()
    assert all((ROOT / path).is_file() for path in SOURCES)
    names = [os.path.splitext(p)[0].replace("/", ".") for p in SOURCES]
    assert sorted(status.compiled + status.pure) == sorted(names)


def test_ci_runs_the_compiled_modules() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI guarantees a C compiler at install time")
    if os.environ.get("JCGW_PURE_PYTHON"):
        pytest.skip("installed as pure Python on purpose (JCGW_PURE_PYTHON)")
    status = native_status()
    assert status.pure == (), f"not compiled in CI: {status.pure}"
    assert "compiled" in status.summary()


def test_a_source_edited_after_the_build_is_reported_stale(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    pkg = tmp_path / "adapters" / "hl7v2"
    pkg.mkdir(parents=True)
    ext = pkg / f"message{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    ext.write_bytes(b"")
    source = pkg / "message.py"
    source.write_text("def parse(): ...\n")
    built_from = hashlib.sha256(b"def parse(): return 1\n").hexdigest()
    manifest = tmp_path / "native_build.json"
    manifest.write_text(json.dumps({"adapters/hl7v2/message.py": built_from}))

    class Spec:
        origin = str(ext)

    real = importlib.util.find_spec
    monkeypatch.setattr(native.importlib.util, "find_spec",
                        lambda name: Spec() if name == "adapters.hl7v2.message" else real(name))
    status = native_status(str(manifest))
    assert "adapters.hl7v2.message" in status.stale
    assert "STALE" in status.summary() and "pip install -e ." in status.summary()

    # the same source as built, even with a newer file time (a wheel install, a checkout)
    source.write_text("def parse(): return 1\n")
    os.utime(source, (ext.stat().st_mtime + 60, ext.stat().st_mtime + 60))
    assert native_status(str(manifest)).stale == ()


def test_the_build_manifest_names_every_compiled_source(tmp_path: Path) -> None:
    for path in SOURCES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes((ROOT / path).read_bytes())
    (tmp_path / "gateway").mkdir(exist_ok=True)
    native.write_manifest(str(tmp_path))
    written = json.loads((tmp_path / native.MANIFEST).read_text())
    assert set(written) == set(SOURCES)
    assert written[SOURCES[-1]] == hashlib.sha256((ROOT / SOURCES[-1]).read_bytes()).hexdigest()


def test_a_build_refused_at_import_is_reported_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.vendor import xml_walk

    if "adapters.vendor._xml_walk" not in native_status().compiled:
        pytest.skip("the vendor XML walk is not compiled in this install")
    assert native_status().unused == ()
    monkeypatch.setattr(xml_walk, "COMPILED", None)  # as when lxml changed after the build
    status = native_status()
    assert status.unused == ("adapters.vendor._xml_walk",)
    assert "NOT USED" in status.summary()
