"""消息查询 in the console: a dispense sent over MLLP is found by its control id and
followed to the platform, with the patient masked for a pharmacist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_helpers import Gateway
from console_helpers import PHARMACIST
from helpers import eventually, numbered_dispense
from test_console import _expect, bearer, open_console


async def test_a_pharmacist_follows_a_dispense_to_the_platform(
        gateway: Gateway, browser: Any, shots: Path) -> None:
    gateway.simulator.faults.fail_next = 1  # the platform's first answer is a 503
    await gateway.send(numbered_dispense(41))
    await gateway.delivered(1)

    async def recorded() -> bool:  # the outcome is written a moment after the answer
        async with gateway.session.get(gateway.url("/api/messages"),
                                       params={"control_id": "RDS000000000041"},
                                       headers=bearer(PHARMACIST)) as r:
            return (await r.json())["items"][0]["state"] == "delivered"
    await eventually(recorded, what="the delivery recorded")

    page = await open_console(browser, gateway, PHARMACIST, "messages")
    await page.get_by_label("消息控制号（MSH-10 / 资源 ID）").fill("RDS000000000041")
    await page.get_by_role("button", name="查询").click()
    rows = page.locator("table.grid tbody tr")
    await _expect(rows).to_have_count(1)
    await _expect(rows.nth(0)).to_contain_text("RDS000000000041")
    await _expect(rows.nth(0)).to_contain_text("已上报")
    await rows.nth(0).get_by_role("button").click()
    detail = page.locator("section[aria-labelledby='message-title']")
    await _expect(detail).to_contain_text("已脱敏")
    await _expect(detail).to_contain_text("3301**********0016")
    await _expect(detail).to_contain_text("MSA|AA|RDS000000000041")
    tries = detail.locator("table.grid tbody tr")
    await _expect(tries).to_have_count(2)
    await _expect(tries.nth(0)).to_contain_text("503")
    await _expect(tries.nth(1)).to_contain_text("成功")
    assert "330102198001010016" not in await detail.inner_text()
    assert "张^伟" not in await detail.inner_text()
    await page.screenshot(path=shots / "messages.png", full_page=True)
