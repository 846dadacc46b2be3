"""A provincial procurement platform (招采), hospital side.

The shape most provincial platforms share: ``{"infno": …, "msgid": …, "input":
{"data": {…}}}`` with a bearer token obtained from the application code and
secret, and the answer ``returnCode`` / ``returnMsg`` / ``data``. One request
carries a whole document — an order, a receipt against a shipment, a return, a
settlement statement — unlike the national interface's one line per request: the
platform's batch transaction, so a 600-line receipt is one call. Requests of one
document keep their order (a return names its receipt in ``original_no``); different
documents go out concurrently.

Documents are built from the field specifications of
:mod:`gateway.platforms.zhaocai_fields`, the same the simulator checks them against;
an event whose document would lack a mandatory field is held (:meth:`missing`).

The token request carries no secret: ``sign`` is HMAC-SHA256 of app code and
timestamp under the secret. A token the platform no longer accepts is dropped
and fetched again before the next try.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson

from canonical.model import Event, EventKind, OrderControl
from gateway.config import DestinationConfig, GatewayConfig
from gateway.platforms.base import Answer, Request, Verdict
from gateway.platforms.custom_fields import destination_documents
from gateway.platforms.nhsa import THROTTLE_MARKERS, signer_for
from gateway.platforms.signing import Signer
from gateway.platforms.zhaocai_fields import DocumentChecks, build_document, missing_in_document

__all__ = ["RETURN_CODES", "TRANSACTIONS", "ZhaocaiProfile", "token_sign"]

# event kind → transaction name
TRANSACTIONS: dict[EventKind, str] = {
    EventKind.PURCHASE_ORDER: "order.submit",
    EventKind.RECEIPT: "delivery.receive",
    EventKind.RETURN: "return.apply",
    EventKind.PAYMENT: "settlement.submit",
}
CANCEL = "order.cancel"

# "invalid": a field of the document refused (returnMsg names it); "unknown": no
# such transaction
RETURN_CODES = {"ok": 0, "token": 1001, "duplicate": 2001, "invalid": 3002, "unknown": 9003}


def token_sign(app_code: str, timestamp: str, secret: bytes) -> str:
    """The token request's signature: hex HMAC-SHA256 of app code and timestamp."""
    return hmac.new(secret, f"{app_code}{timestamp}".encode(), hashlib.sha256).hexdigest()


def _extra(event: Event, key: str) -> str:
    return next((v for k, v in event.extra if k == key), "")


