"""The people of the console tests and this hospital's contracts (shared by the fixtures
and the tests; a module of its own, since every test folder has a ``conftest``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from helpers import HOSPITAL

from gateway.security.identity import hash_token, new_token

CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    token: str = field(default_factory=new_token)
    hospitals: tuple[str, ...] = ()

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "token_sha256": hash_token(self.token),
                "hospitals": list(self.hospitals)}


# the people of one hospital's pharmacy, procurement office and information department
PHARMACIST = Person("yjk-lina", "pharmacist", hospitals=(HOSPITAL,))
PROCUREMENT = Person("cgb-wangfang", "procurement")
ADMIN = Person("xxk-zhaolei", "admin")
AUDITOR = Person("sjc-chenjing", "auditor")
SENDER = Person("his-wn", "sender", hospitals=(HOSPITAL,))
PEOPLE = (PHARMACIST, PROCUREMENT, ADMIN, AUDITOR, SENDER)


def contracts_csv(tmp: Path) -> Path:
    """This hospital's contracts in a cycle around today, so that time progress is about
    half whatever day the tests run: 比卡鲁胺片 (listed first) is on track once stock is
    received, 阿那曲唑片 lags with nothing received."""
    start, end = date.today() - timedelta(days=180), date.today() + timedelta(days=184)
    head = ("hospital_id,project,batch,generic_name,national_code,product_name,winning_price,"
            "supplier,cycle_start,cycle_end,agreed_volume,agreed_ratio,category,unit,"
            "reported_demand,last_year_purchases")
    rows = [
        f"{HOSPITAL},国家组织药品集中带量采购,第二批,比卡鲁胺片,XL02BBB085A001010100665,"
        f"比卡鲁胺片 50mg,3.2300,上海朝晖药业有限公司,{start},{end},6000,0.60,drug,片,7000,8000",
        f"{HOSPITAL},国家组织药品集中带量采购,第二批,阿那曲唑片,XL02BGA045A001010104520,"
        f"阿那曲唑片 1mg,2.3500,杭州中美华东制药有限公司,{start},{end},20000,0.70,drug,片,"
        "22000,24000",
    ]
    path = tmp / "contracts.csv"
    path.write_text("\n".join([head, *rows]) + "\n", "utf-8")
    return path
