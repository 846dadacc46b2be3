"""Match suggestions (对码建议) for a hospital item that has no crosswalk entry.

The national catalog is indexed once: products are grouped by normalised
generic name, groups are found through character and pinyin bigrams (so an
IME homophone such as 脂 for 酯 still finds the group), and inside a group the
manufacturers are compared once per distinct name rather than once per code.
That keeps one suggestion to a few milliseconds against 300,000 codes.

A suggestion is a proposal with its reasons; only a person creates the
crosswalk entry.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz import fuzz, process

from codes.catalog import ENTRY_FIELDS, CatalogEntry
from codes.standard_code import split_standard_code
from mappings._bulk import paused_gc
from mappings.makers import MakerMatch, MakerMatchKind, compare_makers, maker_core
from mappings.normalize import (
    SpecKey,
    dosage_form_of,
    is_clean_manufacturer,
    manufacturer_core,
    normalize_text,
    parse_item_name,
    parse_spec,
    pinyin_key,
)

__all__ = [
    "HospitalHabits",
    "HospitalItem",
    "Suggestion",
    "SuggestionIndex",
    "build_index",
    "item_approval_key",
    "item_standard_code",
    "learn_habits",
    "read_catalog_entries",
]


@dataclass(frozen=True, slots=True)
class HospitalItem:
    """An unmapped hospital item as the HIS describes it."""

    code: str
    name: str
    specification: str = ""
    manufacturer: str = ""
    approval_no: str = ""  # 批准文号
    standard_code: str = ""  # 药品本位码


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed national code, its score (0–1) and why it was proposed."""

    national_code: str
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HospitalHabits:
    """What a hospital's accepted mappings say about the products it buys.

    A hospital buys most of its drugs from a few makers (often the 集采 winners) in
    the packs its pharmacy stocks; when an item leaves the maker or the pack unclear,
    those are the likelier codes. Build with :func:`learn_habits`.
    """

    makers: Mapping[str, int]  # enterprise segment → mappings accepted with it
    packs: Mapping[tuple[str, int], int]  # (enterprise segment, pack quantity) → mappings


def learn_habits(accepted: Iterable[CatalogEntry]) -> HospitalHabits:
    """Habits from the catalog entries of a hospital's accepted mappings (its crosswalk)."""
    makers: Counter[str] = Counter()
    packs: Counter[tuple[str, int]] = Counter()
    for entry in accepted:
        enterprise = entry.code[-5:]
        makers[enterprise] += 1
        count = _catalog_count(entry)
        if count is not None:
            packs[(enterprise, count)] += 1
    return HospitalHabits(dict(makers), dict(packs))


_NO_HABITS = HospitalHabits({}, {})


@dataclass(slots=True)
class _Group:
    """All products sharing one normalised generic name."""

    name: str
    form: str
    pinyin: str
    members: list[int] = field(default_factory=list)
    by_core: dict[str, list[int]] = field(default_factory=dict)
    cores: list[str] = field(default_factory=list)
    by_dose: dict[str, list[int]] = field(default_factory=dict)


_APPROVAL_PREFIX = re.compile(r"^(国药准字|进口药品注册证号|医药产品注册证号|注册证号)")


def _approval_key(text: str) -> str:
    """"国药准字H20051055" for "H20051055", "国药准字 h20051055", full-width forms …"""
    key = text.replace(" ", "")
    if not key.isupper():
        key = key.upper()
    if key.startswith("国药准字") and key[4:].isascii():
        return key  # the catalog's own string: no copy per row
    rest = _APPROVAL_PREFIX.sub("", normalize_text(key).upper())
    return "国药准字" + rest if re.fullmatch(r"[A-Z]\d{8}", rest) else rest


_NO_MAKER = MakerMatch(0.0, MakerMatchKind.DIFFERENT)
_APPROVAL_NUMBER = re.compile(r"([A-Z]{1,2})(\d{8})")
_STANDARD_DIGITS = re.compile(r"(?<!\d)(86\d{12})(?!\d)")


