"""National medical-insurance code formats and national catalogs.

Parsing, validation and catalog comparison are pure; :mod:`codes.catalog_files`
reads catalog files and stores catalog versions. Nothing here imports the
gateway core or the mappings.
"""

from codes.catalog import (
    CatalogDiff,
    CatalogEntry,
    CatalogError,
    CatalogImport,
    CatalogKind,
    CatalogVersion,
    EntryChange,
    FieldChange,
    RowNote,
    SkippedRow,
    WithdrawnAlert,
    diff,
    parse_catalog_rows,
    withdrawn_mapped,
)
from codes.catalog_files import (
    VersionInfo,
    import_catalog_file,
    latest_version,
    list_versions,
    load_catalog,
    load_version,
    read_catalog_csv,
    read_catalog_xlsx,
    save_version,
    version_from_import,
)
from codes.national import (
    CodeError,
    CodeKind,
    ConsumableCode,
    DrugCode,
    HerbalCode,
    NationalCode,
    is_valid,
    kind_of,
    parse_national_code,
    validate,
)
from codes.standard_code import enterprise_from_standard_code, split_standard_code
from codes.trace import TraceCode, parse_trace_code, validate_trace_code

__all__ = [
    "CatalogDiff",
    "CatalogEntry",
    "CatalogError",
    "CatalogImport",
    "CatalogKind",
    "CatalogVersion",
    "CodeError",
    "CodeKind",
    "ConsumableCode",
    "DrugCode",
    "EntryChange",
    "FieldChange",
    "HerbalCode",
    "NationalCode",
    "RowNote",
    "SkippedRow",
    "TraceCode",
    "VersionInfo",
    "WithdrawnAlert",
    "diff",
    "enterprise_from_standard_code",
    "import_catalog_file",
    "is_valid",
    "kind_of",
    "latest_version",
    "list_versions",
    "load_catalog",
    "load_version",
    "parse_catalog_rows",
    "parse_national_code",
    "parse_trace_code",
    "read_catalog_csv",
    "read_catalog_xlsx",
    "save_version",
    "split_standard_code",
    "validate",
    "validate_trace_code",
    "version_from_import",
    "withdrawn_mapped",
]
