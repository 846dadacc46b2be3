"""Configuration: one YAML file validated at start into typed, frozen models.

Every problem is reported at once as ``file: key: message (fix)``. String values
may name environment variables as ``${NAME}`` (or ``${NAME:-default}``), which is
how secrets stay out of the file; secret fields are ``SecretStr`` and never logged.
"""

from __future__ import annotations

import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from canonical.errors import ConfigError
from canonical.model import PATIENT_FIELDS, PATIENT_IDENTIFIERS

__all__ = [
    "ROLES",
    "DestinationConfig",
    "GatewayConfig",
    "HospitalConfig",
    "HttpConfig",
    "IdentityConfig",
    "LedgerThresholds",
    "ListenerConfig",
    "Role",
    "SecurityConfig",
    "SimulatorConfig",
    "StoreConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
]

HOSPITAL_CODE = r"^[A-Z0-9]{12}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HospitalConfig(_Frozen):
    """A hospital (定点医药机构) served by this gateway."""

    code: str = Field(pattern=HOSPITAL_CODE, description="12-character 定点医药机构编号")
    name: str
    admdvs: str = Field(default="", description="medical-insurance area code (就医地医保区划)")
    hash_secret: SecretStr | None = Field(
        default=None, description="key for hashing patient identifiers (e.g. ${JCGW_H1_HASH})")


