"""Generate hospital_items.csv: hospital drug-dictionary items made from real catalog rows.

Run from the repository root: ``python tests/data/mappings/make_testset.py``.
Deterministic (fixed seed). Each item is written the way Chinese hospital
dictionaries write drugs: brand names or the maker in brackets, the strength in
the name, tags such as 【集采】, salts left out, pinyin-IME homophones, strengths
as "20mg*7片" / "0.02g×7s", short maker names ("扬子江", "葵花药业"), and only
sometimes the 批准文号 or 本位码. The expected national code is the catalog row
the item was made from.

Only rows a pharmacist could identify from what the item says are used: the
generic name, strength, maker (enterprise segment) and pack count must single
the row out in the catalog; rows that differ only by packaging material are
left out, since no matcher could tell them apart.
"""

from __future__ import annotations

import collections
import csv
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
CATALOG = HERE / "nhsa_drug_catalog_sample.csv"
OUT = HERE / "hospital_items.csv"
SEED = 20240601
N_WESTERN = 110
N_PATENT = 150

DOSE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|g|ml|毫升|克|μg|万U)", re.IGNORECASE)
FRAGMENTS = ("有限", "限公司", "份有限", "公司", "责任", "司", "股", "份", "集团")
PACKAGING = re.compile(r"复合膜|铝|包装|瓶|PVC|硬片|聚|\d|装|袋|/")
SALTS = ("枸橼酸", "盐酸", "醋酸", "硝酸", "磷酸", "马来酸", "甲磺酸", "乳酸", "硫酸")
HOMOPHONES = {"酯": "脂", "磺": "黄", "唑": "坐", "嗪": "秦", "醛": "荃", "碱": "减",
              "栓": "拴", "颗": "棵", "喘": "踹", "咽": "烟", "宫": "官", "痛": "通"}
TAGS = ("【集采】", "[甲]", "(基)", "【国采】", "(乙)")
PROVINCES = ("北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏",
             "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南",
             "四川", "贵州", "云南", "陕西", "甘肃", "青海", "内蒙古", "广西", "宁夏", "新疆")
LEGAL = ("股份有限公司", "有限责任公司", "有限公司", "集团", "股份")


def clean_maker(name: str) -> bool:
    if not name or name.startswith(FRAGMENTS) or PACKAGING.search(name):
        return False
    return name.endswith(("公司", "厂")) and name.count("公司") <= 1 and len(name) >= 6


def dose_of(row: dict[str, str]) -> str | None:
    for col in ("规格", "剂型", "包装规格"):
        m = DOSE.search(row[col])
        if m:
            unit = {"毫升": "ml", "克": "g"}.get(m.group(2), m.group(2))
            return f"{m.group(1)}{unit}"
    return None


def mg(dose: str) -> str:
    m = DOSE.fullmatch(dose)
    assert m is not None
    value, unit = float(m.group(1)), m.group(2).lower()
    scale = {"g": 1000.0, "mg": 1.0, "μg": 0.001}.get(unit)
    return f"{value * scale:g}mg" if scale else dose


def count_of(row: dict[str, str]) -> int | None:
    q = row["最小包装数量"].strip()
    return int(q) if q.isdigit() and 0 < int(q) <= 500 else None


def unit_for(generic: str) -> str:
    for suffix, unit in (("胶囊", "粒"), ("颗粒", "袋"), ("散", "袋"), ("口服液", "支"),
                         ("合剂", "瓶"), ("注射液", "支"), ("注射用", "支"), ("栓", "枚"),
                         ("丸", "丸"), ("糖浆", "瓶"), ("膏", "瓶"), ("凝胶", "支")):
        if suffix in generic:
            return unit
    return "片"


def short_maker(name: str, rng: random.Random) -> str:
    short = name
    for p in PROVINCES:
        if short.startswith(p):
            short = short[len(p):].lstrip("省市")
            break
    for legal in LEGAL:
        short = short.replace(legal, "")
    if rng.random() < 0.5:
        bare = re.sub(r"(制药厂|制药|药业|药厂|医药|生物)$", "", short)
        short = bare if len(bare) >= 2 else short
    if len(short) < 2 or re.fullmatch(r"(制药厂|制药|药业|药厂|医药|生物|中药厂)+", short):
        short = name  # "青海制药有限公司" has no shorter name than itself
        for legal in LEGAL:
            short = short.replace(legal, "")
    return short


def alt_dose(dose: str) -> str:
    """The same strength in the other unit, as some dictionaries write it (20mg → 0.02g)."""
    m = DOSE.fullmatch(dose)
    assert m is not None
    value, unit = float(m.group(1)), m.group(2)
    if unit == "mg" and value >= 10:
        return f"{value / 1000:g}g"
    if unit == "g" and value < 1:
        return f"{value * 1000:g}mg"
    return dose


