"""SPD warehouse CSV stock documents (入库 / 退货) for jicai-gateway.

Header row (UTF-8 with or without BOM, or GB18030 as Excel on a Chinese
Windows saves it)::

    单据号,单据类型,业务时间,供应商编码,供应商名称,药品编码,药品名称,规格,生产企业,数量,单位,单价,批号,有效期至

单据类型 is 入库 (receipt) or 退货 (return). A file has no message id, so the
SHA-256 of its bytes identifies it: sending the same file twice is a duplicate.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Outcome, OutcomeStatus, ParsedMessage, Reply, ReplySummary
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, Party

__all__ = ["SpdCsvAdapter", "SpdCsvConfig"]

COLUMNS = ("单据号", "单据类型", "业务时间", "供应商编码", "供应商名称", "药品编码", "药品名称",
           "规格", "生产企业", "数量", "单位", "单价", "批号", "有效期至")
_KINDS = {"入库": EventKind.RECEIPT, "退货": EventKind.RETURN}
_CST = timezone(timedelta(hours=8))


class SpdCsvConfig(BaseModel):
    """Configuration of one SPD CSV listener."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hospital_id: str = Field(pattern=r"^[A-Z0-9]{12}$", description="定点医药机构编号")
    sender: str = Field(default="SPD", description="name of the sending system")


def _decode(raw: bytes) -> str:
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    raise MessageRejected("file is neither UTF-8 nor GB18030", code="203", location="row 1",
                          reject=True)


class SpdCsvAdapter:
    """CSV stock documents from an SPD warehouse system."""

    name: ClassVar[str] = "spd-csv"
    kinds: ClassVar[frozenset[str]] = frozenset({"spd-stock-csv"})
    config_model: ClassVar[type[BaseModel]] = SpdCsvConfig
    transport: ClassVar[str] = "http"

    def __init__(self, config: SpdCsvConfig | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, SpdCsvConfig) \
            else SpdCsvConfig.model_validate(config)

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """One event per 单据号.

        Args:
            raw: the CSV file's bytes.
            received_at: the gateway's receipt time.

        Returns:
            The parsed message.

        Raises:
            MessageRejected: bad header, unknown document type, or a bad cell;
                ``location`` is ``row N/列名``.
        """
        rows = list(csv.reader(io.StringIO(_decode(raw))))
        if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
            raise MessageRejected(f"the header row must be {','.join(COLUMNS)}", code="100",
                                  location="row 1", reject=True)
        docs: dict[str, list[dict[str, str]]] = {}
        for n, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(COLUMNS):
                raise MessageRejected(f"row {n} has {len(row)} cells, expected {len(COLUMNS)}",
                                      code="100", location=f"row {n}")
            cells = {k: v.strip() for k, v in zip(COLUMNS, row, strict=True)}
            cells["_row"] = str(n)
            docs.setdefault(cells["单据号"], []).append(cells)
        if not docs:
            raise MessageRejected("the file has no data rows", code="100", location="row 2")
        control_id = "sha256:" + hashlib.sha256(raw).hexdigest()[:24]
        source = f"{self.name}:{self.config.sender}"
        events = tuple(self._event(i, doc, rows_, source, control_id)
                       for i, (doc, rows_) in enumerate(docs.items()))
        return ParsedMessage(adapter=self.name, sender=self.config.sender,
                             control_id=control_id, message_type="spd-stock-csv", events=events)

    def _event(self, index: int, doc: str, rows: list[dict[str, str]], source: str,
               control_id: str) -> Event:
        first = rows[0]
        where = f"row {first['_row']}"
        if not doc:
            raise MessageRejected("单据号 is empty", code="101", location=f"{where}/单据号")
        kind = _KINDS.get(first["单据类型"])
        if kind is None:
            raise MessageRejected(f"单据类型 {first['单据类型']!r} is not 入库 or 退货",
                                  code="103", location=f"{where}/单据类型")
        try:
            occurred = datetime.strptime(first["业务时间"], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise MessageRejected(f"业务时间 {first['业务时间']!r} is not yyyy-MM-dd HH:mm:ss",
                                  code="102", location=f"{where}/业务时间") from None
        supplier = Party(first["供应商编码"], first["供应商名称"])
        lines = tuple(self._line(i, r) for i, r in enumerate(rows, start=1))
        return Event(event_id=f"{source}:{control_id}:{index}", kind=kind,
                     hospital_id=self.config.hospital_id, source=source,
                     occurred_at=occurred.replace(tzinfo=_CST), lines=lines,
                     control_id=control_id, document_no=doc, supplier=supplier)

    @staticmethod
    def _number(r: dict[str, str], column: str) -> Decimal:
        try:
            d = Decimal(r[column])
        except InvalidOperation:
            raise MessageRejected(f"{column} {r[column]!r} is not a number", code="102",
                                  location=f"row {r['_row']}/{column}") from None
        if not d.is_finite():
            raise MessageRejected(f"{column} is not finite", code="102",
                                  location=f"row {r['_row']}/{column}")
        return d

    def _line(self, seq: int, r: dict[str, str]) -> Line:
        if not r["药品编码"]:
            raise MessageRejected("药品编码 is empty", code="101",
                                  location=f"row {r['_row']}/药品编码")
        return Line(seq=seq, item_code=r["药品编码"], item_name=r["药品名称"],
                    specification=r["规格"], manufacturer=r["生产企业"],
                    quantity=self._number(r, "数量"), unit=r["单位"],
                    price=self._number(r, "单价") if r["单价"] else None,
                    lot_no=r["批号"], expiry=r["有效期至"])

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """Plain text: ``OK <id>`` or ``ERROR`` and one ``<location>\\t<text>`` per problem."""
        ok = outcome.status in (OutcomeStatus.ACCEPTED, OutcomeStatus.DUPLICATE) \
            and not outcome.blocked
        control = parsed.control_id if parsed else ""
        lines = [f"{'OK' if ok else 'ERROR'} {control}".rstrip()]
        lines += [f"{i.location}\t{i.text}" for i in outcome.issues]
        status = 200 if ok else (500 if outcome.status is OutcomeStatus.ERROR else 400)
        return Reply(("\n".join(lines) + "\n").encode(), "text/plain; charset=utf-8", status)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read a reply back."""
        first, *rest = reply.body.decode().splitlines()
        word, _, control = first.partition(" ")
        return ReplySummary(word == "OK", control,
                            tuple(r.split("\t", 1)[0] for r in rest))