class StoreConfig(_Frozen):
    """Where events and the outbox are kept."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path = Path("var/gateway.db")
    postgres_dsn: SecretStr | None = None
    group_commit_max: int = Field(default=2000, ge=1, description="most messages per commit")
    postgres_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]*$")
    postgres_pool_max: int = Field(default=4, ge=2, le=64)
    lease_s: float = Field(
        default=30.0, gt=0,
        description="how long a replica holds outbox groups it claimed; a dead replica's "
                    "groups are taken over after this")
    raw_retention_days: int = Field(
        default=180, ge=0,
        description="raw bytes of a message are dropped this long after receipt once all "
                    "its events are delivered (0: kept forever)")
    quarantine_retention_days: int = Field(
        default=90, ge=0, description="quarantined messages are deleted after this "
                                      "(0: kept forever)")
    quarantine_max_bytes: int = Field(
        default=1 << 20, ge=1024,
        description="bytes kept of one quarantined message; the rest is cut, with a marker "
                    "and the original size")

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreConfig:
        if self.backend == "postgres" and self.postgres_dsn is None:
            raise ValueError("backend 'postgres' needs postgres_dsn (e.g. ${JCGW_PG_DSN})")
        return self


class TlsConfig(_Frozen):
    """TLS on a listener (standard library ``ssl``); with ``client_ca_file`` every client
    must present a certificate signed by that CA (mutual TLS)."""

    cert_file: Path = Field(description="the listener's certificate chain (PEM)")
    key_file: Path = Field(description="its private key (PEM)")
    client_ca_file: Path | None = Field(
        default=None, description="CA(s) whose client certificates are accepted (PEM); "
                                  "set: clients without a valid certificate are refused")


class ListenerConfig(_Frozen):
    """A port on which an adapter receives messages."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    adapter: str
    transport: Literal["mllp", "http"] = "mllp"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535, description="MLLP port")
    max_frame_bytes: int = Field(default=1_048_576, ge=1024)
    config: dict[str, Any] = Field(default_factory=dict)
    tls: TlsConfig | None = Field(default=None, description="MLLP over TLS (mTLS with "
                                                            "client_ca_file)")
    allow_from: tuple[str, ...] = Field(
        default=(), description="MLLP: source addresses or networks (CIDR) allowed to "
                                "connect; empty: any")
    max_connections: int = Field(default=256, ge=1, description="MLLP: open connections")
    max_connections_per_source: int = Field(
        default=32, ge=1, description="MLLP: open connections from one address")
    idle_timeout_s: float = Field(
        default=600.0, gt=0, description="MLLP: a connection silent this long is closed")
    frame_deadline_s: float = Field(
        default=30.0, gt=0, description="MLLP: a frame once started must be complete within "
                                        "this (slow senders are cut off)")

    @field_validator("allow_from", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # from an environment variable: "10.20.1.15,10.20.8.0/24"
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _port_for_mllp(self) -> ListenerConfig:
        if self.transport == "mllp" and self.port is None:
            raise ValueError("an MLLP listener needs a port (e.g. 2575)")
        return self


class HttpConfig(_Frozen):
    """The HTTP side: health, metrics, FHIR, vendor XML/JSON, admin API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=10_485_760, ge=1024)
    api_token: SecretStr | None = Field(
        default=None,
        description="deprecated: one admin token (use security.identities)")
    tls: TlsConfig | None = Field(default=None, description="HTTPS (mTLS with client_ca_file)")
    allow_plaintext: bool = Field(
        default=False, description="allow plain HTTP beyond loopback (only behind a "
                                   "TLS-terminating proxy on the same host)")
    public_probes: bool = Field(
        default=True, description="/healthz, /readyz and /metrics answer without credentials")
    read_timeout_s: float = Field(
        default=60.0, gt=0, description="a request's headers and body must arrive within this")


ROLES = ("sender", "pharmacist", "procurement", "admin", "auditor")
Role = Literal["sender", "pharmacist", "procurement", "admin", "auditor"]


class IdentityConfig(_Frozen):
    """Someone or something allowed to call the gateway, with its role.

    A client proves the identity with a bearer token (only its SHA-256 is configured:
    ``jicai-gateway token new``) or a TLS client certificate whose subject CN is
    ``certificate_cn``.
    """

    name: str = Field(pattern=r"^\w[\w.@-]{0,63}$")
    role: Role
    token_sha256: tuple[str, ...] = Field(
        default=(), description="SHA-256 (hex) of each token valid for this identity "
                                "(two during a rotation)")
    certificate_cn: str | None = Field(default=None, min_length=1)
    hospitals: tuple[str, ...] = Field(
        default=(), description="定点医药机构编号 it may act for; empty: all")

    @model_validator(mode="before")
    @classmethod
    def _one_or_many_hashes(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("token_sha256"), str):
            data = {**data, "token_sha256": (data["token_sha256"],)}
        return data

    @model_validator(mode="after")
    def _hashes_and_hospitals(self) -> IdentityConfig:
        problems = [f"token_sha256 {h[:12]}…: 64 hex digits (jicai-gateway token hash)"
                    for h in self.token_sha256 if not re.fullmatch(r"[0-9a-f]{64}", h)]
        problems += [f"hospitals: {h!r} is not a 12-character 定点医药机构编号"
                     for h in self.hospitals if not re.fullmatch(HOSPITAL_CODE, h)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SecurityConfig(_Frozen):
    """Who may call the gateway. With no identity, only loopback listeners may start."""

    identities: tuple[IdentityConfig, ...] = ()
    identities_file: Path | None = Field(
        default=None, description="more identities (YAML list, same fields), read again "
                                  "when the file changes: tokens rotate without a restart")
    demo: bool = Field(
        default=False, description="demo mode: the bundled simulator stands in for the "
                                   "platform beyond loopback; said in the log and /readyz")


class IngestLimits(_Frozen):
    """What one message may carry, whatever its format (frames and bodies are also bounded
    in bytes: ``listeners[].max_frame_bytes``, ``http.max_body_bytes``). A message beyond
    a limit is refused (AR / 4xx) naming it, so one message cannot take the gateway's time
    or memory from everyone else."""

    max_lines: int = Field(default=5_000, ge=1,
                           description="item lines in one message, all events together")
    max_trace_codes: int = Field(default=20_000, ge=1,
                                 description="traceability codes on one line")
    long_trace_codes: bool = Field(
        default=False,
        description="also accept GS1 element strings ((01) GTIN, (17) expiry, (10) lot, "
                    "(21) serial; parenthesised or with FNC1 separators) and other codes of "
                    "20-100 characters as traceability codes; off: only the standard "
                    "20 digits starting with 8. Either way a malformed code refuses the "
                    "message (AR / 4xx) naming the line and the code's position")
    max_quantity: float = Field(default=10_000_000, gt=0,
                                description="absolute quantity on one line")
    max_price: float = Field(default=10_000_000, gt=0, description="yuan per unit")
    parse_offload_bytes: int = Field(
        default=65_536, ge=0,
        description="messages of this size or more are parsed in a worker process, so that "
                    "none holds the event loop (0: parse every message in the loop)")
    parse_workers: int = Field(default=1, ge=1, le=16,
                               description="worker processes for big messages")
    parse_timeout_s: float = Field(default=30, gt=0,
                                   description="a parse in a worker taking longer is stopped "
                                               "and the message refused")


class ExtraFieldConfig(_Frozen):
    """A field a province adds to a platform body (``destinations[].extra_fields``)."""

    name: str = Field(pattern=r"^(lines\.)?[A-Za-z][A-Za-z0-9_]{0,63}$",
                      description="the field's name in the body (招采: lines.<name> for a "
                                  "line field)")
    source: str = Field(description="where the value comes from: line.<attr>, event.<attr>, "
                                    "party.<role>.<id|name>, extra.<key>, line_extra.<key>, "
                                    "derived.<name> or config (field_defaults only)")
    type: Literal["text", "date", "datetime", "decimal", "flag"] = "text"
    length: int = Field(default=50, ge=1, le=4000, description="text: at most so many "
                                                               "characters")
    scale: int = Field(default=4, ge=0, le=8, description="decimal: places after the point")
    codes: tuple[str, ...] = Field(default=(), description="text: the values allowed")
    mandatory: bool = False
    default: str | None = Field(default=None, description="used when the source is empty")


class DestinationConfig(_Frozen):
    """A platform the outbox mirrors events to."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    profile: Literal["nhsa-inventory", "zhaocai"] = "nhsa-inventory"
    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=20, ge=1, description="tries before a dead letter")
    max_age_s: float | None = Field(
        default=None, gt=0,
        description="also a dead letter when the event is still failing this long after its "
                    "first failed try (e.g. 259200 for three days); tries while the platform "
                    "is down for everyone (circuit open) never start the clock")
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    concurrency: int = Field(
        default=16, ge=1, le=256,
        description="requests in flight to this platform at most (the adaptive limit moves "
                    "below it when latency or errors rise, and back up after)")
    hospital_concurrency: int | None = Field(
        default=None, ge=1, le=256,
        description="requests in flight for one hospital at most (default: concurrency), so "
                    "one hospital's backlog leaves room for the others")
    rate_limit_per_s: float | None = Field(
        default=None, gt=0,
        description="requests per second the platform allows this deployment: the gateway "
                    "paces its requests to stay under it in every second (default: no limit; "
                    "the platform's 429 or 'too frequent' answers slow it down in any case)")
    adaptive_concurrency: bool = Field(
        default=True, description="lower the in-flight limit when the platform's latency or "
                                  "errors rise, raise it again as it recovers")
    batch_size: int = Field(default=500, ge=1)
    recer_sys_code: str = "JCGW"
    infver: str = "V1.0"
    opter: str = "jcgw"
    opter_name: str = "集采网关"
    patient_fields: tuple[str, ...] = Field(
        default=(), description="patient fields this platform needs (default: none); "
                                "identifiers among them leave as HMAC-SM3 under the "
                                "hospital's hash_secret")
    identifiers_in_clear: bool = Field(
        default=False, description="send the listed patient identifiers in clear (only "
                                   "for a platform that needs them so)")
    hash_identifiers: bool = Field(
        default=False, description="the platform takes hashed data only: identifiers "
                                   "hashed (the default anyway) and names never sent")
    app_secret: SecretStr | None = None
    signing: Literal["none", "hmac-sha256", "hmac-sm3", "sm2"] = "none"
    paas_id: str = Field(default="", description="x-tif-paasid issued by the platform")
    sm4_key: SecretStr | None = Field(
        default=None, description="32 hex digits: encrypt request bodies with SM4")
    sm2_private_key: SecretStr | None = Field(default=None, description="64 hex digits")
    field_defaults: dict[str, str] = Field(
        default_factory=dict,
        description="a value for a platform field the messages do not carry, by field "
                    "name (nhsa-inventory: e.g. hi_feesetl_type, inv_chg_type; zhaocai: a "
                    "header or line field such as reason), used when the event has none")
    mandatory: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="optional interface fields this province requires, by transaction "
                    "(3501-3507; 招采: order.submit … with lines.<field> for a line field): "
                    "an event that cannot fill one is held naming it")
    extra_fields: dict[str, tuple[ExtraFieldConfig, ...]] = Field(
        default_factory=dict,
        description="fields a province adds to a transaction's body, typed and checked like "
                    "the interface's own")
    app_code: str = Field(default="", description="招采 platform application code (token)")
    token_path: str = Field(default="/token", description="招采 token endpoint under url")
    idle_poll_s: float = Field(
        default=1.0, gt=0, description="how often an idle worker looks for rows committed "
                                       "by other replicas (PostgreSQL replicas are also woken "
                                       "at once by LISTEN/NOTIFY)")
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive platform failures that open the circuit")
    breaker_cooldown_s: float = Field(default=1.0, gt=0)
    breaker_cooldown_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _known_patient_fields_and_keys(self) -> DestinationConfig:
        problems = []
        unknown = sorted(set(self.patient_fields) - set(PATIENT_FIELDS))
        if unknown:
            problems.append(f"patient_fields: unknown {unknown}; choose from "
                            f"{', '.join(PATIENT_FIELDS)}")
        if self.signing in ("hmac-sha256", "hmac-sm3") and self.app_secret is None:
            problems.append(f"signing {self.signing!r} needs app_secret (e.g. ${{JCGW_SECRET}})")
        if self.signing == "sm2" and self.sm2_private_key is None:
            problems.append("signing 'sm2' needs sm2_private_key (e.g. ${JCGW_SM2_KEY})")
        if self.sm4_key is not None and not re.fullmatch(r"[0-9a-fA-F]{32}",
                                                         self.sm4_key.get_secret_value()):
            problems.append("sm4_key must be 32 hex digits")
        if self.profile == "zhaocai" and (not self.app_code or self.app_secret is None):
            problems.append("profile 'zhaocai' needs app_code and app_secret for its token")
        if self.hash_identifiers and self.identifiers_in_clear:
            problems.append("hash_identifiers and identifiers_in_clear contradict each other")
        if self.mandatory or self.extra_fields or self.field_defaults:
            from gateway.platforms.custom_fields import config_problems

            problems.extend(config_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SimulatorConfig(_Frozen):
    """The bundled platform simulator, started alongside the gateway for demos."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)


class LedgerThresholds(_Frozen):
    """The documents' figures the ledger measures a hospital against (ratios 0–1)."""

    online_rate_drug: Decimal = Field(
        default=Decimal("0.90"), gt=0, le=1, description="R5: online purchase rate of drugs")
    online_rate_consumable: Decimal = Field(
        default=Decimal("0.80"), gt=0, le=1, description="R5: of high-value consumables")
    high_value_prefixes: tuple[str, ...] = Field(
        default=("C",), min_length=1,
        description="national consumable code prefixes counted as high-value (C, C01 …)")
    demand_threshold: Decimal = Field(
        default=Decimal("0.80"), gt=0, le=1,
        description="R9: reported demand ÷ last year's purchases")
    prepayment_ratio: Decimal = Field(
        default=Decimal("0.30"), gt=0, le=1, description="R15: the fund's prepayment share")
    agreed_ratio_min: Decimal = Field(
        default=Decimal("0.50"), gt=0, le=1, description="R1: the agreed ratio's lower bound")
    agreed_ratio_max: Decimal = Field(
        default=Decimal("0.80"), gt=0, le=1, description="R1: the agreed ratio's upper bound")
    price_blue_max: Decimal = Field(
        default=Decimal("1.00"), gt=0,
        description="R10: blue up to this multiple of the reference")
    price_yellow_max: Decimal = Field(
        default=Decimal("1.20"), gt=0,
        description="R10: yellow up to this multiple; red above")
    price_reference: Literal["median", "min"] = Field(
        default="median", description="R10: the reference of the hospitals' negotiated prices")
    trace_codes_mandatory_from: date = Field(
        default=date(2025, 7, 1),
        description="the first day a drug sale without traceability codes is flagged in the "
                    "ledger report (the national date; a province may set its own)")

    @field_validator("high_value_prefixes")
    @classmethod
    def _consumable_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if not re.fullmatch(r"C\d{0,19}", p)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not the start of a national "
                             "consumable code (C followed by digits, e.g. C01)")
        return value

    @model_validator(mode="after")
    def _ordered_bounds(self) -> LedgerThresholds:
        problems = []
        if self.agreed_ratio_min > self.agreed_ratio_max:
            problems.append(f"agreed_ratio_min {self.agreed_ratio_min} is above "
                            f"agreed_ratio_max {self.agreed_ratio_max}")
        if self.price_blue_max > self.price_yellow_max:
            problems.append(f"price_blue_max {self.price_blue_max} is above "
                            f"price_yellow_max {self.price_yellow_max}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LedgerConfig(_Frozen):
    """The 集采 ledger: contracts, progress, deadlines, warning rules."""

    enabled: bool = True
    # the ledger lives in the store; an earlier release's own ledger file is read once, at
    # the first start, to import it (then renamed ledger.db.imported)
    path: Path | None = Field(
        default=None, description="only read once to import an old ledger file; "
                                  "default: <data_dir>/ledger.db")
    calendar_dir: Path = Path("config/calendar")
    rules: Path = Path("config/rules.yaml")
    dosage_forms: Path = Field(
        default=Path("config/dosage_forms.yaml"),
        description="dosage-form groups (剂型分组): which forms of a generic name are one "
                    "contract")
    contracts: Path | None = Field(default=None, description="CSV/XLSX imported at start")
    thresholds: LedgerThresholds = LedgerThresholds()


class CdsClientConfig(_Frozen):
    """A prescribing system allowed to call the CDS Hooks service."""

    iss: str = Field(min_length=1)
    jwks_file: Path | None = Field(default=None, description="the client's public JWK set")
    jwks_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="or where the client publishes it (the only jku accepted); fetched, "
                    "cached and fetched again when the client rotates its key")
    hospital_id: str = Field(default="", pattern=r"^([A-Z0-9]{12})?$")
    hospitals: tuple[str, ...] = ()
    fhir_servers: tuple[Annotated[str, Field(pattern=r"^https?://[^?#]+$")], ...] = Field(
        default=(), description="base URLs of the client's FHIR servers: a missing prefetch "
                                "is fetched (with the client's fhirAuthorization) only from "
                                "one of these, never from another fhirServer")

    @model_validator(mode="after")
    def _one_key_source(self) -> CdsClientConfig:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of jwks_file and jwks_url")
        return self