class ZhaocaiProfile:
    """Orders, receipts, returns and settlements to a provincial procurement platform."""

    def __init__(self, dest: DestinationConfig, gateway: GatewayConfig) -> None:
        self.dest = dest
        self._secret = (dest.app_secret.get_secret_value().encode()
                        if dest.app_secret is not None else b"")
        self.signer: Signer = signer_for(dest)
        self.token = ""
        self.token_expires = 0.0
        self.token_fetches = 0
        self.documents = destination_documents(dest)
        self._checks = {name: DocumentChecks.of(doc) for name, doc in self.documents.items()}

    def units(self, event: Event) -> int:
        """One request per document for the kinds this platform takes; a supplier's answer
        to an order (ORS^O06, ``extra`` order_response) is the supplier's, not an order of
        the hospital's, and goes nowhere."""
        if event.kind is EventKind.PURCHASE_ORDER and _extra(event, "order_response"):
            return 0
        return 1 if event.kind in TRANSACTIONS and event.lines else 0

    def order_key(self, event: Event, unit: int) -> str:
        """A document's requests in order (an order before its cancellation, a receipt
        before its return): the return names its receipt in ``original_no``."""
        return f"doc|{_extra(event, 'original_no') or event.document_no or event.control_id}"

    @staticmethod
    def transaction(event: Event) -> str:
        """The transaction of ``event`` (a cancelled order is ``order.cancel``)."""
        if event.kind is EventKind.PURCHASE_ORDER and event.order_control in (
                OrderControl.CANCEL, OrderControl.DISCONTINUE):
            return CANCEL
        return TRANSACTIONS[event.kind]

    def missing(self, event: Event) -> dict[str, str]:
        """Mandatory fields the document cannot fill (``"delivery.receive lines.lotNo"``
        → source): the event is held until the data arrives."""
        if not self.units(event):
            return {}
        infno = self.transaction(event)
        return {f"{infno} {name}": why for name, why in
                missing_in_document(self._checks[infno], event, self.dest.field_defaults).items()}

    def build(self, event: Event, unit: int, msgid: str, now: float) -> Request:
        """The document for ``event``, from the field specifications.

        Raises:
            FieldMissing: the document lacks mandatory fields (the mirror rejects it with
                this reason rather than let the platform refuse it).
        """
        infno = self.transaction(event)
        data = build_document(infno, self.documents[infno], event, self.dest.field_defaults)
        body = orjson.dumps({"infno": infno, "msgid": msgid, "input": {"data": data}})
        sealed, headers = self.signer.seal(body, now)
        headers = {"Content-Type": "application/json;charset=utf-8",
                   "Authorization": f"Bearer {self.token}", **headers}
        return Request(path=f"/{infno}", body=sealed, headers=headers, infno=infno)

    async def prepare(self, session: aiohttp.ClientSession, now: float | None = None) -> None:
        """Fetch a token when there is none or it is about to expire.

        Raises:
            aiohttp.ClientError, TimeoutError, ValueError: the platform did not issue one;
                the mirror treats it as the platform being unavailable.
        """
        now = time.time() if now is None else now
        if self.token and now < self.token_expires - 30:
            return
        ts = str(int(now))
        payload = {"appCode": self.dest.app_code, "timestamp": ts,
                   "sign": token_sign(self.dest.app_code, ts, self._secret)}
        async with session.post(self.dest.url + self.dest.token_path, json=payload,
                                timeout=aiohttp.ClientTimeout(total=self.dest.timeout_s)) as r:
            answer = orjson.loads(await r.read())
        if r.status != 200 or answer.get("returnCode") != 0:
            raise ValueError(f"token refused: HTTP {r.status} {answer.get('returnMsg', '')}")
        data = answer.get("data") or {}
        self.token = str(data["accessToken"])
        self.token_expires = now + float(data.get("expiresIn", 3600))
        self.token_fetches += 1

    def interpret(self, status: int, body: bytes) -> Answer:
        """returnCode 0 or a repeated msgid is delivered; a stale token retries."""
        if status == 429:
            return Answer(Verdict.RETRY, "HTTP 429: too many requests", throttled=True)
        if status >= 500 or status in (408, 425):
            return Answer(Verdict.RETRY, f"HTTP {status}")
        if status == 401:
            self.token = ""
            return Answer(Verdict.RETRY, "HTTP 401: token refused")
        if status >= 400:
            return Answer(Verdict.REJECTED, f"HTTP {status}: {body[:200]!r}")
        try:
            answer = orjson.loads(body)
            code = int(answer["returnCode"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Answer(Verdict.RETRY, f"malformed answer: {body[:200]!r}")
        msg = str(answer.get("returnMsg") or "")
        data = answer.get("data")
        ref = str(data.get("platformRef", "")) if isinstance(data, dict) else ""
        if code == RETURN_CODES["ok"]:
            return Answer(Verdict.DELIVERED, platform_ref=ref)
        if code == RETURN_CODES["duplicate"]:
            return Answer(Verdict.DELIVERED, msg, ref, duplicate=True)
        if code == RETURN_CODES["token"]:
            self.token = ""
            return Answer(Verdict.RETRY, f"token expired: {msg}")
        if any(m in msg.lower() for m in THROTTLE_MARKERS):
            return Answer(Verdict.RETRY, f"returnCode {code}: {msg}", throttled=True)
        return Answer(Verdict.REJECTED, f"returnCode {code}: {msg}")

    def describe(self) -> dict[str, Any]:
        """Facts about the profile."""
        return {"profile": "zhaocai", "signing": self.dest.signing,
                "transactions": sorted({*TRANSACTIONS.values(), CANCEL})}
