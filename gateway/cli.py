"""The ``jicai-gateway`` command: serve, check-config, simulate-platform, send, replay."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.request import Request, urlopen

from . import cli_mappings
from .config import GatewayConfig, load_config
from .errors import ConfigError
from .mllp_framing import END, START, frame

__all__ = ["main"]

DEFAULT_CONFIG = "config/gateway.yaml"


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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

    from .app import build_app

    cfg = _load(args.config)
    _setup_logging(cfg.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    # the store's writer thread comes back from each fsync wanting the GIL; a short
    # switch interval lets it commit the next group instead of waiting 5 ms
    sys.setswitchinterval(0.0005)
    web.run_app(build_app(cfg), host=cfg.http.host, port=cfg.http.port, access_log=None,
                loop=loop, print=lambda _: logging.getLogger("gateway").info(
                    "gateway HTTP on http://%s:%d (health /healthz, metrics /metrics)",
                    cfg.http.host, cfg.http.port))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and print every problem at once."""
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.config}: OK — {len(cfg.listeners)} listener(s), "
          f"{len(cfg.destinations)} destination(s), {len(cfg.hospitals)} hospital(s), "
          f"store {cfg.store.backend}")
    return 0


def cmd_simulate_platform(args: argparse.Namespace) -> int:
    """Run the platform simulator on its own."""
    from aiohttp import web

    from .simulator import simulator_app

    _setup_logging("INFO")
    web.run_app(simulator_app(), host=args.host, port=args.port, access_log=None,
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


def cmd_send(args: argparse.Namespace) -> int:
    """Send message files over MLLP or HTTP and print the answers."""
    status = 0
    if args.http:
        for name in args.files:
            body = Path(name).read_bytes()
            req = Request(args.http, data=body, method="POST",
                          headers={"Content-Type": args.content_type})
            try:
                with urlopen(req, timeout=args.timeout) as resp:
                    print(f"{name}: HTTP {resp.status}\n{resp.read().decode('utf-8', 'replace')}")
            except Exception as exc:  # HTTPError carries the body of a 4xx
                body_text = getattr(exc, "read", lambda: b"")().decode("utf-8", "replace")
                print(f"{name}: {exc}\n{body_text}")
                status = 1
        return status
    host, _, port = args.mllp.rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=args.timeout) as s:
        for name in args.files:
            raw = Path(name).read_bytes()
            if b"\n" in raw and b"\r" not in raw:
                raw = raw.replace(b"\n", b"\r")  # files edited by hand often lose the CRs
            s.sendall(frame(raw))
            ack = _read_ack(s, args.timeout)
            text = ack.decode("utf-8", "replace").replace("\r", "\n")
            print(f"--- {name}\n{text}")
            if "|AA|" not in text.split("MSA", 1)[-1][:5] and "MSA|AA" not in text:
                status = 1
    return status


def cmd_replay(args: argparse.Namespace) -> int:
    """Put dead letters (or, with --force, delivered rows) back in the outbox."""
    cfg = _load(args.config)
    if cfg.store.backend != "sqlite":
        print("replay for this backend: use the HTTP API", file=sys.stderr)
        return 2
    con = sqlite3.connect(cfg.store.sqlite_path)
    states = (2, 1) if args.force else (2,)
    where = [f"state IN ({','.join('?' * len(states))})"]
    params: list[object] = list(states)
    if args.id:
        where.append(f"id IN ({','.join('?' * len(args.id))})")
        params.extend(args.id)
    if args.destination:
        where.append("destination = ?")
        params.append(args.destination)
    if args.hospital:
        where.append("hospital_id = ?")
        params.append(args.hospital)
    if args.id and not args.force:
        delivered = con.execute(
            f"SELECT id FROM outbox WHERE state = 1 AND id IN ({','.join('?' * len(args.id))})",
            args.id).fetchall()
        if delivered:
            print(f"refused: outbox row(s) {[r[0] for r in delivered]} were already delivered; "
                  "use --force to send them again", file=sys.stderr)
            return 1
    with con:
        cur = con.execute(
            f"UPDATE outbox SET state = 0, attempts = 0, next_attempt_at = ?, last_error = ''"
            f" WHERE {' AND '.join(where)}", [time.time(), *params])
    print(f"{cur.rowcount} outbox row(s) queued again; a running gateway sends them within "
          "its next drain")
    return 0


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
    s.set_defaults(func=cmd_simulate_platform)
    s = sub.add_parser("send", help="send message files over MLLP or HTTP")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--mllp", default="127.0.0.1:2575", help="host:port (default %(default)s)")
    g.add_argument("--http", help="URL to POST each file to")
    s.add_argument("--content-type", default="application/fhir+json")
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_send)
    s = sub.add_parser("replay", help="queue dead letters again")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.add_argument("--id", type=int, action="append", help="outbox row id (repeatable)")
    s.add_argument("--destination")
    s.add_argument("--hospital")
    s.add_argument("--force", action="store_true", help="also resend delivered rows")
    s.set_defaults(func=cmd_replay)
    cli_mappings.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
