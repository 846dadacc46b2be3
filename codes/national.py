"""National medical-insurance codes (医保药品/耗材分类与代码): validation and segments.

Four code families share one namespace, told apart by their first letter:

- ``X`` western drugs, 23 characters
  (class 5 + generic name 4 + dosage form 4 + specification 2 + packaging 2 + enterprise 5);
- ``Z`` Chinese patent medicines, 20 characters (no dosage-form segment, 5-character
  generic-name code);
- ``T`` herbal decoction pieces, 10 characters (segments not published, kept whole);
- ``C`` medical consumables, 20 digits, or 27 with a 7-digit specification-model serial.

No check digit has been observed in any family, so none is enforced. Validation
runs a compiled pattern first and only walks the code character by character to
explain a rejection, which keeps bulk checks (300,000-code catalogs) cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CodeError",
    "CodeKind",
    "ConsumableCode",
    "DrugCode",
    "HerbalCode",
    "NationalCode",
    "is_valid",
    "kind_of",
    "parse_national_code",
    "validate",
]


class CodeError(ValueError):
    """A code does not have the national format; ``reason`` says which rule it broke."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"invalid code {code!r}: {reason}")
        self.code = code
        self.reason = reason


class CodeKind(StrEnum):
    """Which family a code belongs to."""

    WESTERN_DRUG = "western_drug"
    PATENT_MEDICINE = "patent_medicine"
    HERBAL_PIECE = "herbal_piece"
    CONSUMABLE = "consumable"
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class DrugCode:
    """A western-drug (X, 23) or Chinese-patent-medicine (Z, 20) code split into segments."""

    code: str
    kind: CodeKind
    drug_class: str  # ATC level 4 for X (A01AB); the TCM class for Z (A09BA)
    generic_name_code: str  # pinyin initial + serial: D075 (X) or D0254 (Z)
    dosage_form: str | None  # letter + 3 digits for X (A002); Z codes have none
    specification: str
    packaging: str
    enterprise: str  # digits 4-8 of the NMPA 药品本位码

    @property
    def category(self) -> str:
        """``X`` or ``Z``."""
        return self.code[0]

    @property
    def generic_name_initial(self) -> str:
        """Pinyin initial of the generic name (position 7)."""
        return self.generic_name_code[0]

    @property
    def generic_group(self) -> str:
        """Prefix shared by every product of the same generic name (category, class, name)."""
        return self.code[0] + self.drug_class + self.generic_name_code

    @property
    def product_without_enterprise(self) -> str:
        """The code minus the enterprise segment: same drug, form, strength and pack."""
        return self.code[:-5]


@dataclass(frozen=True, slots=True)
class HerbalCode:
    """A herbal-decoction-piece code (T, 10); its inner segments are not published."""

    code: str
    body: str  # the nine characters after ``T``

    @property
    def kind(self) -> CodeKind:
        """Always :attr:`CodeKind.HERBAL_PIECE`."""
        return CodeKind.HERBAL_PIECE


@dataclass(frozen=True, slots=True)
class ConsumableCode:
    """A consumable code (C, 20 or 27 digits) split into segments.

    The split of the 20-character base follows public implementations
    (2+2+2 classification, generic name 3, material 2, feature 3, enterprise 5);
    the national standard text was not at hand, so treat it as provisional.
    """

    code: str
    discipline: str  # classification level 1 (学科)
    use: str  # classification level 2 (用途)
    site_function: str  # classification level 3 (部位/功能)
    generic_name: str
    material: str
    feature: str
    enterprise: str
    spec_model_serial: str | None  # the 7-digit tail of a 27-character code

    @property
    def kind(self) -> CodeKind:
        """Always :attr:`CodeKind.CONSUMABLE`."""
        return CodeKind.CONSUMABLE

    @property
    def base_code(self) -> str:
        """The 20-character code without the specification-model serial."""
        return self.code[:20]

    @property
    def classification(self) -> str:
        """The six classification digits (discipline, use, site/function)."""
        return self.discipline + self.use + self.site_function