class CdsConfig(_Frozen):
    """The CDS Hooks 2.0 service at /cds-services."""

    enabled: bool = True
    public_base_url: str = Field(default="http://127.0.0.1:8080/cds-services",
                                 pattern=r"^https?://")
    require_auth: bool = True
    default_hospital_id: str = Field(default="", pattern=r"^([A-Z0-9]{12})?$")
    clients: tuple[CdsClientConfig, ...] = ()


class WebhookConfig(_Frozen):
    """A system that receives signed 集采 warnings and ledger alerts."""

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    events: tuple[Literal["prescription.warning", "deadline.overdue"], ...] = ()


class CrosswalkConfig(_Frozen):
    """Where the crosswalk (对码) comes from at start."""

    csv: Path | None = None


class GatewayConfig(_Frozen):
    """The whole configuration."""

    data_dir: Path = Path("var")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object a line, for a log collector (journald, Loki, Elasticsearch)
    log_format: Literal["text", "json"] = "text"
    # on SIGTERM: how long open connections and commits in flight get before the exit
    shutdown_grace_s: float = Field(10.0, gt=0, le=600)
    hospitals: tuple[HospitalConfig, ...] = ()
    store: StoreConfig = StoreConfig()
    listeners: tuple[ListenerConfig, ...] = ()
    http: HttpConfig = HttpConfig()
    limits: IngestLimits = IngestLimits()
    destinations: tuple[DestinationConfig, ...] = ()
    simulator: SimulatorConfig = SimulatorConfig()
    crosswalk: CrosswalkConfig = CrosswalkConfig()
    ledger: LedgerConfig = LedgerConfig()
    cds: CdsConfig = CdsConfig()
    webhooks: tuple[WebhookConfig, ...] = ()
    security: SecurityConfig = SecurityConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        problems = []
        for kind, names in (("listener", [x.name for x in self.listeners]),
                            ("destination", [x.name for x in self.destinations]),
                            ("hospital", [x.code for x in self.hospitals])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                problems.append(f"{kind} names must be unique, repeated: {', '.join(dup)}")
        ports = [x.port for x in self.listeners if x.port]
        if len(ports) != len(set(ports)):
            problems.append("two listeners use the same port")
        problems.extend(self._hash_secrets_missing())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _hash_secrets_missing(self) -> list[str]:
        """Destinations that would hash identifiers for a hospital without a hash_secret:
        each of its events would become a dead letter, so the gateway does not start."""
        unkeyed = [h for h in self.hospitals if h.hash_secret is None]
        problems: list[str] = []
        for d in self.destinations:
            hashed = sorted(PATIENT_IDENTIFIERS.intersection(d.patient_fields))
            if not hashed or d.identifiers_in_clear:
                continue
            problems.extend(
                f"destination {d.name!r} sends patient identifiers ({', '.join(hashed)}) "
                f"hashed, but hospital {h.code} ({h.name}) has no hash_secret: set "
                f"hospitals[{h.code}].hash_secret (e.g. ${{JCGW_HASH_SECRET_{h.code}}}), or "
                f"identifiers_in_clear: true on the destination if the platform needs them "
                "in clear" for h in unkeyed)
        return problems

    def hospital_name(self, code: str) -> str:
        """The configured name of a hospital, or empty."""
        return next((h.name for h in self.hospitals if h.code == code), "")


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_FIXES = {
    "missing": "add this key",
    "extra_forbidden": "remove it or check its spelling",
    "string_pattern_mismatch": "use the format shown",
    "literal_error": "use one of the allowed values",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
    "decimal_parsing": "write a number",
    "less_than_equal": "write a share such as 0.9 for 90 %",
    "bool_parsing": "write true or false",
}


def _expand(value: Any, path: str, problems: list[str], file: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(f"{file}: {path}: environment variable {name} is not set "
                            f"(export {name}=… or give a default as ${{{name}:-value}})")
            return ""
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), problems, file)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", problems, file) for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_config(data: Any, file: str = "<config>", base_dir: Path | None = None) -> GatewayConfig:
    """Validate already-loaded YAML data.

    Raises:
        ConfigError: with every problem found, each naming file, key and fix.
    """
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: (top level): expected a mapping of keys, "
                           f"got {type(data).__name__}"])
    data = _expand(data, "", problems, file)
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            fix = _FIXES.get(err["type"], "")
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{file}: {_loc(err['loc'])}: {msg}" + (f" ({fix})" if fix else ""))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    _check_adapters(cfg, file)
    return cfg


