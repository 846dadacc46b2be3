"""One exception root; each family is named by what the caller does next."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GatewayError",
    "MessageRejected",
    "StoreError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class MessageRejected(GatewayError, ValueError):
    """The message cannot be taken: answer NAK (AE/AR, 4xx) and quarantine the bytes.

    ``code`` is an HL7 table 0357 error code; ``location`` names the segment/field
    (e.g. ``RXD-2``) or the element path for FHIR/XML.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str = "207",
        location: str = "",
        reject: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.location = location
        # AR (reject: the message itself is malformed / unsupported) vs AE (application error)
        self.reject = reject


class StoreError(GatewayError, OSError):
    """The store could not commit: the sender must get AE / 5xx, never AA."""


class ConfigError(GatewayError):
    """The configuration is invalid; the gateway refuses to start.

    ``problems`` lists every problem at once as ``file: key: message (fix)``.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems
