"""Normalising drug names, specifications and manufacturers as hospitals and catalogs write them.

Hospital dictionaries write the same product many ways ("阿托伐他汀钙片(立普妥)",
"20mg×7s", "辉瑞"), and the national catalog was extracted from PDF with cut
cells. These pure functions turn both sides into comparable keys.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import lazy_pinyin

from mappings.packaging import normalize_multiplication, pack_quantity

__all__ = [
    "DOSAGE_FORMS",
    "ParsedName",
    "SpecKey",
    "dosage_form_of",
    "is_clean_manufacturer",
    "manufacturer_core",
    "normalize_text",
    "parse_item_name",
    "parse_spec",
    "pinyin_key",
]

# Longest first, so "阴道泡腾片" wins over "片".
DOSAGE_FORMS = tuple(sorted((
    "片", "分散片", "肠溶片", "缓释片", "控释片", "泡腾片", "阴道片", "阴道泡腾片", "咀嚼片",
    "含片", "口崩片", "薄膜衣片", "糖衣片", "胶囊", "软胶囊", "硬胶囊", "肠溶胶囊", "缓释胶囊",
    "阴道软胶囊", "颗粒", "混悬颗粒", "注射液", "注射用", "口服液", "口服溶液", "糖浆", "合剂",
    "栓", "阴道栓", "丸", "大蜜丸", "小蜜丸", "水蜜丸", "水丸", "浓缩丸", "滴丸", "散", "膏",
    "煎膏", "乳膏", "软膏", "凝胶", "贴膏", "贴剂", "滴眼液", "喷雾剂", "气雾剂", "酊", "酊剂",
    "搽剂", "洗液", "溶液", "混悬液", "粉", "撒粉", "胶丸",
), key=len, reverse=True))

# Marks dictionaries put on restricted, high-alert or insurance drugs ("*头孢曲松", "★…"),
# and punctuation left at either end once brackets and the strength are taken out.
_NAME_MARKS = "-_/*.,;:★☆▲△●○◆◇■□※#＃+~"

# Words hospitals add around the generic name that say nothing about the product.
_NOISE_WORDS = ("集采", "国采", "带量", "中选", "基药", "国基", "省基", "甲类", "乙类", "自费",
                "进口", "国产", "合资", "原研", "一致性评价", "过评", "新", "停用")


def normalize_text(text: str) -> str:
    """NFKC (full-width → half-width), lower case, no spaces."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


@dataclass(frozen=True, slots=True)
class ParsedName:
    """A hospital item name split into generic name, bracketed extras and an inline spec."""

    generic: str  # "阿托伐他汀钙片"
    extras: tuple[str, ...]  # bracketed texts: brand names, tags ("立普妥", "集采")
    spec: str  # a specification written into the name ("0.25g")


_BRACKETS = re.compile(r"[(\[{<【〔「『《]([^)\]}>】〕」』》]*)[)\]}>】〕」』》]?")
_INLINE_SPEC = re.compile(
    r"(\d+(?:\.\d+)?\s*(?:mg|g|μg|ug|mcg|ml|l|iu|u|万u|万iu|万单位|单位|%|克|毫克|微克|毫升)"
    r"(?:\s*[:/／]\s*\d*(?:\.\d+)?\s*(?:mg|g|ml|片|粒|支|袋))?"
    r"(?:\s*[*×x]\s*\d+\s*[a-z\u4e00-\u9fff]{0,2})*"
    r"(?:\s*/\s*[\u4e00-\u9fff])?).*$"
)


def parse_item_name(name: str) -> ParsedName:
    """Split "头孢呋辛酯片0.25g(西力欣)【集采】" into generic, extras and inline spec."""
    text = normalize_text(name)
    extras = tuple(x for x in (m.group(1).strip() for m in _BRACKETS.finditer(text)) if x)
    text = _BRACKETS.sub("", text)
    spec = ""
    m = _INLINE_SPEC.search(text)
    if m is not None and m.start() > 0:
        spec, text = text[m.start():], text[:m.start()]
    text = text.strip(_NAME_MARKS)
    for word in _NOISE_WORDS:
        if text.startswith(word) and len(text) > len(word) + 1:
            text = text[len(word):]
    return ParsedName(generic=text, extras=extras, spec=spec)


def dosage_form_of(generic_name: str) -> str:
    """The dosage-form suffix of a generic name ("克霉唑阴道片" → "阴道片"), or ""."""
    text = normalize_text(generic_name)
    if text.startswith("注射用"):
        return "注射用"
    for form in DOSAGE_FORMS:
        if text.endswith(form) or text.endswith(form + "剂"):
            return form
    return ""


@lru_cache(maxsize=65536)
def pinyin_key(text: str) -> str:
    """Toneless pinyin of the Chinese characters, so IME homophones (酯/脂) compare equal."""
    return " ".join(lazy_pinyin(normalize_text(text), errors="ignore"))


