"""Generate hospital drug-dictionary items the way real HIS dictionaries spell them.

Run from the repository root::

    python tests/data/mappings/generate_hospital_items.py            # both sets
    python tests/data/mappings/generate_hospital_items.py --check    # fail if a file differs

Writes two sets from the national catalog sample, each with a fixed seed:

- ``hospital_items_generated.csv`` (seed 20261204, 600 items): the development set;
- ``hospital_items_heldout.csv`` (seed 77031, 500 items): reported by ``bench/mapping.py``
  and never looked at while changing the matcher.

The two sets are drawn from disjoint halves of the catalog rows (split by a hash of the
national code), so the held-out set also tests products the development set never showed.

Every variation is drawn from the seeded generator, none is written by hand:
abbreviated makers (province and company-type words dropped: 扬子江药业集团有限公司 →
扬子江药业, 扬子江), makers cut or rotated as PDF extraction leaves them in the published
catalog (限公司同仁堂制药厂, 有限公司葵花药业集团(襄阳)), specifications respelled (0.25g ↔
250mg, 每片含…, 每袋装…, ml ↔ mL ↔ L, 万U ↔ IU), packaging written as expressions
(``12粒/板*2板/袋*1袋/盒``, ``10ml*5支``, ``0.25g*24片``, ``24片/盒``), restricted-drug and
insurance markers on names (``*``, ``★``, ``(甲)``), and the evidence each row carries:

- ``bwm``: a 本位码, sometimes with trailing junk (spaces, ``-1``, ``#``, the class 甲);
- ``approval``: an approval number (国药准字H…, with or without the prefix, spaced);
- ``name``: the name, specification and maker only.

A row is used only when what the item says singles it out in the catalog: generic name,
maker (enterprise segment), strength and pack count. Rows differing only in packaging
material are left out, as no one could tell them apart.
"""

from __future__ import annotations

import argparse
import collections
import csv
import random
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "data" / "nhsa_drug_catalog_sample.csv"
CATALOG = SHARED if SHARED.exists() else HERE / "nhsa_drug_catalog_sample.csv"  # same bytes

SETS = (
    # (file, seed, size, half of the catalog rows)
    ("hospital_items_generated.csv", 20261204, 600, 0),
    ("hospital_items_heldout.csv", 77031, 500, 1),
)
EVIDENCE_SHARE = (("bwm", 0.25), ("approval", 0.30), ("name", 0.45))

DOSE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|g|ml|毫升|克|毫克|μg|ug|万U|万IU|万单位|IU|U|L)(?![a-zA-Z])")
FRAGMENTS = ("有限", "限公司", "份有限", "公司", "责任", "司", "股", "份", "集团")
PACKAGING_WORDS = re.compile(r"复合膜|铝|包装|瓶|PVC|硬片|聚|\d|装|袋|/")
PROVINCES = ("北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏",
             "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南",
             "四川", "贵州", "云南", "陕西", "甘肃", "青海", "内蒙古", "广西", "宁夏", "新疆")
COMPANY_TYPES = ("股份有限公司", "有限责任公司", "有限公司", "集团", "股份", "公司")
TRADE_WORDS = ("制药厂", "制药", "药业", "药厂", "医药", "生物", "中药厂")
SALTS = ("枸橼酸", "盐酸", "醋酸", "硝酸", "磷酸", "马来酸", "甲磺酸", "乳酸", "硫酸")
PREFIX_MARKERS = ("*", "★", "☆", "▲", "#")
SUFFIX_MARKERS = ("(甲)", "(乙)", "[甲]", "(乙类)", "【集采】", "(集采)", "(基)", "(国基)", "*")
STANDARD_JUNK = (" ", "  ", "-1", "-01", "#", "甲", "乙", "/1", "\t")


@dataclass(frozen=True, slots=True)
class Truth:
    """What a pharmacist knows about the product a catalog row describes."""

    code: str
    generic: str
    maker: str  # the enterprise's name as the catalog writes it when the cell is whole
    maker_cell: str  # this row's own manufacturer cell, cut or glued as published
    dose_value: float  # in the base unit below
    dose_unit: str  # mg, ml or u
    count: int
    approval: str  # 国药准字H20051055, or "" when the row has no clean one
    standard: str  # 14 digits, or ""


# --- reading the catalog -------------------------------------------------------------

def clean_maker(name: str) -> bool:
    if not name or name.startswith(FRAGMENTS) or PACKAGING_WORDS.search(name):
        return False
    return name.endswith(("公司", "厂")) and name.count("公司") <= 1 and len(name) >= 6