NationalCode = DrugCode | ConsumableCode | HerbalCode

# One rule per position: (allowed class, what the position holds). ``L`` = A-Z,
# ``D`` = 0-9, ``A`` = A-Z or 0-9, a literal letter = exactly that letter.
_Rule = tuple[str, str]


def _rules(*groups: tuple[int, str, str]) -> tuple[_Rule, ...]:
    out: list[_Rule] = []
    for count, cls, meaning in groups:
        out.extend((cls, meaning) for _ in range(count))
    return tuple(out)


_WESTERN_RULES: Final = _rules(
    (1, "X", "western-drug category"),
    (1, "L", "ATC anatomical main group"),
    (2, "D", "ATC therapeutic subgroup"),
    (2, "L", "ATC pharmacological/chemical subgroup"),
    (1, "L", "pinyin initial of the generic name"),
    (3, "D", "generic-name serial"),
    (1, "L", "dosage-form letter"),
    (3, "D", "dosage-form serial"),
    (2, "D", "specification variant"),
    (2, "D", "packaging variant"),
    (5, "D", "enterprise code"),
)
_PATENT_RULES: Final = _rules(
    (1, "Z", "Chinese-patent-medicine category"),
    (1, "L", "class main group"),
    (2, "D", "class subgroup"),
    (2, "L", "class subgroup"),
    (1, "L", "pinyin initial of the generic name"),
    (4, "D", "generic-name serial"),
    (2, "D", "specification variant"),
    (2, "D", "packaging variant"),
    (5, "D", "enterprise code"),
)
_HERBAL_RULES: Final = _rules(
    (1, "T", "herbal-piece category"),
    (9, "A", "herbal-piece serial"),
)
_CONSUMABLE_RULES: Final = _rules(
    (1, "C", "consumable category"),
    (2, "D", "discipline classification"),
    (2, "D", "use classification"),
    (2, "D", "site/function classification"),
    (3, "D", "generic-name code"),
    (2, "D", "material code"),
    (3, "D", "feature code"),
    (5, "D", "enterprise code"),
    (7, "D", "specification-model serial"),
)

_FAMILIES: Final[dict[str, tuple[CodeKind, tuple[int, ...], str]]] = {
    "X": (CodeKind.WESTERN_DRUG, (23,), "western-drug code (X)"),
    "Z": (CodeKind.PATENT_MEDICINE, (20,), "Chinese-patent-medicine code (Z)"),
    "T": (CodeKind.HERBAL_PIECE, (10,), "herbal-piece code (T)"),
    "C": (CodeKind.CONSUMABLE, (20, 27), "consumable code (C)"),
}
_RULES_BY_LETTER: Final[dict[str, tuple[_Rule, ...]]] = {
    "X": _WESTERN_RULES,
    "Z": _PATENT_RULES,
    "T": _HERBAL_RULES,
    "C": _CONSUMABLE_RULES,
}

_VALID: Final = re.compile(
    r"X[A-Z]\d\d[A-Z]{2}[A-Z]\d{3}[A-Z]\d{3}\d{8}\d"
    r"|Z[A-Z]\d\d[A-Z]{2}[A-Z]\d{4}\d{9}"
    r"|T[A-Z0-9]{9}"
    r"|C\d{19}(?:\d{7})?",
    re.ASCII,
)

_UPPER: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS: Final = frozenset("0123456789")
_CLASS_WORDS: Final = {"L": "a letter", "D": "a digit", "A": "a letter or digit"}


def _position_ok(cls: str, ch: str) -> bool:
    if cls == "L":
        return ch in _UPPER
    if cls == "D":
        return ch in _DIGITS
    if cls == "A":
        return ch in _UPPER or ch in _DIGITS
    return ch == cls


