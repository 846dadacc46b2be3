"""A destination that would hash identifiers for a hospital without a hash_secret is refused
at start, naming the hospital and the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import HOSPITAL, config_dict

from canonical.errors import ConfigError
from gateway.config import parse_config

SECOND = "H33010600021"  # 浙江大学医学院附属第一医院's 定点医药机构编号 in these tests


def _config(tmp_path: Path, *, secrets: tuple[bool, bool], **dest: Any) -> dict[str, Any]:
    data = config_dict(tmp_path, mllp_port=2575, http_port=8080,
                       platform_url="http://127.0.0.1:8090/fsi/api/inventory")
    data["hospitals"] = [{"code": HOSPITAL, "name": "浙江省人民医院", "admdvs": "330100"},
                         {"code": SECOND, "name": "浙大一院", "admdvs": "330100"}]
    for hospital, keyed in zip(data["hospitals"], secrets, strict=True):
        if keyed:
            hospital["hash_secret"] = f"k-{hospital['code']}-勿外传"
    data["destinations"][0].update(dest)
    return data


def test_identifier_fields_without_a_hash_secret_are_refused_naming_hospital_and_setting(
        tmp_path: Path) -> None:
    data = _config(tmp_path, secrets=(True, False), patient_fields=["name", "id_card"])
    with pytest.raises(ConfigError) as e:
        parse_config(data, "gw.yaml")
    text = "\n".join(e.value.problems)
    assert SECOND in text and "浙大一院" in text and "hash_secret" in text
    assert "'nhsa'" in text and "id_card" in text and "identifiers_in_clear" in text
    assert HOSPITAL not in text  # it has its secret


def test_legacy_hash_identifiers_needs_the_secret_too(tmp_path: Path) -> None:
    data = _config(tmp_path, secrets=(False, True), patient_fields=["visit_no"],
                   hash_identifiers=True)
    with pytest.raises(ConfigError, match=f"hospital {HOSPITAL}"):
        parse_config(data, "gw.yaml")


@pytest.mark.parametrize("dest", [
    {"patient_fields": ["id_card", "phone"], "identifiers_in_clear": True},
    {"patient_fields": ["name"]},  # a name is not hashed: no secret needed
    {"patient_fields": []},
])
def test_no_secret_is_needed_when_nothing_is_hashed(tmp_path: Path, dest: dict[str, Any]
                                                    ) -> None:
    cfg = parse_config(_config(tmp_path, secrets=(False, False), **dest), "gw.yaml")
    assert not cfg.destinations[0].hash_identifiers


def test_identifiers_are_hashed_by_default(tmp_path: Path) -> None:
    cfg = parse_config(_config(tmp_path, secrets=(True, True), patient_fields=["id_card"]),
                       "gw.yaml")
    assert cfg.destinations[0].identifiers_in_clear is False


def test_hashed_only_and_in_clear_contradict(tmp_path: Path) -> None:
    data = _config(tmp_path, secrets=(True, True), patient_fields=["id_card"],
                   hash_identifiers=True, identifiers_in_clear=True)
    with pytest.raises(ConfigError, match="contradict"):
        parse_config(data, "gw.yaml")
