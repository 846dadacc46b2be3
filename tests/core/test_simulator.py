"""The platform simulator answers like the platform: envelope, codes, duplicate msgid."""

from __future__ import annotations

from typing import Any

from gateway.platforms.simulator import simulator_app


def sale() -> dict[str, Any]:
    """A complete 3505 body: 阿那曲唑片 1mg*14片, two boxes as 28 tablets."""
    return {
        "med_list_codg": "XL02BGA045A001010104520", "fixmedins_hilist_id": "Y0012345",
        "fixmedins_hilist_name": "阿那曲唑片", "fixmedins_bchno": "CF00150000001-1",
        "prsc_dr_certno": "D0107", "prsc_dr_name": "李明", "phar_certno": "Y0031",
        "phar_name": "孙丽", "phar_prac_cert_no": "330102201800123", "hi_feesetl_type": "1",
        "mdtrt_sn": "MZ202611230017", "psn_cert_type": "01", "manu_lotnum": "L2026090112",
        "manu_date": "2026-09-01", "expy_end": "2028-08-31", "rx_flag": "1",
        "trdn_flag": "0", "finl_trns_pric": 2.35, "rxno": "CF00150000001",
        "rx_circ_flag": "0", "rtal_docno": "CF00150000001", "sel_retn_cnt": 28,
        "sel_retn_time": "2026-11-23 09:30:00", "sel_retn_opter_name": "孙丽",
        "drugtracinfo": [{"drug_trac_codg": "81234567890123456789"}],
    }


def envelope(**over: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "infno": "3505", "msgid": "H33010200015202611230930000001",
        "recer_sys_code": "JCGW", "infver": "V1.0", "opter_type": "1", "opter": "jcgw",
        "inf_time": "2026-11-23 09:30:00", "fixmedins_code": "H33010200015",
        "input": {"selinfo": sale()},
    }
    env.update(over)
    return env


async def test_accepts_valid_then_rejects_repeated_msgid(aiohttp_client) -> None:
    client = await aiohttp_client(simulator_app())
    r1 = await (await client.post("/fsi/api/inventory", json=envelope())).json()
    r2 = await (await client.post("/fsi/api/inventory", json=envelope())).json()
    assert r1["infcode"] == 0 and r1["output"]["platform_ref"]
    assert r2["infcode"] == -1 and "msgid重复" in r2["err_msg"]
    stats = await (await client.get("/_sim/stats")).json()
    assert stats == {"accepted": 1, "duplicates": 1, "rejected": 0, "calls": 2}


async def test_rejects_bad_national_code_msgid_and_time(aiohttp_client) -> None:
    client = await aiohttp_client(simulator_app())
    bad_code = envelope()
    bad_code["input"]["selinfo"]["med_list_codg"] = "XL02BGA045A00101010452"  # 22 chars
    cases = [
        (bad_code, "国家医保编码"),
        (envelope(msgid="H3301020001520261123093000001"), "msgid格式错误"),
        (envelope(msgid="H33010200016202611230930000001"), "不一致"),
        (envelope(inf_time="2026/11/23 09:30"), "inf_time"),
        (envelope(infno="9999"), "不支持的交易编号"),
        (envelope(input={}), "selinfo"),
    ]
    for name, value, words in [("phar_prac_cert_no", None, "phar_prac_cert_no"),
                                ("sel_retn_cnt", "28", "sel_retn_cnt"),
                                ("expy_end", "2028-31-10", "expy_end"),
                                ("sel_retn_time", "2026-11-23", "sel_retn_time"),
                                ("trdn_flag", "2", "trdn_flag"),
                                ("finl_trns_pric", 2.1234567, "finl_trns_pric"),
                                ("rtal_docno", "C" * 41, "rtal_docno")]:
        env = envelope()
        if value is None:
            del env["input"]["selinfo"][name]
        else:
            env["input"]["selinfo"][name] = value
        cases.append((env, words))
    for env, words in cases:
        answer = await (await client.post("/fsi/api/inventory", json=env)).json()
        assert answer["infcode"] == -1, env
        assert words in answer["err_msg"], answer["err_msg"]
    assert (await (await client.get("/_sim/stats")).json())["accepted"] == 0


async def test_injected_faults(aiohttp_client) -> None:
    client = await aiohttp_client(simulator_app())
    await client.post("/_sim/faults", json={"fail_next": 2, "fail_status": 502})
    statuses = [(await client.post("/fsi/api/x", json=envelope())).status for _ in range(3)]
    assert statuses == [502, 502, 200]
    r = await client.post("/_sim/faults", json={"explode": True})
    assert r.status == 400


async def test_a_trace_code_wider_than_the_interface_field_is_refused(aiohttp_client) -> None:
    client = await aiohttp_client(simulator_app())
    env = envelope()
    gs1 = "0106901234567892" "10LOT1"
    env["input"]["selinfo"]["drugtracinfo"] = [
        {"drug_trac_codg": "81234567890123456789"},
        {"drug_trac_codg": gs1 + "\x1d" * (101 - len(gs1))}]
    answer = await (await client.post("/fsi/api/inventory", json=env)).json()
    assert answer["infcode"] == -1
    assert "101 characters, more than 100" in answer["err_msg"], answer
    env = envelope(msgid="H33010200015202611230930000002")
    env["input"]["selinfo"]["drugtracinfo"] = [{"drug_trac_codg": gs1 + "\x1d" * 78}]
    answer = await (await client.post("/fsi/api/inventory", json=env)).json()
    assert answer["infcode"] == 0, answer


def test_the_strict_field_check_refuses_a_trace_code_wider_than_100() -> None:
    from gateway.platforms.fields import SPECS, check_value

    [spec] = [s for s in SPECS["3505"] if s.name == "drugtracinfo"]
    assert check_value(spec, [{"drug_trac_codg": "8" * 100}]) == ""
    assert check_value(spec, [{"drug_trac_codg": "81234567890123456789"},
                              {"drug_trac_codg": "8" * 101}]) == "drug_trac_codg长度101超过100"
