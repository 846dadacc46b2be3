"""Prometheus metrics, one registry per running gateway (tests run several)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Every metric the gateway exports under the ``jcgw_`` prefix."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.received = Counter("jcgw_messages_received", "Messages received",
                                ["adapter", "type"], registry=r)
        self.acknowledged = Counter("jcgw_messages_acknowledged",
                                    "Messages acknowledged positively (committed or duplicate)",
                                    ["adapter", "type"], registry=r)
        self.rejected = Counter("jcgw_messages_rejected",
                                "Messages answered with a NAK (AE/AR, 4xx/5xx)",
                                ["adapter", "type", "status"], registry=r)
        self.duplicates = Counter("jcgw_messages_duplicate",
                                  "Messages seen before from the same sender",
                                  ["adapter", "type"], registry=r)
        self.quarantined = Counter("jcgw_quarantined", "Byte sequences kept in quarantine",
                                   ["adapter"], registry=r)
        self.retention_purged = Counter(
            "jcgw_retention_purged", "Raw messages (their bytes) and quarantined messages "
            "purged after their retention", ["what"], registry=r)
        self.control_id_reused = Counter(
            "jcgw_control_id_reused", "Messages refused for reusing a control id of the "
            "same sender with other content (quarantined)", ["adapter"], registry=r)
        self.events_held = Counter("jcgw_events_held", "Events held for unmapped lines",
                                   ["hospital"], registry=r)
        self.events_incomplete = Counter(
            "jcgw_events_incomplete", "Events held because a platform's mandatory field has "
            "no value (by destination and '<transaction> <field>')", ["destination", "field"],
            registry=r)
        self.internal_errors = Counter(
            "jcgw_internal_errors", "Faults of the gateway's own, each logged with its "
            "traceback (the sender was told to send again, or got a 5xx)", ["where"],
            registry=r)
        self.parsed_in_worker = Counter("jcgw_parsed_in_worker",
                                        "Big messages parsed in a worker process",
                                        ["adapter"], registry=r)
        self.http_refused = Counter("jcgw_http_requests_refused",
                                    "HTTP requests refused by authentication or role",
                                    ["reason"], registry=r)
        self.mllp_refused = Counter(
            "jcgw_mllp_connections_refused", "MLLP connections refused or cut off by the "
            "gateway (reason: not_allowed, max_connections, max_per_source, tls_handshake, "
            "unknown_certificate, role, idle, frame_deadline)", ["listener", "reason"],
            registry=r)
        self.mllp_open = Gauge("jcgw_mllp_connections_open", "Open MLLP connections",
                               ["listener"], registry=r)
        self.ledger_poison = Counter("jcgw_ledger_poison_events",
                                     "Events the ledger could not fold, set aside (poison)",
                                     registry=r)
        self.ledger_provisional = Gauge(
            "jcgw_ledger_provisional_deadlines",
            "Deadlines counted on weekdays alone: their year has no working-day calendar file",
            registry=r)
        self.outbox_depth = Gauge("jcgw_outbox_depth", "Outbox rows waiting for delivery",
                                  ["destination"], registry=r)
        self.outbox_oldest = Gauge("jcgw_outbox_oldest_age_seconds",
                                   "Age of the oldest waiting outbox row",
                                   ["destination"], registry=r)
        self.dead_letters = Gauge("jcgw_dead_letters", "Outbox rows given up (dead letters)",
                                  ["destination"], registry=r)
        self.held_events = Gauge("jcgw_held_events", "Events waiting for a crosswalk entry",
                                 registry=r)
        self.mirror_latency = Histogram(
            "jcgw_mirror_latency_seconds", "Commit to platform acknowledgement",
            ["destination"], registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
        self.deliveries = Counter("jcgw_deliveries", "Delivery attempts by outcome",
                                  ["destination", "outcome"], registry=r)
        self.mirror_in_flight = Gauge("jcgw_mirror_in_flight",
                                      "Requests to the platform in flight now",
                                      ["destination"], registry=r)
        self.mirror_concurrency = Gauge(
            "jcgw_mirror_concurrency_limit", "Requests allowed in flight now (the adaptive "
            "limit, at most the destination's concurrency)", ["destination"], registry=r)
        self.mirror_rate = Gauge(
            "jcgw_mirror_rate_limit_per_second", "The pace requests are sent at now, per "
            "second (0: no limit)", ["destination"], registry=r)
        self.mirror_throttled = Counter(
            "jcgw_mirror_throttled", "Answers saying the gateway calls too often (HTTP 429, "
            "'too frequent')", ["destination"], registry=r)
        self.mirror_units = Gauge(
            "jcgw_mirror_units", "Outbox units by state; received = delivered + queued + "
            "dead_lettered + held_unmapped", ["destination", "state"], registry=r)
        self.commit_batch = Histogram("jcgw_store_commit_batch_size",
                                      "Messages per group commit", registry=r,
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self._add_operating(r)

    def labelled(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: every message asks for the same few
        children, and ``labels()`` validates and locks on each call."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def _add_operating(self, r: CollectorRegistry) -> None:
        """The operator's view: latencies, circuits, warnings, 集采 progress, store files.
        The gauges among them are set by ``gateway.gauges`` from the statistics task."""
        self.parse_seconds = Histogram(
            "jcgw_parse_duration_seconds", "Parsing one message (the adapter and the "
            "message limits), in the event loop", ["adapter"], registry=r,
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                     0.05, 0.1, 0.25))
        self.commit_seconds = Histogram(
            "jcgw_commit_duration_seconds", "From a message joining the group commit to "
            "its transaction being durable (waiting for the group in flight included)",
            registry=r, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25, 0.5, 1, 2.5, 5))
        self.circuit_state = Gauge(
            "jcgw_circuit_state", "Circuit breaker per destination: 0 closed, 1 half-open "
            "(probing), 2 open (the platform looks down)", ["destination"], registry=r)
        self.warnings_fired = Counter(
            "jcgw_warnings_fired", "集采 warnings given to prescribers, by rule and channel "
            "(ack: HL7 v2 ERR on the ACK, cds: CDS Hooks card)", ["rule", "channel"],
            registry=r)
        self.warning_feedback = Counter(
            "jcgw_warning_feedback", "Prescribers' answers to CDS warning cards by rule "
            "(outcome: accepted, overridden)", ["rule", "outcome"], registry=r)
        self.contract_completion = Gauge(
            "jcgw_contract_completion_ratio", "Agreed-volume completion of a 集采 contract "
            "(received ÷ agreed volume)", ["hospital", "contract"], registry=r)
        self.contract_time_progress = Gauge(
            "jcgw_contract_time_progress_ratio", "Time progress (序时进度) of a 集采 "
            "contract's cycle", ["hospital", "contract"], registry=r)
        self.store_size = Gauge("jcgw_store_size_bytes",
                                "Size of the SQLite store's database file", registry=r)
        self.store_wal_size = Gauge("jcgw_store_wal_size_bytes",
                                    "Size of the SQLite store's write-ahead log", registry=r)
        self.build_info = Gauge(
            "jcgw_build_info", "Always 1: the running version, and whether the parsing "
            "hot path is compiled or pure Python", ["version", "native"], registry=r)
