"""Catalog files: read published CSV/XLSX catalogs, persist and load versions.

Versions live under ``<data_dir>/catalogs/<kind>/``: one ``<version>.json`` per
version (entries stored as rows of strings, which loads far faster than one
object per entry) and ``index.json`` listing the versions in import order.
Files are written to a temporary name and renamed, so a crash never leaves a
half-written version or index behind.
"""

from __future__ import annotations

import array
import base64
import csv
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from codes.catalog import (
    ENTRY_FIELDS,
    CatalogEntry,
    CatalogError,
    CatalogImport,
    CatalogKind,
    CatalogVersion,
    parse_catalog_rows,
)

__all__ = [
    "FORMAT_VERSION",
    "VersionInfo",
    "check_label",
    "import_catalog_file",
    "latest_version",
    "list_versions",
    "load_catalog",
    "load_version",
    "read_catalog_csv",
    "read_catalog_xlsx",
    "save_version",
    "version_from_bytes",
    "version_from_import",
    "version_to_bytes",
]

FORMAT_VERSION: Final = 1
_SAFE_LABEL: Final = re.compile(r"[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z\u4e00-\u9fff._-]{0,63}")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One line of a catalog kind's index."""

    version: str
    imported_at: datetime
    entries: int
    source: str
    file: str


def read_catalog_csv(
    path: str | os.PathLike[str], *, kind: CatalogKind | None = None, encoding: str | None = None
) -> CatalogImport:
    """Import a catalog CSV with the published Chinese headers.

    Args:
        path: the CSV file.
        kind: drug or consumable; guessed from the code column's header when None.
        encoding: the file's encoding; UTF-8 (with or without BOM), then GB18030, when None.

    Returns:
        The entries kept, the rows skipped and the values repaired.

    Raises:
        CatalogError: no header row with a code column, or the file is not text.
        OSError: the file cannot be read.
    """
    # Catalogs from Chinese sources come as UTF-8 (often with a BOM) or GB18030;
    # the file is streamed, and read again only if UTF-8 turns out wrong.
    encodings = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for enc in encodings:
        try:
            with open(path, encoding=enc, newline="") as fh:
                return parse_catalog_rows(csv.reader(fh), kind=kind)
        except UnicodeDecodeError as exc:
            if enc == encodings[-1]:
                raise CatalogError(
                    f"{path}: cannot be read as {' or '.join(encodings)} "
                    f"({exc.reason} at byte {exc.start})"
                ) from exc
    raise AssertionError("unreachable: the last encoding returns or raises")


def read_catalog_xlsx(
    path: str | os.PathLike[str], *, kind: CatalogKind | None = None, sheet: str | None = None
) -> CatalogImport:
    """Import a catalog workbook; the first sheet with a code-column header is used.

    Args:
        path: the .xlsx file.
        kind: drug or consumable; guessed from the code column's header when None.
        sheet: the sheet to read; by default the first that has a recognisable header.

    Returns:
        The entries kept, the rows skipped and the values repaired.

    Raises:
        CatalogError: no sheet has a header row with a code column.
        OSError: the file cannot be read.
    """
    from openpyxl import load_workbook  # imported here: only XLSX imports pay for it

    workbook = load_workbook(Path(path), read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise CatalogError(f"{path}: no sheet named {sheet!r}")
        problems: list[str] = []
        for name in [sheet] if sheet is not None else workbook.sheetnames:
            worksheet = workbook[name]
            # Some exporters write a wrong sheet dimension; without this a read-only
            # sheet would stop at the declared last row.
            worksheet.reset_dimensions()
            try:
                return parse_catalog_rows(worksheet.iter_rows(values_only=True), kind=kind)
            except CatalogError as exc:
                problems.append(f"sheet {name!r}: {exc}")
        raise CatalogError(f"{path}: " + "; ".join(problems or ["workbook has no sheets"]))
    finally:
        workbook.close()


def import_catalog_file(
    path: str | os.PathLike[str], *, kind: CatalogKind | None = None
) -> CatalogImport:
    """Import a catalog from .csv or .xlsx, chosen by the file suffix.

    Raises:
        CatalogError: unknown suffix, or no header row with a code column.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".txt"):
        return read_catalog_csv(path, kind=kind)
    if suffix in (".xlsx", ".xlsm"):
        return read_catalog_xlsx(path, kind=kind)
    raise CatalogError(f"{path}: catalogs are read from .csv or .xlsx files, not {suffix!r}")


def version_from_import(
    imported: CatalogImport, version: str, *, imported_at: datetime, source: str = ""
) -> CatalogVersion:
    """Wrap an import as a labelled catalog version."""
    return CatalogVersion(
        kind=imported.kind,
        version=version,
        imported_at=imported_at,
        entries=imported.entries,
        source=source,
    )


def _kind_dir(data_dir: str | os.PathLike[str], kind: CatalogKind) -> Path:
    return Path(data_dir) / "catalogs" / kind.value


def check_label(version: str) -> str:
    """The label, if it is usable as a version name.

    Raises:
        CatalogError: it is not (1-64 letters, digits, '.', '_' or '-').
    """
    if not _SAFE_LABEL.fullmatch(version) or ".." in version:
        raise CatalogError(
            f"catalog version label {version!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    return version


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def version_to_bytes(version: CatalogVersion) -> bytes:
    """A version in its stored form: JSON with dictionary-encoded columns."""
    entries = list(version.entries.values())
    columns: dict[str, Any] = {"code": [e.code for e in entries]}
    for name in ENTRY_FIELDS[1:]:
        # Dictionary-encode each column: most values repeat (forms, units,
        # manufacturers), and a packed index array loads without one Python
        # object per cell.
        values: dict[str, int] = {}
        index = array.array(
            "I", (values.setdefault(getattr(e, name), len(values)) for e in entries)
        )
        columns[name] = {
            "values": list(values),
            "index": base64.b64encode(index.tobytes()).decode("ascii"),
        }
    doc = {
        "format": FORMAT_VERSION,
        "kind": version.kind.value,
        "version": version.version,
        "imported_at": version.imported_at.isoformat(),
        "source": version.source,
        "count": len(entries),
        "columns": columns,
    }
    return orjson.dumps(doc)


def version_from_bytes(data: bytes, where: str) -> CatalogVersion:
    """A version from its stored form (:func:`version_to_bytes`).

    Raises:
        CatalogError: the bytes are not a stored version (``where`` names them).
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"{where}: not a catalog version file ({exc})") from exc
    return _version_from_doc(doc, where)