def first_dose(row: dict[str, str]) -> tuple[float, str] | None:
    """The first strength in the specification cell (or the cells PDF extraction shifted)."""
    for column in ("规格", "剂型", "包装规格"):
        m = DOSE.search(row[column])
        if m:
            return to_base(float(m.group(1)), m.group(2))
    return None


def to_base(value: float, unit: str) -> tuple[float, str]:
    scale = {"mg": (1.0, "mg"), "毫克": (1.0, "mg"), "g": (1000.0, "mg"), "克": (1000.0, "mg"),
             "μg": (0.001, "mg"), "ug": (0.001, "mg"), "ml": (1.0, "ml"), "毫升": (1.0, "ml"),
             "L": (1000.0, "ml"), "万U": (1e4, "u"), "万IU": (1e4, "u"), "万单位": (1e4, "u"),
             "IU": (1.0, "u"), "U": (1.0, "u")}[unit]
    return round(value * scale[0], 6), scale[1]


def pack_count(row: dict[str, str]) -> int | None:
    """The number of dosage units in the pack, also when the row is shifted one cell left."""
    for column in ("最小包装数量", "包装规格"):
        q = row[column].strip()
        if q.isdigit():
            return int(q) if 0 < int(q) <= 500 else None
    return None


def read_truths(path: Path) -> list[Truth]:
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    makers: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in rows:
        if clean_maker(r["药品生产企业"]):
            makers[r["医保药品编码"][-5:]][r["药品生产企业"]] += 1
    maker_of = {e: c.most_common(1)[0][0] for e, c in makers.items()}

    Key = tuple[str, str, tuple[float, str] | None, int | None]

    def key(r: dict[str, str]) -> Key:
        return (r["药品通用名"], r["医保药品编码"][-5:], first_dose(r), pack_count(r))

    loose: dict[tuple[str, str], list[tuple[tuple[float, str] | None, int | None]]] = \
        collections.defaultdict(list)
    for r in rows:
        g, e, d, n = key(r)
        loose[(g, e)].append((d, n))

    truths = []
    for r in rows:
        g, e, d, n = key(r)
        if not g or e not in maker_of or d is None or n is None:
            continue
        # another row of the same maker whose strength or count is unknown could be this one
        alike = [1 for d2, n2 in loose[(g, e)]
                 if (d2 is None or d2 == d) and (n2 is None or n2 == n)]
        if len(alike) != 1:
            continue
        approval = r["批准文号"].strip()
        approval = approval if re.fullmatch(r"国药准字[A-Z]{1,2}\d{8}", approval) else ""
        standard = re.sub(r"[甲乙丙]$", "", r["药品本位码"].strip())
        standard = standard if re.fullmatch(r"86\d{12}", standard) else ""
        truths.append(Truth(r["医保药品编码"], g, maker_of[e], r["药品生产企业"].strip(),
                            d[0], d[1], n, approval, standard))
    return truths


# --- writing like a hospital ---------------------------------------------------------

def number(value: float) -> str:
    return f"{round(value, 6):g}"


def spell_dose(value: float, unit: str, rng: random.Random) -> str:
    """The strength in one of the spellings dictionaries use for it (0.25g, 250mg, 250MG …)."""
    if unit == "mg":
        # nobody writes a 12 g sachet as 12000mg
        options = [f"{number(value)}mg"] if value <= 2000 else []
        if value >= 1:
            options.append(f"{number(value / 1000)}g")
        if value < 1:
            options += [f"{number(value * 1000)}μg", f"{number(value * 1000)}ug",
                        f"{number(value * 1000)}mcg"]
        if value >= 1000 and value % 1000 == 0:
            options.append(f"{number(value / 1000)}克")
        text = rng.choice(options)
        return text.upper() if rng.random() < 0.1 else text
    if unit == "ml":
        options = [f"{number(value)}ml", f"{number(value)}mL", f"{number(value)}ML",
                   f"{number(value)}毫升"]
        if value >= 100:
            options.append(f"{number(value / 1000)}L")
        return rng.choice(options)
    options = [f"{number(value)}IU", f"{number(value)}U", f"{number(value)}单位"]
    if value >= 10000:
        options += [f"{number(value / 10000)}万U", f"{number(value / 10000)}万IU",
                    f"{number(value / 10000)}万单位"]
    return rng.choice(options)


def unit_for(generic: str) -> str:
    for suffix, unit in (("胶囊", "粒"), ("颗粒", "袋"), ("散", "袋"), ("口服液", "支"),
                         ("合剂", "瓶"), ("注射液", "支"), ("注射用", "支"), ("栓", "枚"),
                         ("丸", "丸"), ("糖浆", "瓶"), ("膏", "瓶"), ("凝胶", "支"),
                         ("贴", "贴"), ("滴眼液", "支")):
        if suffix in generic:
            return unit
    return "片"


