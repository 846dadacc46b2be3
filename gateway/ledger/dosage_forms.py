"""Dosage-form groups (剂型分组): which products of one generic name belong to one contract.

集采 results are per generic name and dosage-form group, while the national code's
generic-name segment is shared by every form (XG02CAL073A001… 盐酸利托君片 and
XG02CAL073B001… 注射用盐酸利托君). The groups are data (``config/dosage_forms.yaml``)
that a deployment extends; this module reads them and answers, for a national code, a
dosage form as written or a product name, which group it belongs to.

The group a ledger line belongs to comes from its national code alone
(:meth:`DosageForms.code_group`): lines carry codes, not reliable names. A western-drug
code whose segment no group lists is a group of its own, named by the segment, so an
unknown form is never counted into another form's contract. Chinese patent medicines
(Z codes), herbal pieces and consumables have no dosage-form segment: their group is
``""`` and their generic-name segment alone identifies the product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from canonical.errors import ConfigError

__all__ = [
    "SHIPPED_DOSAGE_FORMS",
    "DosageForms",
    "FormGroup",
    "configure_dosage_forms",
    "current_dosage_forms",
    "dosage_forms_from_mapping",
    "load_dosage_forms",
]

SHIPPED_DOSAGE_FORMS = Path(__file__).resolve().parents[2] / "config" / "dosage_forms.yaml"

_X = re.compile(r"^X[A-Z]\d\d[A-Z]{2}[A-Z]\d{3}[A-Z]\d{3}\d{2}\d{2}\d{5}$")
_SEGMENT = re.compile(r"^[A-Z]\d{3}$")
# the product name ends where the specification starts (阿那曲唑片 1mg, 依西美坦片(25mg));
# not at a digit: 维生素B12片 is a name
_NAME_END = re.compile(r"[\s(（]")


@dataclass(frozen=True, slots=True)
class FormGroup:
    """One dosage-form group: its name, the forms in it, its code segments."""

    name: str
    forms: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DosageForms:
    """The dosage-form groups of a deployment, indexed for look-ups."""

    groups: tuple[FormGroup, ...] = ()
    _by_segment: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _by_form: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for g in self.groups:
            self._by_form[g.name] = g.name
            for form in g.forms:
                self._by_form[form] = g.name
            for seg in g.codes:
                self._by_segment[seg] = g.name

    def code_group(self, national_code: str) -> str:
        """The group of a national code: a group name, the segment itself when no group
        lists it, ``""`` for codes without a dosage-form segment (Z, T, C)."""
        code = national_code.strip().upper()
        if not _X.match(code):
            return ""
        segment = code[10:14]
        return self._by_segment.get(segment, segment)

    def form_group(self, dosage_form: str) -> str | None:
        """The group of a dosage form as written (片剂, 注射用无菌粉末, 口服常释剂型 …), or
        None when no group names it."""
        text = dosage_form.strip()
        if not text:
            return None
        if _SEGMENT.match(text.upper()):
            return self._by_segment.get(text.upper(), text.upper())
        return self._by_form.get(text)

    def name_group(self, product_name: str) -> str | None:
        """The group a product name implies (注射用… , …缓释片, …胶囊), or None."""
        name = product_name.strip()
        for g in self.groups:
            if any(name.startswith(p) for p in g.prefixes):
                return g.name
        stem = _NAME_END.split(name, maxsplit=1)[0]
        best: tuple[int, str] | None = None
        for form, group in self._by_form.items():
            if stem.endswith(form) and (best is None or len(form) > best[0]):
                best = (len(form), group)
        return None if best is None else best[1]

    def form_words(self) -> tuple[str, ...]:
        """Every dosage form and group name, as they end product names."""
        return tuple(self._by_form)

    def known(self) -> tuple[str, ...]:
        """The group names, for messages."""
        return tuple(g.name for g in self.groups)


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where}: must be a list of non-empty texts")
        return ()
    return tuple(v.strip() for v in value)


def dosage_forms_from_mapping(data: Any, source: str) -> DosageForms:
    """The groups from decoded YAML ``{"groups": [{name, forms, codes, prefixes}]}``.

    Raises:
        ConfigError: naming every problem (a segment or form in two groups included).
    """
    problems: list[str] = []
    items = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError([f"{source}: expected groups: a list of dosage-form groups"])
    groups: list[FormGroup] = []
    owner: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{source}: groups[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not item["name"].strip():
            problems.append(f"{where}: needs a name")
            continue
        g = FormGroup(item["name"].strip(), _strings(item.get("forms"), f"{where}.forms",
                                                     problems),
                      tuple(c.upper() for c in _strings(item.get("codes"), f"{where}.codes",
                                                        problems)),
                      _strings(item.get("prefixes"), f"{where}.prefixes", problems))
        for seg in g.codes:
            if not _SEGMENT.match(seg):
                problems.append(f"{where}.codes: {seg!r} is not a dosage-form segment "
                                "(letter + 3 digits, e.g. A001)")
        for key in (g.name, *g.forms, *(f"code {c}" for c in g.codes)):
            if key in owner and owner[key] != g.name:
                problems.append(f"{where}: {key} is already in group {owner[key]}")
            owner[key] = g.name
        groups.append(g)
    if problems:
        raise ConfigError(problems)
    return DosageForms(tuple(groups))


def load_dosage_forms(path: Path) -> DosageForms:
    """Read a dosage-form group file.

    Raises:
        ConfigError: the file is unreadable or invalid.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read dosage-form groups: {exc}"]) from exc
    return dosage_forms_from_mapping(data, str(path))


@lru_cache(maxsize=1)
def _shipped() -> DosageForms:
    if SHIPPED_DOSAGE_FORMS.is_file():
        return load_dosage_forms(SHIPPED_DOSAGE_FORMS)
    # installed without the config folder: every segment is a group of its own
    return DosageForms()


_configured: list[DosageForms] = []


def configure_dosage_forms(forms: DosageForms | None) -> None:
    """Use ``forms`` for every contract read from now on (None: the shipped file).

    One table per process, like the working-day calendar: contracts read by the HTTP
    import, the store and the CLI must agree on which group a product is in.
    """
    _configured[:] = [] if forms is None else [forms]


def current_dosage_forms() -> DosageForms:
    """The table contracts are read with."""
    return _configured[0] if _configured else _shipped()
