"""Configuration: every problem reported at once with file, key and fix; secrets from env."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT, config_dict

from adapters.vendor import xml_walk
from canonical.errors import ConfigError
from gateway.cli.main import main
from gateway.config import load_config, parse_config


def test_shipped_sample_configuration_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "gateway.yaml")
    assert cfg.listeners[0].adapter == "hl7v2"
    assert cfg.simulator.enabled


def test_every_problem_is_reported_at_once_with_key_and_fix(tmp_path: Path) -> None:
    data = config_dict(tmp_path, mllp_port=2575, http_port=8080, platform_url="http://x/")
    data["hospitals"][0]["code"] = "H3301"  # too short
    data["listeners"][0]["transport"] = "tcp"
    data["destinations"][0]["url"] = "ftp://platform"
    data["destinations"][0]["max_atempts"] = 3  # misspelt
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    problems = e.value.problems
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "gw.yaml: hospitals[0].code" in text
    assert "gw.yaml: listeners[0].transport" in text and "allowed values" in text
    assert "gw.yaml: destinations[0].url" in text
    assert "gw.yaml: destinations[0].max_atempts" in text and "spelling" in text


def test_a_cds_client_gives_its_keys_as_a_file_or_a_url_not_both(tmp_path: Path) -> None:
    from gateway.ledger.wiring import cds_settings
    from mappings.crosswalk import Crosswalk

    data = config_dict(tmp_path, mllp_port=2575, http_port=8080, platform_url="http://x/")
    url = "https://his.hospital.local/.well-known/jwks.json"
    data["cds"]["clients"] = [{"iss": "https://his.hospital.local", "jwks_url": url,
                               "jwks_file": str(tmp_path / "his.jwks.json")}]
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    assert "cds.clients[0]" in str(e.value) and "exactly one of jwks_file and jwks_url" in str(
        e.value)
    del data["cds"]["clients"][0]["jwks_file"]
    cfg = parse_config(data, "gw.yaml")
    settings = cds_settings(cfg, Crosswalk)
    assert settings.clients["https://his.hospital.local"].jwks_url == url


def test_unknown_adapter_suggests_the_closest(tmp_path: Path) -> None:
    data = config_dict(tmp_path, mllp_port=2575, http_port=8080, platform_url="http://x/")
    data["listeners"][0]["adapter"] = "hl7v"
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    assert "did you mean 'hl7v2'" in str(e.value)


def test_adapter_config_is_validated_by_the_adapter_schema(tmp_path: Path) -> None:
    data = config_dict(tmp_path, mllp_port=2575, http_port=8080, platform_url="http://x/")
    data["listeners"][0]["config"]["facilities"]["ZJSRMYY"] = "123"
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    assert "listeners[0].config.facilities" in str(e.value)
    assert "12 letters/digits" in str(e.value)


def test_secrets_come_from_environment_and_are_not_printed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = config_dict(tmp_path, mllp_port=2575, http_port=8080, platform_url="http://x/")
    data["destinations"][0]["app_secret"] = "${JCGW_TEST_SECRET}"
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    assert "JCGW_TEST_SECRET is not set" in str(e.value)
    monkeypatch.setenv("JCGW_TEST_SECRET", "s3cr3t-value")
    cfg = parse_config(data, "gw.yaml")
    secret = cfg.destinations[0].app_secret
    assert secret is not None and secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(cfg)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(ROOT / "config" / "gateway.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    # which vendor XML walk runs: the compiled one unless not built or JCGW_PURE_PYTHON
    assert f"vendor XML field walk: {xml_walk.IMPLEMENTATION.name}\n" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: [\n", "utf-8")
    assert main(["check-config", "-c", str(bad)]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err
    assert main(["check-config", "-c", str(tmp_path / "missing.yaml")]) == 2