def item_approval_key(text: str) -> str:
    """The catalog's key for an approval number as a dictionary writes it.

    "国药准字:H20051055", "h20051055 ", "国药准字 Ｈ２００５１０５５" → "国药准字H20051055".
    """
    normal = normalize_text(text).upper()
    m = _APPROVAL_NUMBER.search(normal)
    return "国药准字" + m.group(1) + m.group(2) if m else _approval_key(text)


def item_standard_code(text: str) -> str:
    """The 14-digit 本位码 in what a dictionary wrote ("86900166000077-1", "…#", "…甲"), or ""."""
    m = _STANDARD_DIGITS.search(normalize_text(text))
    return m.group(1) if m else ""


def _add(index: dict[str, int | list[int]], key: str, i: int) -> None:
    # one int per key: a list per row would cost 300,000 lists on a full catalog
    found = index.get(key)
    if found is None:
        index[key] = i
    elif isinstance(found, int):
        index[key] = [found, i]
    else:
        found.append(i)


def _get(index: dict[str, int | list[int]], key: str) -> list[int]:
    found = index.get(key)
    if found is None:
        return []
    return [found] if isinstance(found, int) else found


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} if len(text) > 1 else {text}


def _pinyin_bigrams(key: str) -> set[str]:
    syl = key.split()
    return {f"{a} {b}" for a, b in itertools.pairwise(syl)} if len(syl) > 1 else set(syl)


_BRAND = re.compile(r"[\u4e00-\u9fff]{2,8}")


def _brand_of(entry: CatalogEntry) -> str:
    b = normalize_text(entry.product_name)
    if not _BRAND.fullmatch(b) or dosage_form_of(b) or b.endswith(("剂", "丸", "片", "囊", "粒")):
        return ""
    return b


def _catalog_spec(entry: CatalogEntry) -> SpecKey:
    # PDF extraction shifts the specification into the next or previous column.
    spec = parse_spec(entry.specification)
    if not spec.doses:
        for other in (entry.dosage_form, entry.packaging):
            alt = parse_spec(other)
            if alt.doses:
                spec = SpecKey(alt.doses, spec.count)
                break
    return spec


def _catalog_count(entry: CatalogEntry) -> int | None:
    q = entry.min_pack_quantity.strip()
    if q.isdigit() and 0 < int(q) <= 1000:
        return int(q)
    return parse_spec(entry.packaging).count


