"""The compiled hot path: reported truthfully, and stale builds are caught."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path

import pytest

from gateway import native
from gateway.native import COMPILED, native_status

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_module_exists_and_is_reported_once() -> None:
    status = native_status()
    assert all((ROOT / path).is_file() for path in COMPILED)
    names = [p.removesuffix(".py").replace("/", ".") for p in COMPILED]
    assert sorted(status.compiled + status.pure) == sorted(names)


def test_ci_runs_the_compiled_modules() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI guarantees a C compiler at install time")
    status = native_status()
    assert status.pure == (), f"not compiled in CI: {status.pure}"
    assert "compiled" in status.summary()


def test_a_source_edited_after_the_build_is_reported_stale(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    pkg = tmp_path / "adapters" / "hl7v2"
    pkg.mkdir(parents=True)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    ext = pkg / f"message{suffix}"
    ext.write_bytes(b"")
    source = pkg / "message.py"
    source.write_text("")
    os.utime(ext, (1_000_000, 1_000_000))
    os.utime(source, (2_000_000, 2_000_000))

    class Spec:
        origin = str(ext)

    real = importlib.util.find_spec
    monkeypatch.setattr(native.importlib.util, "find_spec",
                        lambda name: Spec() if name == "adapters.hl7v2.message" else real(name))
    status = native_status()
    assert "adapters.hl7v2.message" in status.stale
    assert "STALE" in status.summary() and "pip install -e ." in status.summary()