def _explain(code: str) -> str:
    """Say why ``code`` failed the fast pattern (called only for invalid codes)."""
    if not code:
        return "code is empty"
    if code != code.strip():
        return "code has leading or trailing whitespace"
    first = code[0]
    if first.islower() and first.upper() in _FAMILIES:
        return f"position 1 must be upper case, got {first!r}"
    if first not in _FAMILIES:
        return (
            "position 1 must be X (western drug), Z (Chinese patent medicine), "
            f"T (herbal piece) or C (consumable), got {first!r}"
        )
    _, lengths, label = _FAMILIES[first]
    rules = _RULES_BY_LETTER[first]
    for i, ch in enumerate(code[: len(rules)]):
        cls, meaning = rules[i]
        if _position_ok(cls, ch):
            continue
        if ch.islower() and _position_ok(cls, ch.upper()):
            return f"position {i + 1} must be upper case ({meaning}), got {ch!r}"
        return f"position {i + 1} must be {_CLASS_WORDS.get(cls, cls)} ({meaning}), got {ch!r}"
    if len(code) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        return f"{label} must be {want} characters long, got {len(code)}"
    return f"{label} does not match the national format"  # unreachable with the rules above


def validate(code: str) -> str | None:
    """Return why ``code`` is not a valid national drug/herbal/consumable code, or None.

    Args:
        code: the code exactly as received (no stripping or case folding is done).

    Returns:
        None for a valid code, else a one-line reason naming the position and rule.
    """
    if not isinstance(code, str):
        return f"code must be a string, got {type(code).__name__}"
    if _VALID.fullmatch(code):
        return None
    return _explain(code)


def is_valid(code: str, kind: CodeKind | None = None) -> bool:
    """Tell whether ``code`` is a valid national code (of ``kind``, when given).

    ``kind=CodeKind.TRACE`` checks for a standard 20-digit trace code instead.
    """
    if kind is CodeKind.TRACE:
        return kind_of(code) is CodeKind.TRACE
    if not isinstance(code, str) or _VALID.fullmatch(code) is None:
        return False
    return kind is None or _FAMILIES[code[0]][0] is kind


def kind_of(code: str) -> CodeKind | None:
    """Return the family of a valid national or standard trace code, or None when invalid."""
    if not isinstance(code, str):
        return None
    if _VALID.fullmatch(code):
        return _FAMILIES[code[0]][0]
    if len(code) == 20 and code[0] == "8" and code.isascii() and code.isdigit():
        return CodeKind.TRACE
    return None


def parse_national_code(code: str) -> NationalCode:
    """Split a national drug, herbal-piece or consumable code into its segments.

    Args:
        code: the code exactly as received.

    Returns:
        A :class:`DrugCode`, :class:`HerbalCode` or :class:`ConsumableCode`.

    Raises:
        CodeError: the code is not in a national format; ``reason`` says why.
    """
    reason = validate(code)
    if reason is not None:
        raise CodeError(str(code), reason)
    first = code[0]
    if first == "X":
        return DrugCode(
            code=code,
            kind=CodeKind.WESTERN_DRUG,
            drug_class=code[1:6],
            generic_name_code=code[6:10],
            dosage_form=code[10:14],
            specification=code[14:16],
            packaging=code[16:18],
            enterprise=code[18:23],
        )
    if first == "Z":
        return DrugCode(
            code=code,
            kind=CodeKind.PATENT_MEDICINE,
            drug_class=code[1:6],
            generic_name_code=code[6:11],
            dosage_form=None,
            specification=code[11:13],
            packaging=code[13:15],
            enterprise=code[15:20],
        )
    if first == "T":
        return HerbalCode(code=code, body=code[1:])
    return ConsumableCode(
        code=code,
        discipline=code[1:3],
        use=code[3:5],
        site_function=code[5:7],
        generic_name=code[7:10],
        material=code[10:12],
        feature=code[12:15],
        enterprise=code[15:20],
        spec_model_serial=code[20:27] or None,
    )
