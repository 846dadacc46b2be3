"""The console in headless Chromium against a whole gateway: logging in, 对码 from the
queue, editing a mapping and reading its history, replaying a dead letter, a hospital's
集采 progress, and what a role may not do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api_helpers import Gateway, held_dispense
from console_helpers import ADMIN, PHARMACIST, PROCUREMENT, SENDER, Person
from helpers import DATA, HOSPITAL, eventually, numbered_dispense

from gateway.store.base import OutboxQuery

ANASTROZOLE_HISUN = "XL02BGA045A001010104641"  # 阿那曲唑片 1mg×14 浙江海正
ANASTROZOLE_BRAND = "XL02BGA045A001010101359"  # 瑞宁得, not a winning product
CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"


def _expect(locator: Any) -> Any:
    from playwright.async_api import expect

    # generous: a busy machine (a whole test suite beside) must not fail a right page
    expect.set_options(timeout=15_000)
    return expect(locator)


def bearer(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


async def open_console(browser: Any, gw: Gateway, person: Person | None,
                       page_name: str = "unmapped") -> Any:
    """A new tab at 1366×768 on the console, logged in as ``person`` (None: no login)."""
    page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(15_000)
    await page.goto(gw.url(f"/console#/{page_name}"))
    if person is not None:
        await page.get_by_label("访问令牌").fill(person.token)
        await page.get_by_role("button", name="登录").click()
        await _expect(page.locator("#who-name")).to_have_text(person.name)
    return page


async def test_a_wrong_token_is_refused_and_a_right_one_shows_who_is_logged_in(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    response = await page.goto(gateway.url("/console"))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    await page.get_by_label("访问令牌").fill("jcgw_not-a-token")
    await page.get_by_role("button", name="登录").click()
    alert = page.get_by_role("alert")
    await _expect(alert).to_contain_text("HTTP 401")
    await _expect(alert).to_contain_text("未登录或令牌无效")
    await _expect(page.get_by_role("navigation")).to_be_hidden()
    await page.screenshot(path=shots / "login.png")

    await page.get_by_label("访问令牌").fill(PHARMACIST.token)
    await page.get_by_role("button", name="登录").click()
    await _expect(page.locator("#who-name")).to_have_text("yjk-lina")
    await _expect(page.locator("#who-role")).to_have_text("药师")
    await _expect(page.locator("#who-hospitals")).to_contain_text(HOSPITAL)
    # kept for this tab only, and never as a cookie
    assert await page.evaluate("sessionStorage.getItem('jcgw.token')") == PHARMACIST.token
    assert await page.context.cookies() == []
    await page.reload()
    await _expect(page.locator("#who-name")).to_have_text("yjk-lina")

    await page.get_by_role("button", name="退出登录").click()
    await _expect(page.get_by_label("访问令牌")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('jcgw.token')") is None


async def test_accepting_a_suggestion_sends_the_held_dispense(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    await gateway.api("POST", "/catalogs",
                      params={"version": "2025-first", "filename": CATALOG.name},
                      data=CATALOG.read_bytes(),
                      headers={"Content-Type": "text/csv", **bearer(ADMIN)}, expect=201)
    await gateway.send(held_dispense(1))
    assert gateway.simulator.order == []  # held: the item has no national code yet

    page = await open_console(browser, gateway, PHARMACIST, "unmapped")
    card = page.locator("article[data-item='Y9990001']")
    await _expect(card).to_contain_text("阿那曲唑片")
    await _expect(card).to_contain_text("浙江海正药业股份有限公司")
    best = card.locator("tr[data-rank='1']")
    await _expect(best).to_contain_text(ANASTROZOLE_HISUN)
    await _expect(card.get_by_label("第 1 条建议的换算系数")).to_have_value("14")
    # the catalog itself can be searched, e.g. by the maker and the generic name
    await page.get_by_label("检索目录（国家编码、本位码、批准文号、名称、厂家，可多个词）").fill(
        "阿那曲唑 海正")
    await page.get_by_role("button", name="检索").click()
    hits = page.locator(".catalog-hits tbody tr")
    await _expect(hits.filter(has_text=ANASTROZOLE_HISUN)).to_have_count(1)
    await page.screenshot(path=shots / "unmapped.png", full_page=True)

    await best.get_by_role("button", name=f"采纳第 1 条建议 {ANASTROZOLE_HISUN}").click()
    await _expect(card.get_by_role("status")).to_contain_text("已放行暂存消息 1 条")
    await gateway.delivered(1)
    [sent] = gateway.received()
    assert sent["med_list_codg"] == ANASTROZOLE_HISUN
    assert sent["sel_retn_cnt"] == 42  # 3 boxes × 14 tablets
    _, shown = await gateway.api("GET", f"/entries/{HOSPITAL}/Y9990001",
                                 headers=bearer(PHARMACIST), expect=200)
    assert shown["audit"][0]["user"] == "yjk-lina"  # the logged-in identity is the author
    await _expect(page.get_by_text("没有待对码的项目。")).to_be_visible()


async def test_data_reaches_the_page_as_text_never_as_markup(
        gateway: Gateway, browser: Any) -> None:
    hostile = "<img src=x onerror=window.pwned=1>阿那曲唑片"
    await gateway.send(held_dispense(2).replace("阿那曲唑片\\S\\海正\\F\\1mg".encode(),
                                                hostile.encode()))
    page = await open_console(browser, gateway, PHARMACIST, "unmapped")
    card = page.locator("article[data-item='Y9990001']")
    await _expect(card.locator("h2")).to_contain_text(hostile)
    await _expect(card.locator("img")).to_have_count(0)
    assert await page.evaluate("window.pwned") is None


async def test_editing_a_mapping_shows_the_change_in_its_history(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    page = await open_console(browser, gateway, PHARMACIST, "entries")
    await page.get_by_label("关键字（院内编码、名称或国家编码）").fill("比卡鲁胺")
    await page.get_by_role("button", name="查询").click()
    row = page.locator("tr[data-item='Y0020011']")
    await _expect(row).to_contain_text("XL02BBB085A001010100665")
    await _expect(page.locator("tbody tr")).to_have_count(1)

    await row.get_by_role("button", name="编辑 Y0020011").click()
    form = page.get_by_role("form", name="编辑对码 Y0020011")
    await form.get_by_label("院内名称").fill("比卡鲁胺片 50mg*14片/盒(上海朝晖)")
    await form.get_by_label("修改说明（记入审计）").fill("按药库主数据更正规格写法")
    await form.get_by_role("button", name="保存").click()
    await _expect(form.get_by_role("status")).to_contain_text("已保存")

    history = page.locator("section[aria-labelledby='history-title']")
    latest = history.locator("tbody tr").first
    await _expect(latest).to_contain_text("yjk-lina")
    await _expect(latest).to_contain_text("修改")
    await _expect(latest).to_contain_text("按药库主数据更正规格写法")
    await _expect(latest.locator("ins")).to_have_text("比卡鲁胺片 50mg*14片/盒(上海朝晖)")
    await _expect(history.locator("tbody tr")).to_have_count(2)  # the import, then this edit
    await page.screenshot(path=shots / "entries.png", full_page=True)

    # the export needs the token: fetched with it and saved by the browser
    async with page.expect_download() as info:
        await page.get_by_role("button", name="导出 CSV").click()
    saved = await (await info.value).path()
    text = Path(saved).read_text("utf-8-sig")
    assert "Y0020011" in text and "比卡鲁胺片 50mg*14片/盒(上海朝晖)" in text


async def test_replaying_a_dead_letter_delivers_it(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    gateway.simulator.faults.reject_next = 1  # the platform refuses the first call once
    await gateway.send(numbered_dispense(1))

    async def dead() -> list[Any]:
        return await gateway.store.list_outbox(OutboxQuery(destination="nhsa"))
    [row] = await eventually(dead, what="a dead letter")

    page = await open_console(browser, gateway, ADMIN, "deadletters")
    line = page.locator(f"tr[data-id='{row.id}']")
    await _expect(line).to_contain_text("业务校验不通过")
    await _expect(line).to_contain_text("销售/发药（3505）")
    await page.screenshot(path=shots / "deadletters.png", full_page=True)
    await line.get_by_label(f"选择死信 {row.id}").check()
    await page.get_by_role("button", name="重发所选").click()
    await _expect(page.get_by_role("status")).to_contain_text("已重新排队 1 条")
    [msgid] = await gateway.delivered(1)
    assert msgid == row.msgid  # under its original msgid


def _receipt(boxes: int) -> dict[str, Any]:
    """The warehouse's receipt of 比卡鲁胺片 into stock (SPD JSON)."""
    return {
        "消息ID": "SPD-20261201-000107", "系统编码": "SPD-ZJSRMYY", "机构编码": HOSPITAL,
        "发送时间": "2026-12-01 09:20:00",
        "单据列表": [{
            "单据号": "RK20261201017", "单据类型": "采购入库", "业务时间": "2026-12-01 09:15:00",
            "供应商编码": "GYS0012", "供应商名称": "华东医药股份有限公司",
            "库房编码": "ZYK", "库房名称": "中心药库", "操作员工号": "K007",
            "操作员姓名": "郑强", "是否网采": "是",
            "明细": [{"行号": 1, "药品编码": "Y0020011", "药品名称": "比卡鲁胺片",
                      "通用名": "比卡鲁胺片", "规格": "50mg*14片/盒",
                      "生产企业": "上海朝晖药业有限公司", "数量": boxes, "单位": "盒",
                      "进价": "45.22", "金额": f"{45.22 * boxes:.2f}"}],
        }],
    }