@dataclass(frozen=True, slots=True)
class SpecKey:
    """A specification reduced to comparable parts.

    ``doses`` are amounts in base units ("20mg", "10ml", "100000u"), ``count`` the
    number of dosage units in the pack (7 for "20mg*7片"), None when not written.
    """

    doses: frozenset[str]
    count: int | None

    @property
    def empty(self) -> bool:
        """True when neither a dose nor a pack count could be read."""
        return not self.doses and self.count is None


_UNIT_SCALE: dict[str, tuple[str, float]] = {
    "mg": ("mg", 1.0), "毫克": ("mg", 1.0), "g": ("mg", 1000.0), "克": ("mg", 1000.0),
    "kg": ("mg", 1e6), "μg": ("mg", 0.001), "ug": ("mg", 0.001), "mcg": ("mg", 0.001),
    "微克": ("mg", 0.001), "ml": ("ml", 1.0), "毫升": ("ml", 1.0), "l": ("ml", 1000.0),
    "iu": ("u", 1.0), "u": ("u", 1.0), "单位": ("u", 1.0), "万u": ("u", 1e4),
    "万iu": ("u", 1e4), "万单位": ("u", 1e4), "%": ("%", 1.0),
}
_DOSE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(万iu|万u|万单位|mg|毫克|μg|ug|mcg|微克|kg|g|克|ml|毫升|l|iu|u|单位|%)"
    r"(?![a-z])"
)


def _dose_text(value: float, unit: str) -> str:
    return f"{round(value, 6):g}{unit}"


@lru_cache(maxsize=262144)
def parse_spec(text: str) -> SpecKey:
    """Read doses and pack count from "20mg*7片", "0.02g", "每袋装15g", "12粒/板*2板/盒" …

    The count is the whole pack (``12粒/板*2板/盒`` is 24), see
    :func:`mappings.packaging.pack_quantity`.
    """
    t = normalize_multiplication(re.sub(r"\s+", "", text))
    count = pack_quantity(text)
    doses = set()
    for m in _DOSE.finditer(t):
        base, scale = _UNIT_SCALE[m.group(2)]
        doses.add(_dose_text(float(m.group(1)) * scale, base))
    return SpecKey(doses=frozenset(doses), count=count)


_FOREIGN = {
    "pfizer": "辉瑞", "astrazeneca": "阿斯利康", "bayer": "拜耳", "novartis": "诺华",
    "sanofi": "赛诺菲", "merck sharp": "默沙东", "msd": "默沙东", "glaxosmithkline": "葛兰素史克",
    "gsk": "葛兰素史克", "roche": "罗氏", "lilly": "礼来", "boehringer": "勃林格殷格翰",
    "janssen": "杨森", "takeda": "武田", "eisai": "卫材", "daiichi": "第一三共",
    "astellas": "安斯泰来", "abbott": "雅培", "servier": "施维雅", "bristol": "百时美施贵宝",
}
_LEGAL = re.compile(
    r"股份有限公司|有限责任公司|有限公司|集团|股份|公司|有限|责任|控股|"
    r"co\.?,?|ltd\.?|limited|inc\.?|gmbh|corporation|s\.a\.|\bag\b"
)
_TRADE = re.compile(
    r"大药厂|制药厂|制药|药业|药厂|医药|生物|科技|工业|实业|总厂|分厂|中药厂|中药|厂"
)
_REGIONS = re.compile(
    r"^(?:北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|"
    r"湖南|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门)"
    r"(?:省|市|自治区|壮族自治区|回族自治区|维吾尔自治区)?"
)


@lru_cache(maxsize=65536)
def manufacturer_core(name: str) -> str:
    """The distinctive part of a manufacturer name: "扬子江药业集团有限公司" → "扬子江"."""
    t = normalize_text(name)
    for english, chinese in _FOREIGN.items():
        if english.replace(" ", "") in t:
            return chinese
    t = re.sub(r"[()（）\[\]【】]", "", t)
    t = _LEGAL.sub("", t)
    t = _TRADE.sub("", t)
    core = _REGIONS.sub("", t)
    return core or t


_FRAGMENT_START = ("有限", "限公司", "份有限", "公司", "责任", "司", "股", "份", "集团")
_PACKAGING = re.compile(r"复合膜|铝|包装|瓶|pvc|硬片|聚|\d|装|袋|/")


def is_clean_manufacturer(name: str) -> bool:
    """Whether a catalog manufacturer cell looks whole (not cut or glued by PDF extraction)."""
    t = normalize_text(name)
    if not t or t.startswith(_FRAGMENT_START) or _PACKAGING.search(t):
        return False
    if t.isascii():
        return len(t) > 3
    return t.endswith(("公司", "厂")) and t.count("公司") <= 1