def _version_from_doc(doc: dict[str, Any], where: str) -> CatalogVersion:
    if doc.get("format") != FORMAT_VERSION:
        raise CatalogError(f"{where}: unknown catalog file format {doc.get('format')!r}")
    try:
        stored: dict[str, Any] = doc["columns"]
        codes: list[str] = stored["code"]
        columns: list[list[str]] = []
        for name in ENTRY_FIELDS[1:]:
            column = stored.get(name)
            if column is None:  # a field added after the file was written
                columns.append([""] * len(codes))
                continue
            index = array.array("I")
            index.frombytes(base64.b64decode(column["index"]))
            if index.itemsize != 4 or len(index) != len(codes):
                raise CatalogError(f"{where}: column {name!r} does not match the codes")
            values: list[str] = column["values"]
            columns.append(list(map(values.__getitem__, index)))
        entries = dict(zip(codes, map(CatalogEntry, codes, *columns), strict=True))
        return CatalogVersion(
            kind=CatalogKind(doc["kind"]),
            version=doc["version"],
            imported_at=datetime.fromisoformat(doc["imported_at"]),
            entries=entries,
            source=doc.get("source", ""),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"{where}: damaged catalog version file ({exc!r})") from exc


def _read_index(directory: Path) -> list[dict[str, Any]]:
    index = directory / "index.json"
    if not index.exists():
        return []
    doc = orjson.loads(index.read_bytes())
    versions: list[dict[str, Any]] = doc["versions"]
    return versions


def save_version(data_dir: str | os.PathLike[str], version: CatalogVersion) -> Path:
    """Persist a catalog version and add it to its kind's index (replacing a same label).

    Returns:
        The path of the version file.

    Raises:
        CatalogError: the version label cannot be used as a file name.
    """
    label = check_label(version.version)
    directory = _kind_dir(data_dir, version.kind)
    path = directory / f"{label}.json"
    _write_atomic(path, version_to_bytes(version))
    index = [v for v in _read_index(directory) if v["version"] != label]
    index.append(
        {
            "version": label,
            "imported_at": version.imported_at.isoformat(),
            "entries": len(version.entries),
            "source": version.source,
            "file": path.name,
        }
    )
    _write_atomic(directory / "index.json", orjson.dumps({"versions": index}))
    return path


def list_versions(data_dir: str | os.PathLike[str], kind: CatalogKind) -> list[VersionInfo]:
    """The stored versions of one catalog kind, oldest import first."""
    return [
        VersionInfo(
            version=v["version"],
            imported_at=datetime.fromisoformat(v["imported_at"]),
            entries=int(v["entries"]),
            source=v.get("source", ""),
            file=v["file"],
        )
        for v in _read_index(_kind_dir(data_dir, kind))
    ]


def load_version(
    data_dir: str | os.PathLike[str], kind: CatalogKind, version: str
) -> CatalogVersion:
    """Load one stored version by label.

    Raises:
        CatalogError: no such version is stored.
    """
    path = _kind_dir(data_dir, kind) / f"{check_label(version)}.json"
    if not path.exists():
        raise CatalogError(f"no {kind} catalog version {version!r} under {path.parent}")
    return load_catalog(path)


def latest_version(data_dir: str | os.PathLike[str], kind: CatalogKind) -> CatalogVersion | None:
    """Load the most recently imported version of a kind, or None when none is stored."""
    versions = list_versions(data_dir, kind)
    if not versions:
        return None
    return load_catalog(_kind_dir(data_dir, kind) / versions[-1].file)


def load_catalog(
    path: str | os.PathLike[str],
    *,
    kind: CatalogKind | None = None,
    imported_at: datetime | None = None,
) -> CatalogVersion:
    """Load a catalog: a stored version (.json) or a published .csv/.xlsx file.

    Args:
        path: a version file written by :func:`save_version`, or a catalog CSV/XLSX.
        kind: for CSV/XLSX, the catalog kind when its header does not tell.
        imported_at: for CSV/XLSX, the import time to record (the file's mtime when None).

    Returns:
        A :class:`CatalogVersion`; for CSV/XLSX its label is the file name without suffix.
        Rows skipped on a CSV/XLSX import are not reported here: use
        :func:`import_catalog_file` to see them.

    Raises:
        CatalogError: the file is not a catalog.
        OSError: the file cannot be read.
    """
    p = Path(path)
    if p.suffix.lower() == ".json":
        return version_from_bytes(p.read_bytes(), str(p))
    imported = import_catalog_file(p, kind=kind)
    when = imported_at or datetime.fromtimestamp(p.stat().st_mtime).astimezone()
    return version_from_import(imported, p.stem, imported_at=when, source=p.name)
