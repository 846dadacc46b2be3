from gateway.ledger import DraftLine
from gateway.model import EventKind

from conftest import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event


def test_smoke(ledger):
    ledger.apply([event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")], at=cst(2026, 3, 1))])
    f = ledger.evaluate_lines(HOSPITAL, [DraftLine(1, EXEMESTANE_PFIZER, "依西美坦片(阿诺新)")], cst(2026, 7, 2))
    print(f)
    assert f