def dose_phrase(dose: str, unit: str, rng: random.Random) -> str:
    """The strength with the words around it (每片含0.25g, 每袋装15g, 0.25g/片)."""
    roll = rng.random()
    if roll < 0.5:
        return dose
    verb = {"片": "含", "粒": "装", "袋": "装", "支": "装", "丸": "重", "瓶": "装", "枚": "含",
            "贴": "含"}[unit]
    if roll < 0.8:
        return f"每{unit}{rng.choice((verb, '含'))}{dose}"
    return f"{dose}/{unit}"


def divisors(n: int) -> list[int]:
    return [d for d in range(2, n) if n % d == 0]


def packaging(count: int, unit: str, dose: str, rng: random.Random) -> str:
    """A packaging expression that multiplies out to ``count`` dosage units."""
    inner = divisors(count)
    styles: list[Callable[[], str]] = [
        lambda: f"{count}{unit}/盒",
        lambda: f"{dose}*{count}{unit}",
        lambda: f"{dose}×{count}{unit}/盒",
        lambda: f"{count}{rng.choice(('s', 'S', unit))}",
        lambda: f"x{count}",
        lambda: f"每盒{count}{unit}",
        lambda: f"{dose}*{count}",
    ]
    if inner:
        a = rng.choice(inner)
        b = count // a
        middle = rng.choice([m for m in ("板", "袋", "排") if m != unit])
        styles += [
            lambda: f"{a}{unit}/{middle}*{b}{middle}/盒",
            lambda: f"{a}{unit}/板*{b}板/袋*1袋/盒",
            lambda: f"{dose}*{a}{unit}*{b}{middle}",
            lambda: f"{a}{unit}×{b}{middle}",
        ]
        b_inner = divisors(b)
        if b_inner:
            c = rng.choice(b_inner)
            styles.append(lambda: f"{a}{unit}/板*{c}板/袋*{b // c}袋/盒")
    return rng.choice(styles)()


def specification(t: Truth, rng: random.Random) -> tuple[str, str, list[str]]:
    """(specification, text appended to the name, styles) for a row."""
    unit = unit_for(t.generic)
    dose = spell_dose(t.dose_value, t.dose_unit, rng)
    styles = [f"dose {dose}"]
    if t.dose_unit == "ml" and unit in ("支", "瓶") and rng.random() < 0.5:
        pack = f"{dose}*{t.count}{unit}"
        styles.append(f"pack {pack!r}")
        return pack, "", styles
    pack = packaging(t.count, unit, dose, rng)
    styles.append(f"pack {pack!r}")
    roll = rng.random()
    if dose in pack:
        spec = pack
    elif roll < 0.2:
        styles.append("strength in name")
        return pack, dose, styles
    elif roll < 0.6:
        spec = f"{dose_phrase(dose, unit, rng)}{rng.choice((' ', '*', ' ', ','))}{pack}"
    else:
        spec = f"{dose}{rng.choice(('*', ' ', '×'))}{pack}" if not pack.startswith("x") \
            else f"{dose}{pack}"
    return spec, "", styles


def strip_region_and_type(name: str) -> str:
    short = name
    for p in PROVINCES:
        if short.startswith(p):
            short = short[len(p):].lstrip("省市")
            break
    for word in COMPANY_TYPES:
        short = short.replace(word, "")
    return short or name


def abbreviated_maker(name: str, rng: random.Random) -> tuple[str, str]:
    """(maker, style): the name as a dictionary abbreviates it."""
    short = strip_region_and_type(name)
    roll = rng.random()
    if roll < 0.4:
        bare = short
        for word in TRADE_WORDS:
            if bare.endswith(word) and len(bare) - len(word) >= 2:
                bare = bare[: -len(word)]
                break
        return bare, "maker abbreviated to its core"
    if roll < 0.7:
        return short, "maker without province and company type"
    if roll < 0.85:
        # the company type kept, the province dropped: 扬子江药业集团有限公司
        for p in PROVINCES:
            if name.startswith(p) and len(name) > len(p) + 4:
                return name[len(p):].lstrip("省市"), "maker without province"
        return short, "maker without province and company type"
    # the first characters only, as a short code in the dictionary: 扬子江药业 → 扬子江
    cut = short[: max(2, min(len(short), rng.randint(2, 4)))]
    return cut, "maker prefix"