def _resolve_paths(cfg: GatewayConfig, base: Path) -> GatewayConfig:
    """Relative paths in the file are relative to the working directory, as operators expect."""
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (Path.cwd() / p)
    store = cfg.store.model_copy(update={"sqlite_path": fix(cfg.store.sqlite_path)})
    cw = cfg.crosswalk
    if cw.csv is not None:
        cw = cw.model_copy(update={"csv": fix(cw.csv)})
    led = cfg.ledger
    led = led.model_copy(update={
        "calendar_dir": fix(led.calendar_dir), "rules": fix(led.rules),
        "dosage_forms": fix(led.dosage_forms), "path": fix(led.path) if led.path else None,
        "contracts": fix(led.contracts) if led.contracts else None})
    cds = cfg.cds.model_copy(update={"clients": tuple(
        c.model_copy(update={"jwks_file": None if c.jwks_file is None else fix(c.jwks_file)})
        for c in cfg.cds.clients)})
    def fix_tls(t: TlsConfig | None) -> TlsConfig | None:
        return None if t is None else t.model_copy(update={
            "cert_file": fix(t.cert_file), "key_file": fix(t.key_file),
            "client_ca_file": None if t.client_ca_file is None else fix(t.client_ca_file)})
    listeners = tuple(x.model_copy(update={"tls": fix_tls(x.tls)}) for x in cfg.listeners)
    http = cfg.http.model_copy(update={"tls": fix_tls(cfg.http.tls)})
    sec = cfg.security
    if sec.identities_file is not None:
        sec = sec.model_copy(update={"identities_file": fix(sec.identities_file)})
    return cfg.model_copy(update={"data_dir": fix(cfg.data_dir), "store": store, "crosswalk": cw,
                                  "ledger": led, "cds": cds, "listeners": listeners,
                                  "http": http, "security": sec})


