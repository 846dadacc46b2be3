"""The gateway's conformance kit, run on this adapter and its samples."""

from pathlib import Path

from jicai_spd_csv import SpdCsvAdapter

from adapters.testing import make_conformance_tests

TestSpdCsv = make_conformance_tests(
    SpdCsvAdapter, {"hospital_id": "H33010200001", "sender": "HDYY-SPD"},
    Path(__file__).parent / "data", alias="spd-csv")
