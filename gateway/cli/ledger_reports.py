"""``jicai-gateway ledger-report``, ``ledger-ranking`` and ``ledger-demand``: the ledger's
reports read from the deployment's store, as the HTTP API gives them, for offices that
file them by hand or from a scheduled job.

They read only: the store may be in use by a running gateway (its view is not needed:
every report is computed from the stored daily totals and contracts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["register"]


async def _ledger_work(config: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from canonical.errors import ConfigError
    from gateway.app import make_store
    from gateway.config import load_config
    from gateway.ledger.calendar import load_calendar
    from gateway.ledger.dosage_forms import configure_dosage_forms, load_dosage_forms
    from gateway.ledger.ledger import Ledger, LedgerSettings

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    lc = cfg.ledger
    # before any contract is read: the groups decide which contract a product is in
    configure_dosage_forms(load_dosage_forms(lc.dosage_forms))
    store = make_store(cfg)
    await store.start()
    try:
        ledger = Ledger(store, LedgerSettings(calendar=load_calendar(lc.calendar_dir)))
        await ledger.load()
        return await work(ledger)
    finally:
        await store.close()


def _now() -> datetime:
    from gateway.ledger.calendar import CHINA_TZ

    return datetime.now(CHINA_TZ)


def _emit(args: argparse.Namespace, data: dict[str, Any], to_csv: Callable[[], str] | None,
          to_xlsx: Callable[[], bytes]) -> int:
    if args.xlsx:
        Path(args.xlsx).write_bytes(to_xlsx())
        print(f"wrote {args.xlsx}", file=sys.stderr)
    elif to_csv is not None and args.csv:
        Path(args.csv).write_text(to_csv(), encoding="utf-8")
        print(f"wrote {args.csv}", file=sys.stderr)
    else:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One hospital's monthly (or to-date) report."""
    import asyncio

    from gateway.ledger.report import build_report, report_csv
    from gateway.ledger.xlsx import report_xlsx

    try:
        rep = asyncio.run(_ledger_work(
            args.config, lambda lg: build_report(lg, args.hospital, _now(), args.month)))
    except ValueError as exc:
        print(f"--month must be YYYY-MM: {exc}", file=sys.stderr)
        return 2
    return _emit(args, rep, lambda: report_csv(rep), lambda: report_xlsx(rep))


def cmd_ranking(args: argparse.Namespace) -> int:
    """The ranking of the deployment's hospitals."""
    import asyncio

    from gateway.ledger.ranking import build_ranking, ranking_csv, ranking_xlsx

    try:
        rep = asyncio.run(_ledger_work(args.config, lambda lg: build_ranking(
            lg, _now(), args.month, project=args.project, batch=args.batch, by=args.by)))
    except ValueError as exc:
        print(f"--month must be YYYY-MM: {exc}", file=sys.stderr)
        return 2
    return _emit(args, rep, lambda: ranking_csv(rep["hospitals"]),
                 lambda: ranking_xlsx(rep["hospitals"]))


def _year(text: str) -> int:
    from gateway.ledger.demand import agreement_year

    year = agreement_year(text)
    if year is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year YYYY (2000 or later)")
    return year


def cmd_demand(args: argparse.Namespace) -> int:
    """One hospital's 报量 worksheet."""
    import asyncio

    from gateway.ledger.demand import build_demand, demand_xlsx

    sheet = asyncio.run(_ledger_work(args.config,
                                     lambda lg: build_demand(lg, args.hospital, args.year)))
    return _emit(args, sheet, None, lambda: demand_xlsx(sheet))


def register(subparsers: Any, default_config: str) -> None:
    """Add the ledger's report commands to the CLI's sub-parsers."""
    def command(name: str, helptext: str, func: Callable[[argparse.Namespace], int],
                formats: tuple[str, ...]) -> argparse.ArgumentParser:
        s: argparse.ArgumentParser = subparsers.add_parser(name, help=helptext)
        s.add_argument("-c", "--config", default=default_config)
        for fmt in formats:
            s.add_argument(f"--{fmt}", metavar="FILE", help=f"write {fmt.upper()} there")
        s.set_defaults(func=func)
        return s

    s = command("ledger-report", "a hospital's 一院一档 report: JSON, --csv or --xlsx file",
                cmd_report, ("csv", "xlsx"))
    s.add_argument("hospital", help="定点医药机构编号")
    s.add_argument("--month", help="YYYY-MM (default: the agreement year to date)")
    s = command("ledger-ranking", "the deployment's hospitals ranked (R3, R4)", cmd_ranking,
                ("csv", "xlsx"))
    s.add_argument("--month", help="YYYY-MM (default: to date)")
    s.add_argument("--project")
    s.add_argument("--batch")
    s.add_argument("--by", choices=["use", "progress"], default="use")
    s = command("ledger-demand", "a hospital's 报量 worksheet for an agreement year (R9)",
                cmd_demand, ("xlsx",))
    s.add_argument("hospital", help="定点医药机构编号")
    s.add_argument("--year", type=_year, required=True, help="the agreement year, YYYY")
