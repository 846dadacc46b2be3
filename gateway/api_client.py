"""The shell commands that work through a running gateway's HTTP API (``messages``,
``deadlines``): the gateway checks, masks and audits what they ask as for any caller,
under the identity their token proves."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

__all__ = ["DEFAULT_URL", "ApiFailed", "add_common", "call_json", "error_text", "run"]

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiFailed(Exception):
    """The call failed; ``status`` is the command's exit status (1 refused, 2 unreachable)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def error_text(exc: HTTPError) -> str:
    """The gateway's refusal in one line (with what to do about a missing token)."""
    raw = exc.read()
    try:
        text = f"HTTP {exc.code}: {json.loads(raw).get('error', '')}"
    except (ValueError, AttributeError):
        text = f"HTTP {exc.code}: {raw.decode('utf-8', 'replace')}"
    if exc.code == 401:
        text += "\n(give the gateway's API token: --token or JCGW_API_TOKEN)"
    return text


def call_json(args: argparse.Namespace, path: str, body: Any = None) -> Any:
    """GET ``path`` (with its query), or POST ``body`` as JSON, and read the JSON answer.

    Raises:
        ApiFailed: the gateway refused or could not be reached.
    """
    headers = {"Content-Type": "application/json"} if body is not None else {}
    token = args.token or os.environ.get("JCGW_API_TOKEN", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = Request(args.url.rstrip("/") + path, data=data, headers=headers,
                  method="GET" if body is None else "POST")
    try:
        with urlopen(req, timeout=args.timeout) as resp:
            return json.loads(resp.read())
    except HTTPError as exc:
        raise ApiFailed(1, error_text(exc)) from None
    except URLError as exc:
        raise ApiFailed(2, f"cannot reach the gateway at {args.url}: {exc.reason} "
                           "(is it running? give --url)") from None


def run(args: argparse.Namespace) -> int:
    """Run the sub-command's ``action``; what it returns (not None) is printed as JSON."""
    try:
        answer = args.action(args)
    except ApiFailed as exc:
        print(exc, file=sys.stderr)
        return exc.status
    if answer is not None:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


def add_common(p: argparse.ArgumentParser, token_help: str) -> None:
    """``--url``, ``--timeout`` and ``--token``, and :func:`run` as the command."""
    p.add_argument("--url", default=os.environ.get("JCGW_URL", DEFAULT_URL),
                   help="the running gateway's HTTP address (default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--token", help=token_help)
    p.set_defaults(func=run)