class SuggestionIndex:
    """The national catalog prepared for suggestions; build once per catalog version."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._entries: list[CatalogEntry] = []
        self._spec: list[SpecKey] = []
        self._count: list[int | None] = []
        self._core: list[str] = []
        self._alt_core: list[str] = []
        # the core of the row's own cell even when cut or glued: dictionaries copy it
        self._raw_core: list[str] = []
        self._clean_maker = bytearray()  # 1 where the manufacturer cell is whole
        self._brand: list[str] = []
        self._group_of: list[int] = []
        self._groups: list[_Group] = []
        self._group_by_name: dict[str, int] = {}
        self._by_bigram: dict[str, list[int]] = {}
        self._by_pinyin: dict[str, list[int]] = {}
        self._by_standard: dict[str, int | list[int]] = {}
        self._by_approval: dict[str, int | list[int]] = {}
        self._by_brand: dict[str, list[int]] = {}
        with paused_gc():
            self._build(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> Sequence[CatalogEntry]:
        """The catalog entries in the index, in load order."""
        return self._entries

    def _build(self, entries: Iterable[CatalogEntry]) -> None:
        # Catalog values repeat a lot (generic names, makers, forms): normalise each
        # distinct value once and share the resulting strings between rows.
        group_ids: dict[str, int] = {}
        brands: dict[str, str] = {}
        makers: dict[str, tuple[str, bool]] = {}
        specs: dict[tuple[str, str, str], SpecKey] = {}
        raw_core: list[str] = []
        enterprise_cores: dict[str, Counter[str]] = {}
        counts: dict[tuple[str, str], int | None] = {}
        # local names: this loop runs once per catalog row
        add_entry, add_group, add_spec = self._entries.append, self._group_of.append, \
            self._spec.append
        add_count, add_brand, add_core = self._count.append, self._brand.append, \
            raw_core.append
        groups, by_standard, by_approval = self._groups, self._by_standard, self._by_approval
        for i, entry in enumerate(entries):
            add_entry(entry)
            raw_name = entry.generic_name or entry.name
            g = group_ids.get(raw_name)
            if g is None:
                g = group_ids[raw_name] = self._group_for(raw_name)
            add_group(g)
            groups[g].members.append(i)
            spec_cells = (entry.specification, entry.dosage_form, entry.packaging)
            spec = specs.get(spec_cells)
            if spec is None:
                spec = specs[spec_cells] = _catalog_spec(entry)
            add_spec(spec)
            count_cells = (entry.min_pack_quantity, entry.packaging)
            if count_cells in counts:
                add_count(counts[count_cells])
            else:
                add_count(counts.setdefault(count_cells, _catalog_count(entry)))
            brand = brands.get(entry.product_name)
            if brand is None:
                brand = brands[entry.product_name] = _brand_of(entry)
            add_brand(brand)
            if brand:
                self._by_brand.setdefault(brand, []).append(i)
            maker = makers.get(entry.manufacturer)
            if maker is None:
                maker = makers[entry.manufacturer] = (
                    manufacturer_core(entry.manufacturer),
                    is_clean_manufacturer(entry.manufacturer))
            core, clean = maker
            add_core(core if clean else "")
            self._clean_maker.append(clean)
            if clean:
                counter = enterprise_cores.get(entry.code[-5:])
                if counter is None:
                    counter = enterprise_cores[entry.code[-5:]] = Counter()
                counter[core] += 1
            standard = entry.standard_code
            if len(standard) == 14:
                # PDF extraction repeats a 本位码 on neighbouring rows
                if standard not in by_standard:
                    by_standard[standard] = i
                else:
                    _add(by_standard, standard, i)
            if entry.approval_no:
                key = _approval_key(entry.approval_no)
                if key not in by_approval:
                    by_approval[key] = i
                else:
                    _add(by_approval, key, i)
        # A cut or glued manufacturer cell takes the name its enterprise segment has
        # elsewhere in the catalog (the segment is the same company on every code).
        best = {e: c.most_common(1)[0][0] for e, c in enterprise_cores.items()}
        for i, entry in enumerate(self._entries):
            alt = best.get(entry.code[-5:], "")
            core = raw_core[i] or alt or makers[entry.manufacturer][0]
            self._core.append(core)
            # shifted rows carry a clean name of the neighbouring row: keep both
            self._alt_core.append(alt if alt != core else "")
            own = makers[entry.manufacturer][0]
            self._raw_core.append(own if own not in (core, alt) else "")
        for g, group in enumerate(self._groups):
            for i in group.members:
                group.by_core.setdefault(self._core[i], []).append(i)
                if self._alt_core[i]:
                    group.by_core.setdefault(self._alt_core[i], []).append(i)
                if self._raw_core[i]:
                    group.by_core.setdefault(self._raw_core[i], []).append(i)
                for dose in self._spec[i].doses:
                    group.by_dose.setdefault(dose, []).append(i)
            group.cores = list(group.by_core)
            for bg in _bigrams(group.name):
                self._by_bigram.setdefault(bg, []).append(g)
            for bg in _pinyin_bigrams(group.pinyin):
                self._by_pinyin.setdefault(bg, []).append(g)

    def _group_for(self, raw_name: str) -> int:
        name = normalize_text(raw_name)
        g = self._group_by_name.get(name)
        if g is None:
            g = len(self._groups)
            self._group_by_name[name] = g
            self._groups.append(_Group(name=name, form=dosage_form_of(name),
                                       pinyin=pinyin_key(name)))
        return g

    # --- query -----------------------------------------------------------------------

    def _candidate_groups(self, generic: str, extra: frozenset[int]) -> list[tuple[int, float]]:
        votes: Counter[int] = Counter()
        limit = max(50, len(self._groups) // 20)  # skip bigrams as common as "胶囊"
        for bg in _bigrams(generic):
            found = self._by_bigram.get(bg, ())
            if len(found) <= limit:
                votes.update(found)
        py = pinyin_key(generic)
        for bg in _pinyin_bigrams(py):
            found = self._by_pinyin.get(bg, ())
            if len(found) <= limit:
                votes.update(found)
        if not votes:  # only common bigrams: fall back to them
            for bg in _bigrams(generic):
                votes.update(self._by_bigram.get(bg, ()))
        candidates = {g for g, _ in votes.most_common(60)} | extra
        scored = []
        for g in candidates:
            group = self._groups[g]
            score = max(
                fuzz.ratio(generic, group.name),
                fuzz.ratio(py, group.pinyin) * 0.97,
                fuzz.partial_ratio(generic, group.name) * 0.9
                if min(len(generic), len(group.name)) >= 3 else 0.0,
            )
            scored.append((g, float(score)))
        scored.sort(key=lambda x: -x[1])
        return [x for x in scored[:8] if x[1] >= 65 or x[0] in extra]

    def _products(self, group: _Group, query: _Query) -> dict[int, MakerMatch]:
        """Members worth scoring, with how their manufacturer compares."""
        out: dict[int, MakerMatch] = {}
        mcore, spec = query.mcore, query.spec
        if mcore:
            hits = process.extract(mcore, group.cores, scorer=fuzz.partial_ratio,
                                   limit=25, score_cutoff=50)
            scored = sorted(((query.maker_match(c), c) for c, _, _ in hits),
                            key=lambda x: -x[0].score)[:10]
            for match, core in scored:
                for i in group.by_core[core]:
                    if i not in out or out[i].score < match.score:
                        out[i] = match
        if len(out) < 5:
            pool: list[int] = []
            for dose in spec.doses:
                pool.extend(group.by_dose.get(dose, ()))
            for i in (pool or group.members)[:400]:
                if i not in out:
                    out[i] = self._manufacturer(query, i)
        return out

    def _manufacturer(self, query: _Query, i: int) -> MakerMatch:
        best = _NO_MAKER
        if query.mcore:
            for core in (self._core[i], self._alt_core[i], self._raw_core[i]):
                if core:
                    match = query.maker_match(core)
                    if match.score > best.score:
                        best = match
        return best

    def suggest(self, item: HospitalItem, *, limit: int = 5,
                habits: HospitalHabits | None = None) -> list[Suggestion]:
        """Rank national codes for a hospital item, best first.

        Args:
            item: the hospital item (name required; the other fields sharpen the match).
            limit: how many suggestions to return.
            habits: the hospital's makers and packs from its accepted mappings
                (:func:`learn_habits`); they break ties, they never outweigh what the
                item itself says.

        Returns:
            Up to ``limit`` suggestions, each with its reasons; empty when nothing
            in the catalog resembles the item.
        """
        query = self._query(item, habits or _NO_HABITS)
        ranked: list[tuple[float, int, _Group, float, MakerMatch]] = []
        for g, name_score in self._candidate_groups(query.generic, query.extra_groups):
            group = self._groups[g]
            products = self._products(group, query)
            for i in query.evidence_rows:
                if self._group_of[i] == g and i not in products:
                    products[i] = self._manufacturer(query, i)
            for i, maker in products.items():
                total, _ = self._score(i, group, name_score, query, maker, explain=False)
                ranked.append((total, i, group, name_score, maker))
        ranked.sort(key=lambda x: (-x[0], self._entries[x[1]].code))
        attainable = query.attainable()
        out = []
        for total, i, group, name_score, maker in ranked[:limit]:
            # reasons only for what is shown: hundreds of candidates are scored per item
            _, reasons = self._score(i, group, name_score, query, maker, explain=True)
            score = round(max(min(total / attainable, 1.0), 0.0), 3)
            out.append(Suggestion(self._entries[i].code, score, reasons))
        return out

    def _query(self, item: HospitalItem, habits: HospitalHabits) -> _Query:
        parsed = parse_item_name(item.name)
        generic = parsed.generic
        spec = parse_spec(item.specification) if item.specification.strip() else SpecKey(
            frozenset(), None)
        inline = parse_spec(parsed.spec)
        spec = SpecKey(spec.doses or inline.doses,
                       spec.count if spec.count is not None else inline.count)
        standard = item_standard_code(item.standard_code) if item.standard_code else ""
        exact = frozenset(_get(self._by_standard, standard)) if standard else frozenset()
        approval = item_approval_key(item.approval_no) if item.approval_no.strip() else ""
        by_approval = frozenset(_get(self._by_approval, approval)) if approval else frozenset()
        brands = {normalize_text(x) for x in parsed.extras}
        if _BRAND.fullmatch(generic):
            brands.add(generic)
        by_brand = frozenset(i for b in brands for i in self._by_brand.get(b, ()))
        # a 本位码 or an approval number names the maker even when the item does not:
        # its enterprise segment is the last five characters of the maker's codes
        enterprises = {standard[3:8]} if standard else set()
        enterprises.update(self._entries[i].code[-5:] for i in exact | by_approval)
        return _Query(
            generic=generic, form=dosage_form_of(generic), spec=spec,
            maker_text=item.manufacturer.strip(), mcore=maker_core(item.manufacturer),
            exact=exact, by_approval=by_approval, by_brand=by_brand,
            enterprises=frozenset(enterprises), habits=habits,
            extra_groups=frozenset(self._group_of[i] for i in exact | by_approval | by_brand))

    def _score(
        self, i: int, group: _Group, name_score: float, query: _Query, maker: MakerMatch,
        *, explain: bool,
    ) -> tuple[float, tuple[str, ...]]:
        """The row's points and, when ``explain``, the reasons behind them."""
        parts = (
            _form_points(query.form, group.form, explain),
            _dose_points(query.spec.doses, self._spec[i].doses, explain),
            _pack_points(query.spec.count, self._count[i], explain),
            _maker_points(query, maker, self._maker_shown(i) if explain else None),
            self._evidence_points(i, query, explain),
            self._habit_points(i, query.habits, explain),
        )
        total = 0.40 * name_score + sum(points for points, _ in parts)
        if not explain:
            return total, ()
        entry = self._entries[i]
        reasons = [f"通用名 {entry.generic_name or entry.name} 相似度 {name_score:.0f}"]
        return total, tuple(reasons + [reason for _, reason in parts if reason])

    def _maker_shown(self, i: int) -> str:
        """The row's manufacturer for a reason; a cut cell with the name it stands for."""
        cell = self._entries[i].manufacturer
        if self._clean_maker[i]:
            return cell
        return f"{self._core[i]} (目录厂家栏: {cell})" if cell else self._core[i]

    def _habit_points(self, i: int, habits: HospitalHabits, explain: bool) -> tuple[float, str]:
        if not habits.makers:
            return 0.0, ""
        enterprise = self._entries[i].code[-5:]
        accepted = habits.makers.get(enterprise, 0)
        if not accepted:
            return 0.0, ""
        points, said = min(6.0, 2.0 + accepted), [f"本院已对码该厂家 {accepted} 条"]
        count = self._count[i]
        same_pack = habits.packs.get((enterprise, count), 0) if count is not None else 0
        if same_pack:
            points += 3.0
            said.append(f"本院常用该厂家包装 ({count})")
        return points, "; ".join(said) if explain else ""

    def _evidence_points(self, i: int, query: _Query, explain: bool) -> tuple[float, str]:
        entry = self._entries[i]
        points, said = 0.0, []
        if i in query.exact:
            points += 40
            said.append(f"本位码一致 ({entry.standard_code})")
        if i in query.by_approval:
            points += 20
            said.append(f"批准文号一致 ({entry.approval_no})")
        if query.enterprises and i not in query.exact and i not in query.by_approval \
                and entry.code[-5:] in query.enterprises:
            # another pack or strength of the same maker's product
            points += 15
            said.append(f"企业段一致 ({entry.code[-5:]}, 同厂家)")
        if i in query.by_brand:
            points += 8
            said.append(f"商品名 {self._brand[i]} 一致")
        return points, "; ".join(said) if explain else ""