def garbled_maker(t: Truth, rng: random.Random) -> tuple[str, str]:
    """(maker, style): the name cut or rotated as the published catalog's PDF cells are."""
    if t.maker_cell and t.maker_cell != t.maker and not PACKAGING_WORDS.search(t.maker_cell) \
            and rng.random() < 0.5:
        return t.maker_cell, "maker cell as published"
    name = t.maker
    roll = rng.random()
    if roll < 0.35:
        k = rng.randint(1, 4)
        return name[k:], "maker cut at the start"
    if roll < 0.7:
        k = rng.randint(1, 4)
        return name[:-k], "maker cut at the end"
    at = name.find("有限")
    if at <= 0:
        at = rng.randint(2, len(name) - 2)
    rotated = name[at:] + name[:at]
    if rng.random() < 0.5:
        rotated = rotated[: -rng.randint(1, 2)]
    return rotated, "maker rotated"


def maker_form(t: Truth, rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.2:
        return t.maker, "maker full"
    if roll < 0.7:
        return abbreviated_maker(t.maker, rng)
    return garbled_maker(t, rng)


def item_name(t: Truth, rng: random.Random) -> tuple[str, list[str]]:
    name, styles = t.generic, []
    if rng.random() < 0.1 and name.startswith(SALTS) and len(name) > 5:
        name = name[next(len(s) for s in SALTS if name.startswith(s)):]
        styles.append("salt dropped")
    if rng.random() < 0.08 and name.endswith(("颗粒", "胶囊", "糖浆")):
        name += "剂"
        styles.append("form with 剂")
    roll = rng.random()
    if roll < 0.2:
        marker = rng.choice(PREFIX_MARKERS)
        name = marker + name
        styles.append(f"marker {marker}")
    elif roll < 0.45:
        marker = rng.choice(SUFFIX_MARKERS)
        name = name + marker
        styles.append(f"marker {marker}")
    elif roll < 0.55:
        name = rng.choice(PREFIX_MARKERS) + name + rng.choice(SUFFIX_MARKERS)
        styles.append("markers both sides")
    return name, styles


def approval_form(approval: str, rng: random.Random) -> str:
    rest = approval.removeprefix("国药准字")
    return rng.choice((approval, rest, f"国药准字 {rest}", f"国药准字{rest.lower()}",
                       f"国药准字:{rest}", f"{approval} ",
                       "国药准字" + rest.translate(str.maketrans(
                           "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                           "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ"))))


def standard_form(standard: str, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return standard
    junk = rng.choice(STANDARD_JUNK)
    return f" {standard}{junk}" if rng.random() < 0.2 else f"{standard}{junk}"


def evidence_for(t: Truth, rng: random.Random) -> str:
    roll, edge, kind = rng.random(), 0.0, "name"
    for candidate, share in EVIDENCE_SHARE:
        edge += share
        if roll < edge:
            kind = candidate
            break
    if kind == "bwm" and not t.standard:
        kind = "approval"
    if kind == "approval" and not t.approval:
        kind = "name"
    return kind


def make_item(n: int, t: Truth, rng: random.Random) -> dict[str, str]:
    evidence = evidence_for(t, rng)
    name, styles = item_name(t, rng)
    spec, in_name, spec_styles = specification(t, rng)
    if in_name:
        name = name + in_name if not name.endswith(SUFFIX_MARKERS) else \
            name.replace(t.generic, t.generic + in_name, 1)
    maker, maker_style = maker_form(t, rng)
    if evidence != "name" and rng.random() < 0.15:
        maker, maker_style = "", "no maker"
    return {
        "item_code": f"YP{n:06d}",
        "item_name": name,
        "specification": spec,
        "manufacturer": maker,
        "approval_no": approval_form(t.approval, rng) if evidence == "approval" else "",
        "standard_code": standard_form(t.standard, rng) if evidence == "bwm" else "",
        "expected_national_code": t.code,
        "evidence": evidence,
        "styles": "; ".join(styles + spec_styles + [maker_style]),
    }


def half_of(code: str) -> int:
    return zlib.crc32(code.encode()) % 2


def generate(truths: list[Truth], seed: int, size: int, half: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    pool = [t for t in truths if half_of(t.code) == half]
    chosen = rng.sample(pool, min(size, len(pool)))
    return [make_item(n, t, rng) for n, t in enumerate(chosen, start=1)]


def render(items: list[dict[str, str]]) -> str:
    from io import StringIO

    out = StringIO()
    w = csv.DictWriter(out, fieldnames=list(items[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(items)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    truths = read_truths(CATALOG)
    status = 0
    for file, seed, size, half in SETS:
        items = generate(truths, seed, size, half)
        text = render(items)
        path = HERE / file
        if args.check:
            if path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from what the generator writes", file=sys.stderr)
                status = 1
            continue
        path.write_text(text, encoding="utf-8")
        kinds = collections.Counter(item["evidence"] for item in items)
        print(f"{size} items, seed {seed} ({len(truths)} identifiable rows) → {path.name}; "
              f"{dict(kinds)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