def main() -> None:
    rows = list(csv.DictReader(CATALOG.open(encoding="utf-8-sig")))
    makers: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in rows:
        if clean_maker(r["药品生产企业"]):
            makers[r["医保药品编码"][-5:]][r["药品生产企业"]] += 1
    maker_of = {e: c.most_common(1)[0][0] for e, c in makers.items()}

    def key(r: dict[str, str]) -> tuple[str, str, str | None, int | None]:
        d = dose_of(r)
        return (r["药品通用名"], r["医保药品编码"][-5:], mg(d) if d else None, count_of(r))

    by_key: collections.Counter[tuple[str, str, str | None, int | None]] = collections.Counter()
    loose: dict[tuple[str, str], list[tuple[str | None, int | None]]] = collections.defaultdict(
        list)
    for r in rows:
        k = key(r)
        by_key[k] += 1
        loose[(k[0], k[1])].append((k[2], k[3]))

    def identifiable(r: dict[str, str]) -> bool:
        g, ent, d, n = key(r)
        if not g or ent not in maker_of or d is None or n is None:
            return False
        # another row of the same maker whose strength or count is unknown could be it
        same = [(d2, n2) for d2, n2 in loose[(g, ent)]
                if (d2 is None or d2 == d) and (n2 is None or n2 == n)]
        return len(same) == 1

    def needs_count(r: dict[str, str]) -> bool:
        g, ent, d, _ = key(r)
        return sum(1 for d2, _ in loose[(g, ent)] if d2 is None or d2 == d) > 1

    eligible = [r for r in rows if identifiable(r)]
    rng = random.Random(SEED)
    western = [r for r in eligible if r["医保药品编码"].startswith("X")]
    patent = [r for r in eligible if r["医保药品编码"].startswith("Z")]
    chosen = rng.sample(western, min(N_WESTERN, len(western))) + rng.sample(
        patent, min(N_PATENT, len(patent)))

    out = []
    for n, r in enumerate(chosen, start=1):
        generic = r["药品通用名"]
        dose = dose_of(r)
        assert dose is not None
        count = count_of(r)
        unit = unit_for(generic)
        maker = maker_of[r["医保药品编码"][-5:]]
        brand = r["产品名称"] if re.fullmatch(r"[\u4e00-\u9fff]{2,6}", r["产品名称"]) and \
            not r["产品名称"].endswith(("剂", "丸", "片", "囊", "粒")) and r["产品名称"] != "无" \
            else ""
        styles = []

        name = generic
        roll = rng.random()
        if roll < 0.12 and name.startswith(SALTS):
            name = name[next(len(s) for s in SALTS if name.startswith(s)):]
            styles.append("salt dropped")
        elif roll < 0.24:
            chars = [c for c in name if c in HOMOPHONES]
            if chars:
                c = rng.choice(chars)
                name = name.replace(c, HOMOPHONES[c], 1)
                styles.append(f"homophone {c}→{HOMOPHONES[c]}")
        if rng.random() < 0.1 and name.endswith(("颗粒", "胶囊", "糖浆")):
            name += "剂"
            styles.append("form with 剂")
        elif rng.random() < 0.1 and name.startswith("小儿") and len(name) > 4:
            name = f"{name[2:]}(小儿)"
            styles.append("小儿 moved into brackets")
        roll = rng.random()
        spec_in_name = False
        if brand and roll < 0.6:
            o, c = rng.choice((("(", ")"), ("（", "）"), ("[", "]")))
            name = f"{name}{o}{brand}{c}"
            styles.append("brand in brackets")
        elif roll < 0.25:
            name = f"{name}({short_maker(maker, rng)})"
            styles.append("maker in brackets")
        elif roll < 0.5:
            name = f"{name}{rng.choice((dose, alt_dose(dose)))}"
            spec_in_name = True
            styles.append("strength in name")
        if rng.random() < 0.15:
            name = rng.choice(TAGS) + name
            styles.append("tag")

        roll = rng.random()
        d = alt_dose(dose) if rng.random() < 0.25 else dose
        if spec_in_name and roll < 0.3:
            spec = f"{count}{unit}/盒"
        elif roll < 0.3:
            spec = f"{d}*{count}{unit}"
        elif roll < 0.5:
            spec = f"{d}×{count}{rng.choice(('s', unit))}"
        elif roll < 0.65:
            spec = f"{d}/{unit} {count}{unit}/盒"
        elif roll < 0.8 or needs_count(r):
            spec = f"{d}x{count}"
        else:
            spec = d  # the maker has one pack of this strength: the count is left out
        styles.append(f"spec {spec!r}")

        roll = rng.random()
        approval = r["批准文号"] if r["批准文号"].startswith("国药准字") else ""
        standard = re.sub(r"[甲乙丙]", "", r["药品本位码"])
        standard = standard if re.fullmatch(r"\d{14}", standard) else ""
        if roll < 0.35:
            manufacturer = maker
        elif roll < 0.85:
            manufacturer = short_maker(maker, rng)
            styles.append("short maker")
        else:
            manufacturer = ""
            styles.append("no maker")
        with_approval = approval and (rng.random() < 0.3 or (not manufacturer and not standard))
        with_standard = standard and rng.random() < 0.15
        if not manufacturer and not with_approval and not with_standard:
            manufacturer = short_maker(maker, rng)  # nothing would name the maker otherwise
            styles[-1] = "short maker"
        if with_approval:
            approval = rng.choice((approval, approval.replace("国药准字", ""),
                                   approval.replace("国药准字", "国药准字 ")))
            styles.append("approval no")
        if with_standard:
            styles.append("本位码")
        out.append({
            "item_code": f"YP{n:06d}",
            "item_name": name,
            "specification": spec,
            "manufacturer": manufacturer,
            "approval_no": approval if with_approval else "",
            "standard_code": standard if with_standard else "",
            "expected_national_code": r["医保药品编码"],
            "styles": "; ".join(styles),
        })
    with OUT.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    print(f"{len(out)} items ({len(eligible)} identifiable rows of {len(rows)}) → {OUT}")


if __name__ == "__main__":
    main()