async def test_a_hospitals_progress_shows_the_lagging_contract_first(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    async with gateway.session.post(gateway.url("/ingest/spd-json"), json=_receipt(300),
                                    headers=bearer(SENDER)) as r:
        assert r.status < 300, await r.text()

    async def contracts() -> list[dict[str, Any]] | None:
        async with gateway.session.get(gateway.url("/ledger/contracts"),
                                       params={"hospital_id": HOSPITAL},
                                       headers=bearer(PROCUREMENT)) as r:
            found: list[dict[str, Any]] = await r.json()
        return found if any(c["completion"] not in (None, "0") for c in found) else None
    listed = await eventually(contracts, what="the receipt folded into the ledger")
    # the API lists them as imported; the console puts the lagging one first
    assert [c["generic_name"] for c in listed] == ["比卡鲁胺片", "阿那曲唑片"]
    assert [c["lagging"] for c in listed] == [False, True]

    page = await open_console(browser, gateway, PROCUREMENT, "progress")
    rows = page.locator("table[class='grid'] >> nth=0").locator("tbody tr")
    await _expect(rows).to_have_count(2)
    await _expect(rows.nth(0)).to_contain_text("阿那曲唑片")
    await _expect(rows.nth(0)).to_contain_text("滞后")
    await _expect(rows.nth(1)).to_contain_text("比卡鲁胺片")
    await _expect(rows.nth(1)).to_contain_text("正常")
    await _expect(page.locator("#due-title")).to_have_text("时限")

    await rows.nth(0).get_by_role("button", name="阿那曲唑片 详情").click()
    detail = page.locator("section[aria-labelledby='detail-title']")
    await _expect(detail).to_contain_text("国家组织药品集中带量采购 第二批")
    await _expect(detail).to_contain_text("杭州中美华东制药有限公司")
    await _expect(detail).to_contain_text("XL02BGA045A001010104520")
    await page.screenshot(path=shots / "progress.png", full_page=True)

    await page.get_by_role("link", name="消息查询").click()
    await _expect(page.get_by_role("form", name="消息筛选")).to_be_visible()


def _order_sign(code: str, name: str) -> dict[str, Any]:
    """A breast surgeon signing an order for ``code`` (CDS Hooks order-sign)."""
    request = json.loads((DATA / "ledger" / "order_sign_request.json").read_bytes())
    request["context"]["userId"] = "Practitioner/D00412"
    request["prefetch"]["encounter"]["serviceProvider"]["display"] = "乳腺外科"
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {"coding": [
        {"system": "http://www.nhsa.gov.cn/CodeSystem/drug", "code": code, "display": name}],
        "text": name}
    return request


async def test_an_overridden_warning_is_listed_with_its_reason(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    # 阿那曲唑片 lags: ordering the non-winning brand brings a card
    async with gateway.session.post(gateway.url("/cds-services/jicai-order-sign"),
                                    json=_order_sign(ANASTROZOLE_BRAND, "阿那曲唑片 1mg（瑞宁得）")
                                    ) as r:
        assert r.status == 200, await r.text()
        [card, *_] = (await r.json())["cards"]
    reason = card["overrideReasons"][0]
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                              "overrideReason": {"reason": reason,
                                                 "userComment": "患者既往使用原研药，病情稳定"}}]}
    async with gateway.session.post(gateway.url("/cds-services/jicai-order-sign/feedback"),
                                    json=feedback) as r:
        assert r.status == 200, await r.text()

    page = await open_console(browser, gateway, PROCUREMENT, "overrides")
    row = page.locator("tbody tr").first
    await _expect(row).to_contain_text("乳腺外科")
    await _expect(row).to_contain_text("Practitioner/D00412")
    await _expect(row).to_contain_text(f"{reason['display']} × 1")
    await _expect(row).to_contain_text("100.0%")  # overridden of those answered
    await page.screenshot(path=shots / "overrides.png", full_page=True)