@dataclass(frozen=True, slots=True)
class _Query:
    """A hospital item read once: the parts every candidate is compared with."""

    generic: str
    form: str
    spec: SpecKey
    maker_text: str
    mcore: str
    exact: frozenset[int]  # rows with the item's 本位码
    by_approval: frozenset[int]
    by_brand: frozenset[int]
    enterprises: frozenset[str]  # enterprise segments the 本位码 or approval number name
    extra_groups: frozenset[int]  # generic-name groups of those rows, whatever the name says
    habits: HospitalHabits
    # many rows share a manufacturer: each distinct one is compared once per item
    maker_memo: dict[str, MakerMatch] = field(default_factory=dict)

    def maker_match(self, catalog_core: str) -> MakerMatch:
        match = self.maker_memo.get(catalog_core)
        if match is None:
            match = self.maker_memo[catalog_core] = compare_makers(self.mcore, catalog_core)
        return match

    @property
    def evidence_rows(self) -> frozenset[int]:
        return self.exact | self.by_approval | self.by_brand

    def attainable(self) -> float:
        """The points a catalog row agreeing with everything the item says would get.

        The score shown is the share of these a suggestion reached, so two codes of
        one product differing by their pack do not both show 1.0.
        """
        points = 40.0 + (5.0 if self.form else 0.0) + (20.0 if self.spec.doses else 8.0)
        points += 12.0 if self.spec.count is not None else 0.0
        points += 25.0 if self.mcore else 0.0
        evidence = (40.0 if self.exact else 0.0) + (20.0 if self.by_approval else 0.0)
        points += evidence or (15.0 if self.enterprises else 0.0)
        return points + (8.0 if self.by_brand else 0.0)



