"""The API against its own OpenAPI document, on a running gateway: schemathesis generates
requests for the read routes and the JSON-write routes from the document and checks that
no answer is a 5xx and that each conforms to what the document says (status, content type,
schema). Ingest routes (HL7, FHIR and vendor bodies: tests/fuzz) and CDS Hooks are not
in it; nor are the file uploads."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from helpers import HOSPITAL, HTTP_LISTENERS, free_port, write_config
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from serve_proc import spawn_serve, stop

from gateway.security.identity import hash_token, new_token

ADMIN = new_token()
MAX_EXAMPLES = 20
SKIPPED = ("/ingest/", "/fhir", "/cds-services", "/api/mappings/import",
           "/api/mappings/catalogs")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# requests that break the document (wrong types, missing fields): refused, never a 5xx
NEGATIVE_CHECKS = [not_a_server_error, content_type_conformance]


def _fuzzed(path: str, method: str) -> bool:
    if method != "GET" and path.startswith(SKIPPED):
        return False
    return not path.startswith(("/ingest/", "/cds-services"))


def _wait_http(url: str, proc: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"serve exited with status {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: not answering within {timeout:g} s") from None
            time.sleep(0.05)


def _fuzz(op: Any, mode: GenerationMode, checks: list[Any], base: str,
          auth: dict[str, str], seen: Counter[int]) -> None:
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=base, headers=auth, checks=checks,
                                          timeout=10)
        seen[response.status_code] += 1

    run()


def test_the_api_answers_as_its_document_says(tmp_path: Path) -> None:
    mllp, http, sim = free_port(), free_port(), free_port()
    listeners = [{"name": "his-mllp", "adapter": "hl7v2", "transport": "mllp",
                  "host": "127.0.0.1", "port": mllp,
                  "config": {"facilities": {"ZJSRMYY": HOSPITAL}}}, *HTTP_LISTENERS]
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http, simulator_port=sim,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                       listeners=listeners, security={"identities": [
                           {"name": "ops", "role": "admin", "token_sha256": hash_token(ADMIN)}]})
    proc = spawn_serve(cfg, tmp_path / "stderr.log")
    base = f"http://127.0.0.1:{http}"
    failures: list[str] = []
    seen: Counter[int] = Counter()
    try:
        _wait_http(f"{base}/healthz", proc)
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        auth = {"Authorization": f"Bearer {ADMIN}"}
        operations = [r.ok() for r in schema.get_all_operations()]
        fuzzed = [op for op in operations if _fuzzed(op.path, op.method.upper())]
        assert len(fuzzed) > 25
        for op in fuzzed:
            for mode, checks in ((GenerationMode.POSITIVE, CHECKS),
                                 (GenerationMode.NEGATIVE, NEGATIVE_CHECKS)):
                try:
                    _fuzz(op, mode, checks, base, auth, seen)
                except hypothesis.errors.Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to break: no inputs
                except (Exception, BaseExceptionGroup) as exc:  # every operation's findings
                    failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {exc}")
    finally:
        stop(proc)
    if failures:
        pytest.fail("\n\n".join(failures)[:20000])
    # the requests reached the handlers, as the administrator: none was refused at the door
    assert seen[401] == seen[403] == 0, seen
    assert sum(n for status, n in seen.items() if status < 300) > 200, seen
    assert seen[400] > 50, seen