def _check_adapters(cfg: GatewayConfig, file: str) -> None:
    from adapters.registry import UnknownAdapterError, resolve

    problems = []
    for i, listener in enumerate(cfg.listeners):
        key = f"{file}: listeners[{i}]"
        try:
            cls = resolve(listener.adapter)
        except UnknownAdapterError as exc:
            problems.append(f"{key}.adapter: {exc}")
            continue
        except ImportError as exc:
            problems.append(f"{key}.adapter: cannot import {listener.adapter!r}: {exc}")
            continue
        if cls.transport != listener.transport:
            problems.append(f"{key}.transport: adapter {listener.adapter!r} speaks "
                            f"{cls.transport}, not {listener.transport} (set transport: "
                            f"{cls.transport})")
        try:
            cls.config_model.model_validate(listener.config)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(f"{key}.config.{_loc(err['loc'])}: "
                                f"{err['msg'].removeprefix('Value error, ')}")
    files: list[tuple[str, Path | None]] = [("crosswalk.csv", cfg.crosswalk.csv)]
    if cfg.ledger.enabled:
        files += [("ledger.calendar_dir", cfg.ledger.calendar_dir),
                  ("ledger.rules", cfg.ledger.rules), ("ledger.contracts", cfg.ledger.contracts),
                  ("ledger.dosage_forms", cfg.ledger.dosage_forms)]
    if cfg.cds.enabled:
        files += [(f"cds.clients[{i}].jwks_file", c.jwks_file)
                  for i, c in enumerate(cfg.cds.clients) if c.jwks_file is not None]
    for key, path in files:
        if path is not None and not Path(path).exists():
            problems.append(f"{file}: {key}: {path} does not exist (give an existing path)")
    if problems:
        raise ConfigError(problems)


def load_config(path: Path | str) -> GatewayConfig:
    """Load and validate a YAML configuration file.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid; every problem is listed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read the configuration file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) \
            from None
    return parse_config(data, str(p), p.parent)