# Each *_points function gives a row's points for one kind of evidence and, when asked
# to explain, the reason shown with the suggestion (formatting is skipped otherwise:
# hundreds of rows are scored for each item, five are shown).

def _form_points(form: str, catalog_form: str, explain: bool) -> tuple[float, str]:
    if not form or not catalog_form:
        return 0.0, ""
    if form == catalog_form:
        return 5.0, f"剂型 {form} 一致" if explain else ""
    return -10.0, f"剂型不同 {form}≠{catalog_form}" if explain else ""


def _dose_points(doses: frozenset[str], catalog_doses: frozenset[str],
                 explain: bool) -> tuple[float, str]:
    if not doses or not catalog_doses:
        return 8.0, ""
    if doses <= catalog_doses:
        return 20.0, f"规格 {'/'.join(sorted(doses))} 一致" if explain else ""
    if doses & catalog_doses:
        return 12.0, f"规格部分一致 {'/'.join(sorted(doses & catalog_doses))}" if explain else ""
    return -10.0, (f"规格不同 {'/'.join(sorted(doses))}≠{'/'.join(sorted(catalog_doses))}"
                   if explain else "")


def _pack_points(count: int | None, catalog_count: int | None,
                 explain: bool) -> tuple[float, str]:
    # the same product of the same maker comes in several packs, one code each:
    # the pack quantity is what tells those codes apart
    if count is None or catalog_count is None:
        return 0.0, ""
    if count == catalog_count:
        return 12.0, f"包装数量一致 ({count})" if explain else ""
    return -8.0, f"包装数量不同 ({count}≠{catalog_count})" if explain else ""