async def test_a_pharmacist_cannot_list_or_replay_dead_letters(
        gateway: Gateway, browser: Any) -> None:
    page = await open_console(browser, gateway, PHARMACIST, "deadletters")
    await _expect(page.get_by_role("alert")).to_contain_text("HTTP 403")
    await _expect(page.get_by_role("alert")).to_contain_text("无权限")
    await page.get_by_label("按编号重发（多个编号用逗号分隔）").fill("1")
    await page.get_by_role("button", name="重发", exact=True).click()
    replay_box = page.locator("section[aria-labelledby='replay-title']").get_by_role("alert")
    await _expect(replay_box).to_contain_text("HTTP 403")
    await _expect(replay_box).to_contain_text("yjk-lina")  # the gateway's own words


async def test_without_identities_the_console_works_from_loopback(
        tmp_path: Path, browser: Any) -> None:
    from api_helpers import Launcher

    launcher = Launcher(tmp_path / "local")
    gw = await launcher.start()
    try:
        page = await open_console(browser, gw, None, "entries")
        await _expect(page.locator("#who-name")).to_have_text("local")
        await _expect(page.locator("#who-role")).to_have_text("管理员")
        await _expect(page.get_by_role("button", name="退出登录")).to_be_hidden()
        await _expect(page.locator("tr[data-item='Y0012345']")).to_be_visible()
    finally:
        await launcher.stop(gw)
