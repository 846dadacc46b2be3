"""Whether a prescription line names its drug by generic name (通用名) or by a brand.

Prescriptions are written by generic name [SX 五(三)]. A substring test gets both ways
wrong: ``依西美坦 25mg`` does not contain the result's ``依西美坦片`` but is written by
generic name, and a brand that happens to contain a generic's characters would pass. So
the check compares words: the drug word of the line (what comes before the strength, a
bracket or a space), without its dosage form and salt, against the generic name's.
"""

from __future__ import annotations

import re

from gateway.ledger.dosage_forms import DosageForms

__all__ = ["drug_word", "generic_stem", "prescribed_by_brand"]

# the drug word ends at a space, a bracket, a separator, or the strength (25mg, 0.25g, 1ml:…)
_END = re.compile(r"[\s(（\[【,，;；/*×]|\d+(?:\.\d+)?\s*(?:mg|g|μg|ug|mcg|ml|iu|万?单位|%|:)",
                  re.IGNORECASE)
# salts and their counter-ions: 醋酸阿比特龙 and 阿比特龙 are one generic name
_SALT_PREFIXES = ("注射用", "盐酸", "醋酸", "硫酸", "甲磺酸", "马来酸", "枸橼酸", "富马酸",
                  "琥珀酸", "酒石酸", "磷酸", "氢溴酸", "苯磺酸", "苯甲酸", "乳酸", "葡萄糖酸",
                  "门冬氨酸", "谷氨酸")
_SALT_SUFFIXES = ("钠", "钾", "钙", "镁", "锌")


def drug_word(name: str) -> str:
    """The drug word of a product or prescription name: ``依西美坦`` of ``依西美坦 25mg``,
    ``依西美坦片`` of ``依西美坦片(阿诺新)``, ``阿诺新`` of ``阿诺新 25mg``."""
    text = name.strip()
    m = _END.search(text)
    return (text[:m.start()] if m else text).strip()


def _without_form(word: str, forms: DosageForms) -> str:
    best = ""
    for form in forms.form_words():
        if word.endswith(form) and len(form) > len(best) and len(form) < len(word):
            best = form
    return word[:len(word) - len(best)] if best else word


def generic_stem(name: str, forms: DosageForms) -> str:
    """A generic name without strength, dosage form and salt: what two spellings of one
    generic name share (``醋酸阿比特龙片`` and ``阿比特龙`` → ``阿比特龙``)."""
    word = _without_form(drug_word(name), forms)
    changed = True
    while changed:
        changed = False
        for p in _SALT_PREFIXES:
            if word.startswith(p) and len(word) > len(p) + 1:
                word, changed = word[len(p):], True
        for s in _SALT_SUFFIXES:
            if word.endswith(s) and len(word) > len(s) + 1:
                word, changed = word[:-len(s)], True
        stripped = _without_form(word, forms)
        if stripped != word:
            word, changed = stripped, True
    return word


def prescribed_by_brand(name: str, generic_name: str, forms: DosageForms) -> bool:
    """True when the line names something other than the generic name (a brand); a line
    without a name is not."""
    if not drug_word(name):
        return False
    return generic_stem(name, forms) != generic_stem(generic_name, forms)