def _maker_points(query: _Query, maker: MakerMatch,
                  catalog_maker: str | None) -> tuple[float, str]:
    """Points for the manufacturer; the reason only when ``catalog_maker`` is given."""
    if not query.mcore:
        return 0.0, ""
    points = 0.25 * maker.score
    if catalog_maker is None:
        return points, ""
    if maker.kind is MakerMatchKind.SAME:
        return points, f"厂家一致: {catalog_maker}"
    if maker.kind is MakerMatchKind.ABBREVIATION:
        return points, f"厂家简称匹配: {query.maker_text} ({catalog_maker})"
    if maker.kind is MakerMatchKind.GARBLED:
        return points, f"厂家名残缺匹配: {query.maker_text} ≈ {catalog_maker}"
    if maker.kind is MakerMatchKind.SIMILAR:
        return points, f"厂家相近 {maker.score:.0f}: {catalog_maker}"
    return points, f"厂家不符 ({catalog_maker or '目录未写'})"


_CATALOG_COLUMNS = {
    "code": ("医保药品编码", "国家医保药品编码", "药品代码", "code"),
    "name": ("注册名称", "name"),
    "generic_name": ("药品通用名", "通用名", "generic_name"),
    "product_name": ("产品名称", "商品名", "product_name"),
    "dosage_form": ("剂型", "注册剂型", "dosage_form"),
    "specification": ("规格", "注册规格", "specification"),
    "packaging": ("包装规格", "包装材质", "packaging"),
    "min_pack_quantity": ("最小包装数量", "min_pack_quantity"),
    "min_pack_unit": ("最小包装单位", "min_pack_unit"),
    "manufacturer": ("药品生产企业", "生产企业", "manufacturer"),
    "approval_no": ("批准文号", "approval_no"),
    "standard_code": ("药品本位码", "本位码", "standard_code"),
}


