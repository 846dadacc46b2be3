"""The ``jicai-gateway`` command: serve, check-config, simulate-platform, send, replay,
deadletters, token, sim-faults, sim-counts, ledger-contracts, ledger-poison and the
ledger's reports (ledger-report, ledger-ranking, ledger-demand)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.request import Request, urlopen

from canonical.errors import ConfigError, StoreError
from gateway.browser import cli as cli_messages
from gateway.cli import ledger_reports
from gateway.config import ROLES, GatewayConfig, load_config
from gateway.crosswalk import cli as cli_mappings
from gateway.ingest.framing import END, START, frame
from gateway.ledger import cli as cli_deadlines
from gateway.logs import setup_logging
from gateway.native import native_status
from gateway.security import audit_cli

__all__ = ["main"]

DEFAULT_CONFIG = "config/gateway.yaml"


def _setup_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    setup_logging(level, fmt)


def _load(path: str) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway until SIGINT / SIGTERM."""
    from aiohttp import web

    from gateway.app import HTTP_SHARE, build_app
    from gateway.security.exposure import exposure_problems, mirrors_to_simulator
    from gateway.security.tls import server_context

    cfg = _load(args.config)
    problems = exposure_problems(cfg)
    if problems:
        print(f"{args.config}: refusing to start, the gateway would be open on the network:\n"
              + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    _setup_logging(cfg.log_level, cfg.log_format)
    log = logging.getLogger("gateway")
    if cfg.security.demo:
        log.warning("DEMO MODE (security.demo): %s", "purchases go to the bundled simulator, "
                    "not to the platform" if mirrors_to_simulator(cfg) else
                    "for demonstrations only")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    native = native_status()
    (logging.getLogger("gateway").warning
     if native.stale or native.unused or not native.compiled
     else logging.getLogger("gateway").info)("%s", native.summary())
    logging.getLogger("gateway").info("%s", _xml_walk_summary())
    from gateway.platforms.coverage import config_gaps

    for gap in config_gaps(cfg)[0]:  # the events would all wait: said once, at start
        log.warning("mandatory field no adapter fills: %s", gap.message)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    # the store's writer thread comes back from each fsync wanting the GIL; a short
    # switch interval lets it commit the next group instead of waiting 5 ms
    sys.setswitchinterval(0.0005)
    try:
        ssl_context = None if cfg.http.tls is None else server_context(cfg.http.tls)
        scheme = "http" if ssl_context is None else "https"
        app = build_app(cfg, config_file=args.config)
        app.on_startup.append(_settle_heap)
        app.on_shutdown.insert(0, _deadline(cfg.shutdown_grace_s))
        web.run_app(app, host=cfg.http.host, port=cfg.http.port, access_log=None,
                    ssl_context=ssl_context, loop=loop,
                    # an idle keep-alive connection is not kept longer than a slow body
                    keepalive_timeout=cfg.http.read_timeout_s,
                    # requests in flight at SIGTERM: their share of the grace period
                    shutdown_timeout=cfg.shutdown_grace_s * HTTP_SHARE,
                    print=lambda _: log.info(
                        "gateway HTTP on %s://%s:%d (health /healthz, metrics /metrics)",
                        scheme, cfg.http.host, cfg.http.port))
    except ConfigError as exc:  # found at start: files the configuration names
        print(exc, file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _deadline(grace_s: float) -> Callable[[object], Awaitable[None]]:
    """The first shutdown step: the process ends ``grace_s`` after it, whatever is still
    unwinding. Everything acknowledged is committed already, so cutting the rest short
    loses nothing a sender was told is kept; a supervisor waiting for the exit (systemd's
    TimeoutStopSec, docker stop) is never made to kill the process instead."""
    async def start(app: object) -> None:
        def expire() -> None:
            logging.getLogger("gateway").error(
                "shutdown took longer than shutdown_grace_s (%g s): exiting now", grace_s)
            logging.shutdown()
            os._exit(1)

        timer = threading.Timer(grace_s, expire)
        timer.daemon = True  # a shutdown that finished in time exits without waiting
        timer.start()
        logging.getLogger("gateway").info("stopping: at most %g s (shutdown_grace_s)", grace_s)
    return start


async def _settle_heap(app: object) -> None:
    """After start-up: let the cyclic garbage collector skip what lives as long as we do.

    Catalogs, the crosswalk, the ledger and the rules are loaded at start and kept; a
    message's objects die by reference counting as soon as it is answered. Frozen, the
    former are never scanned again, and a larger first-generation threshold stops the
    collector from running every few messages (it cost ~7 % of the CPU at full load).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and print every problem at once."""
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from gateway.security.exposure import exposure_problems

    problems = exposure_problems(cfg)
    if problems:
        print(f"{args.config}: valid, but `serve` refuses it (open on the network):\n"
              + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    print(f"{args.config}: OK — {len(cfg.listeners)} listener(s), "
          f"{len(cfg.destinations)} destination(s), {len(cfg.hospitals)} hospital(s), "
          f"store {cfg.store.backend}")
    print(native_status().summary())
    print(_xml_walk_summary())
    _print_coverage(cfg)
    return 0


def _print_coverage(cfg: GatewayConfig) -> None:
    """Warn of mandatory platform fields the configured adapters cannot fill (the events
    would be held): a warning, not a failure — the data may come from field_defaults
    added later or a sender's next release."""
    from gateway.platforms.coverage import config_gaps

    gaps, unchecked = config_gaps(cfg)
    for gap in gaps:
        print(f"warning: {gap.message}")
    for listener in unchecked:
        print(f"note: listener {listener}: its events' mandatory fields are not checked")
    if not gaps:
        print("mandatory platform fields: every configured adapter can fill them")


def _xml_walk_summary() -> str:
    from adapters.vendor import xml_walk

    return f"vendor XML field walk: {xml_walk.IMPLEMENTATION.name}"


def cmd_simulate_platform(args: argparse.Namespace) -> int:
    """Run the platform simulator on its own."""
    from aiohttp import web

    from gateway.platforms.simulator import SimulatorState, simulator_app

    _setup_logging("INFO")
    state = SimulatorState(seed=args.seed)
    state.reset()
    if args.faults:
        state.set_faults(json.loads(args.faults))
    web.run_app(simulator_app(state), host=args.host, port=args.port, access_log=None,
                print=lambda _: logging.getLogger("simulator").info(
                    "platform simulator on http://%s:%d/fsi/api/ (records: /_sim/received)",
                    args.host, args.port))
    return 0


def _read_ack(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while END not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the ACK arrived")
        buf += chunk
    start = buf.find(START)
    return buf[start + 1: buf.find(END)]


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context of ``send``: the gateway's CA, and a client certificate for mTLS."""
    if not (args.tls or args.ca or args.cert):
        return None
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def cmd_send(args: argparse.Namespace) -> int:
    """Send message files over MLLP or HTTP and print the answers."""
    status = 0
    if args.http:
        for name in args.files:
            body = Path(name).read_bytes()
            headers = {"Content-Type": args.content_type}
            token = args.token or os.environ.get("JCGW_API_TOKEN", "")
            if token:
                headers["Authorization"] = f"Bearer {token}"
            req = Request(args.http, data=body, method="POST", headers=headers)
            try:
                with urlopen(req, timeout=args.timeout, context=_client_tls(args)) as resp:
                    print(f"{name}: HTTP {resp.status}\n{resp.read().decode('utf-8', 'replace')}")
            except Exception as exc:  # HTTPError carries the body of a 4xx
                body_text = getattr(exc, "read", lambda: b"")().decode("utf-8", "replace")
                print(f"{name}: {exc}\n{body_text}")
                status = 1
        return status
    host, _, port = args.mllp.rpartition(":")
    try:
        conn = socket.create_connection((host or "127.0.0.1", int(port)), timeout=args.timeout)
        tls = _client_tls(args)
        if tls is not None:
            conn = tls.wrap_socket(conn, server_hostname=host or "127.0.0.1")
    except (OSError, ValueError) as exc:
        print(f"cannot connect to MLLP listener {args.mllp}: {exc}", file=sys.stderr)
        return 2
    with conn as s:
        for name in args.files:
            raw = Path(name).read_bytes()
            if b"\n" in raw and b"\r" not in raw:
                raw = raw.replace(b"\n", b"\r")  # files edited by hand often lose the CRs
            try:
                s.sendall(frame(raw))
                ack = _read_ack(s, args.timeout)
            except OSError as exc:  # ssl.SSLError too: a refused client certificate
                print(f"--- {name}: no answer from {args.mllp}: {exc}", file=sys.stderr)
                return 2
            text = _decode_ack(ack)
            print(f"--- {name}\n{text.replace(chr(13), chr(10))}")
            if _ack_code(text) != "AA":
                status = 1
    return status


def _decode_ack(ack: bytes) -> str:
    """The ACK as text: UTF-8, or GB18030 when a Chinese HIS was answered in its charset."""
    try:
        return ack.decode("utf-8")
    except UnicodeDecodeError:
        return ack.decode("gb18030", "replace")


def _ack_code(text: str) -> str:
    """MSA-1 of an ACK (AA, AE, AR), read with the field separator its MSH declares."""
    fs = text[3:4] or "|"
    for seg in text.split("\r"):
        if seg.startswith("MSA"):
            fields = seg.split(fs)
            return fields[1] if len(fields) > 1 else ""
    return ""


def _outbox_query(args: argparse.Namespace, default_states: Sequence[str]) -> Any:
    from gateway.mirror.replay import MAX_LIMIT, build_query

    if not 1 <= args.limit <= MAX_LIMIT:
        print(f"--limit must be between 1 and {MAX_LIMIT}", file=sys.stderr)
        raise SystemExit(2)
    try:
        return build_query(ids=args.id or (), destination=args.destination,
                           hospital=args.hospital, since=args.since, until=args.until,
                           transaction=args.transaction, states=default_states,
                           limit=args.limit)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


async def _with_store(cfg: GatewayConfig, work: Any) -> Any:
    from gateway.app import make_store

    store = make_store(cfg)
    await store.start()
    try:
        return await work(store)
    finally:
        await store.close()


def cmd_deadletters(args: argparse.Namespace) -> int:
    """List dead letters (or other outbox rows), or show one with its event."""
    from gateway.mirror.replay import record_to_dict

    cfg = _load(args.config)
    if args.show is not None:
        record = asyncio.run(_with_store(cfg, lambda st: st.outbox_record(args.show)))
        if record is None:
            print(f"no outbox row {args.show}", file=sys.stderr)
            return 1
        print(json.dumps(record_to_dict(record), ensure_ascii=False, indent=2, default=str))
        return 0
    query = _outbox_query(args, args.state or ("dead",))
    rows = asyncio.run(_with_store(cfg, lambda st: st.list_outbox(query)))
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        print(f"{r.id}\t{r.state}\t{r.destination}\t{r.msgid}\t{r.stream}\t{when}\t"
              f"attempts={r.attempts}\t{r.last_error}")
    print(f"{len(rows)} row(s)", file=sys.stderr)
    return 0


def cmd_ledger_contracts(args: argparse.Namespace) -> int:
    """Import procurement results into the store, checked as the API checks them."""
    from datetime import UTC, datetime

    from gateway.ledger.contract_import import import_contracts_file
    from gateway.ledger.contracts import ContractFormatError
    from gateway.security.audit_log import shell_identity

    cfg = _load(args.config)
    try:
        n, warnings = asyncio.run(_with_store(cfg, lambda st: import_contracts_file(
            cfg, st, Path(args.file), shell_identity(), datetime.now(UTC))))
    except (ContractFormatError, ConfigError, OSError) as exc:
        problems = exc.problems if isinstance(exc, ContractFormatError | ConfigError) else [
            str(exc)]
        print(json.dumps({"error": "bad procurement results", "problems": problems},
                         ensure_ascii=False, indent=2), file=sys.stderr)
        return 2
    print(json.dumps({"imported": n, "warnings": warnings}, ensure_ascii=False, indent=2))
    return 0


def cmd_ledger_poison(args: argparse.Namespace) -> int:
    """List the events the ledger set aside as poison, or queue them to be folded again."""
    cfg = _load(args.config)
    if args.refold:
        seqs = args.seq or None

        async def refold(st: Any) -> int:
            from gateway.security.audit_log import record_shell

            n: int = await st.ledger.refold(seqs)
            await record_shell(st.audit_log, "ledger.poison.refold", target="ledger_poison",
                               before={"seqs": seqs or "all"}, after={"queued": n},
                               detail="jicai-gateway ledger-poison --refold on the store")
            return n
        n = asyncio.run(_with_store(cfg, refold))
        print(f"{n} event(s) queued to be folded again (a running gateway folds them at "
              "once on PostgreSQL, within its poll interval on SQLite)", file=sys.stderr)
        return 0
    rows = asyncio.run(_with_store(cfg, lambda st: st.ledger.poisoned()))
    for seq, reason, at in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        print(f"{seq}\t{when}\t{reason}")
    print(f"{len(rows)} poison event(s)", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Queue dead letters again (delivered rows only with --force), on any backend."""
    cfg = _load(args.config)
    if not (args.id or args.destination or args.hospital or args.since or args.until
            or args.transaction or args.all):
        print("name what to replay: --id, --destination, --hospital, --since/--until, "
              "--transaction (or --all for every dead letter)", file=sys.stderr)
        return 2
    query = _outbox_query(args, ("dead", "delivered") if args.force else ("dead",))

    async def replay(st: Any) -> Any:
        from gateway.mirror.replay import replay_audit
        from gateway.security.audit_log import record_shell

        result = await st.replay(query, to_destination=args.to, force=args.force,
                                 now=time.time())
        # no gateway in between to authenticate anyone: the log names the account
        await record_shell(st.audit_log, "mirror.replay", **replay_audit(
            query, result, force=args.force, to_destination=args.to))
        return result
    result = asyncio.run(_with_store(cfg, replay))
    print(f"{len(result.queued)} outbox row(s) queued again"
          + (f" for {args.to}" if args.to else "")
          + (f"; {len(result.skipped)} already pending" if result.skipped else "")
          + "; a running gateway sends them within its next drain")
    if result.refused:
        print(f"refused: outbox row(s) {list(result.refused)} were already delivered; "
              "use --force to send them again", file=sys.stderr)
        return 1
    return 0


def _sim_call(url: str, path: str, body: bytes | None = None) -> int:
    req = Request(url.rstrip("/") + path, data=body, method="POST" if body else "GET",
                  headers={"Content-Type": "application/json"})
    try:
        with urlopen(req, timeout=10) as resp:
            print(resp.read().decode())
    except Exception as exc:
        body_text = getattr(exc, "read", lambda: b"")().decode("utf-8", "replace")
        print(f"{exc}\n{body_text}", file=sys.stderr)
        return 1
    return 0


def cmd_sim_faults(args: argparse.Namespace) -> int:
    """Set the running simulator's faults from JSON (e.g. '{"fail_ratio": 0.5}')."""
    try:
        json.loads(args.faults)
    except json.JSONDecodeError as exc:
        print(f"faults must be JSON: {exc}", file=sys.stderr)
        return 2
    return _sim_call(args.url, "/_sim/faults" + ("?replace=1" if args.replace else ""),
                     args.faults.encode())


def cmd_token(args: argparse.Namespace) -> int:
    """Make a bearer token for an identity, or hash one a client already has."""
    import getpass

    import yaml

    from gateway.config import IdentityConfig
    from gateway.security.identity import hash_token, new_token

    if args.action == "hash":
        token = (getpass.getpass("token: ") if sys.stdin.isatty()
                 else sys.stdin.readline()).strip()
        if not token:
            print("no token given (on standard input)", file=sys.stderr)
            return 2
        print(hash_token(token))
        return 0
    token = new_token()
    entry: dict[str, Any] = {"name": args.name, "role": args.role,
                             "token_sha256": hash_token(token)}
    if args.hospital:
        entry["hospitals"] = args.hospital
    try:
        IdentityConfig.model_validate(entry)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"# the token, for the client only (only its hash is kept): {token}",
          file=sys.stderr)
    print("# add to security.identities, or to the identities file (read again on change):",
          file=sys.stderr)
    print(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False), end="")
    return 0


def cmd_sim_counts(args: argparse.Namespace) -> int:
    """Print what the running simulator accepted, refused and counted as duplicates."""
    return _sim_call(args.url, "/_sim/counts")


def _add_filters(s: argparse.ArgumentParser) -> None:
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.add_argument("--id", type=int, action="append", help="outbox row id (repeatable)")
    s.add_argument("--destination")
    s.add_argument("--hospital", help="定点医药机构编号")
    s.add_argument("--since", help="commit time from (ISO 8601 or unix seconds)")
    s.add_argument("--until", help="commit time before")
    s.add_argument("--transaction", help="infno (3505), 招采 transaction or event kind")
    s.add_argument("--limit", type=int, default=500, help="rows at most (≤ 5000)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = argparse.ArgumentParser(prog="jicai-gateway", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("check-config", help="validate a configuration file")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.set_defaults(func=cmd_check_config)
    s = sub.add_parser("simulate-platform", help="run the platform simulator alone")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8090)
    s.add_argument("--faults", help="faults at start, as JSON (see sim-faults)")
    s.add_argument("--seed", type=int, default=20261123, help="for fault ratios")
    s.set_defaults(func=cmd_simulate_platform)
    s = sub.add_parser("send", help="send message files over MLLP or HTTP")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--mllp", default="127.0.0.1:2575", help="host:port (default %(default)s)")
    g.add_argument("--http", help="URL to POST each file to")
    s.add_argument("--content-type", default="application/fhir+json")
    s.add_argument("--token", help="bearer token of a sender identity (HTTP; default: "
                                   "$JCGW_API_TOKEN)")
    s.add_argument("--tls", action="store_true", help="MLLP over TLS")
    s.add_argument("--ca", help="CA file that signed the gateway's certificate (implies --tls)")
    s.add_argument("--cert", help="client certificate (PEM, mutual TLS)")
    s.add_argument("--key", help="its private key, if not in --cert")
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_send)
    s = sub.add_parser("replay", help="queue dead letters again")
    _add_filters(s)
    s.add_argument("--to", help="deliver to this destination instead (same msgids)")
    s.add_argument("--all", action="store_true", help="every dead letter")
    s.add_argument("--force", action="store_true", help="also resend delivered rows")
    s.set_defaults(func=cmd_replay)
    s = sub.add_parser("deadletters", help="list dead letters, or --show one")
    _add_filters(s)
    s.add_argument("--state", action="append", choices=["pending", "delivered", "dead"])
    s.add_argument("--show", type=int, metavar="ID", help="one row with its event")
    s.set_defaults(func=cmd_deadletters)
    s = sub.add_parser("ledger-contracts",
                       help="import procurement results (CSV/XLSX/JSON) into the store")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.add_argument("file", help="the results file")
    s.set_defaults(func=cmd_ledger_contracts)
    s = sub.add_parser("ledger-poison",
                       help="events the ledger could not fold; --refold after a fix")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.add_argument("--refold", action="store_true", help="queue them to be folded again")
    s.add_argument("--seq", type=int, action="append", help="only this event (repeatable)")
    s.set_defaults(func=cmd_ledger_poison)
    s = sub.add_parser("token", help="make a bearer token for an identity, or hash one")
    s.add_argument("action", choices=["new", "hash"],
                   help="new: a token and its configuration entry; hash: the SHA-256 of a "
                        "token read from standard input")
    s.add_argument("--name", default="client", help="the identity's name (audit entries)")
    s.add_argument("--role", default="sender", choices=ROLES)
    s.add_argument("--hospital", action="append",
                   help="a 定点医药机构编号 it may act for (repeatable; default: all)")
    s.set_defaults(func=cmd_token)
    s = sub.add_parser("sim-faults", help="script the running simulator's faults")
    s.add_argument("--url", default="http://127.0.0.1:8090")
    s.add_argument("--replace", action="store_true", help="clear faults not named")
    s.add_argument("faults", help='JSON, e.g. \'{"fail_ratio": 0.5, "transactions": '
                                  '{"3505": {"latency_s": 0.2}}}\'')
    s.set_defaults(func=cmd_sim_faults)
    s = sub.add_parser("sim-counts", help="what the running simulator counted")
    s.add_argument("--url", default="http://127.0.0.1:8090")
    s.set_defaults(func=cmd_sim_counts)
    cli_mappings.register(sub)
    audit_cli.register(sub)
    cli_messages.register(sub)
    cli_deadlines.register(sub)
    ledger_reports.register(sub, DEFAULT_CONFIG)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
