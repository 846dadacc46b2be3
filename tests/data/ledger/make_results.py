"""Generate results_generated.csv: procurement results for three hospitals made from the
real national drug catalog sample (``tests/data/codes``, a copy of the shared data).

Run from the repository root: ``python tests/data/ledger/make_results.py``.
Deterministic (fixed seed). Western drugs (X codes) of the catalog are grouped by generic
name (the code's first ten characters); for each group drawn, the hospitals each sign an
agreement for one year with one or two of its products as winners. Agreed ratios lie in
the R1 band (50–80 %, SX 三(一)) and every agreed volume is last year's purchases × the
ratio exactly, so the set imports without warnings; tests change single rows to put them
on or across the band's edges. Winning prices and volumes are illustrative, not
published results.
"""

from __future__ import annotations

import collections
import csv
import random
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).parent
CATALOG = HERE.parent / "codes" / "nhsa_drug_catalog_sample.csv"
OUT = HERE / "results_generated.csv"
SEED = 20261204
GROUPS = 40
HOSPITALS = ("H36070200012", "H36070200023", "H36070300015")
RATIOS = ("0.50", "0.55", "0.60", "0.65", "0.70", "0.75", "0.80")
COLUMNS = ("hospital_id", "project", "batch", "generic_name", "national_code",
           "product_name", "winning_price", "supplier", "cycle_start", "cycle_end",
           "agreed_volume", "agreed_ratio", "category", "unit", "reported_demand",
           "last_year_purchases")


def main() -> None:
    """Write the results file."""
    rng = random.Random(SEED)
    groups: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    with CATALOG.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            code = row["医保药品编码"].strip()
            name = row["药品通用名"].strip()
            # cells cut or shifted by the PDF extraction: names with codes in them, or
            # too long to be one drug's, are left out
            if (code.startswith("X") and len(code) == 23 and 0 < len(name) <= 20
                    and "X" not in name):
                groups[code[:10]].append(row)
    drawn = rng.sample(sorted(groups), GROUPS)
    out = []
    for n, key in enumerate(drawn, start=1):
        products = groups[key]
        winners = rng.sample(products, min(len(products), rng.choice((1, 2))))
        price = Decimal(rng.randint(50, 5000)) / 100
        generic = winners[0]["药品通用名"].strip()
        for hospital in HOSPITALS:
            ratio = Decimal(rng.choice(RATIOS))
            last_year = Decimal(rng.randint(10, 500) * 100)
            volume = int(last_year * ratio)  # exact: last year is in hundreds
            for w in winners:
                out.append({
                    "hospital_id": hospital, "project": "国家组织药品集中带量采购",
                    "batch": f"第{n % 9 + 1}批", "generic_name": generic,
                    "national_code": w["医保药品编码"].strip(), "product_name": generic,
                    "winning_price": str(price), "supplier": w["药品生产企业"].strip(),
                    "cycle_start": "2026-01-01", "cycle_end": "2026-12-31",
                    "agreed_volume": str(volume), "agreed_ratio": str(ratio),
                    "category": "drug", "unit": "片", "reported_demand": str(int(last_year)),
                    "last_year_purchases": str(int(last_year))})
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(out)


if __name__ == "__main__":
    main()