# read_catalog_entries builds entries positionally, in codes' field order
if tuple(_CATALOG_COLUMNS) != ENTRY_FIELDS[: len(_CATALOG_COLUMNS)]:  # pragma: no cover
    raise ImportError("codes.catalog.CatalogEntry fields changed order; update _CATALOG_COLUMNS")


def read_catalog_entries(path: Path) -> Iterator[CatalogEntry]:
    """Stream a drug catalog CSV (published Chinese headers) as entries, for the index.

    A lean reader for loading a catalog at start-up: repeated values share one
    string, and rows are not repaired or reported as by ``codes.catalog_files``,
    which is the importer to use when a new catalog file is published.

    Raises:
        ValueError: the header has no national-code column.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        columns: dict[str, int] = {}
        for name, aliases in _CATALOG_COLUMNS.items():
            for alias in aliases:
                if alias in header:
                    columns[name] = header.index(alias)
                    break
        if "code" not in columns:
            raise ValueError(f"{path}: no national-code column (医保药品编码) in the header")
        shared: dict[str, str] = {"无": "", "/": "", "-": "", "—": ""}  # published "none"
        fields = list(_CATALOG_COLUMNS)
        width = max(columns.values()) + 1
        picks = [columns.get(name, width) for name in fields]  # width: the padding cell
        # one object per distinct value, except for values unique to a row
        repeated = [k for k, name in enumerate(fields)
                    if name not in ("code", "approval_no", "standard_code")]
        standard_at = fields.index("standard_code")
        share = shared.setdefault
        for row in reader:
            if len(row) <= width:
                row = row + [""] * (width + 1 - len(row))
            values = [row[i].strip() for i in picks]
            if not values[0]:
                continue
            for k in repeated:
                v = values[k]
                values[k] = share(v, v)
            standard = values[standard_at]
            if standard and not (len(standard) == 14 and standard.isdigit()):
                parts = split_standard_code(standard)
                values[standard_at] = parts[0] if parts else ""
            yield CatalogEntry(*values)


def build_index(entries: Iterable[CatalogEntry]) -> SuggestionIndex:
    """Prepare a national catalog for :meth:`SuggestionIndex.suggest`."""
    return SuggestionIndex(entries)
