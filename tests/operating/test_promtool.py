"""The alerting rules are valid, their unit tests pass, and the scrape configuration loads."""

from __future__ import annotations

import subprocess

from operating_helpers import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_rules,
    require_binary,
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = _promtool("test", "rules", str(ALERT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_scrape_configuration() -> None:
    done = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_holds_for_a_while_and_says_what_to_do() -> None:
    names = set()
    for rule in alert_rules():
        names.add(rule["alert"])
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"
        runbook = rule["annotations"]["runbook"]
        assert runbook.strip() and "\n" not in runbook.strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
    tested = ALERT_TESTS.read_text("utf-8")
    for name in names:
        # each alert has a test where it fires (exp_alerts listed) and one where it must not
        assert f"alertname: {name}\n    exp_alerts: []" in tested, f"{name}: no negative case"
        assert f"alertname: {name}\n    exp_alerts:\n" in tested, f"{name}: no firing case"
