"""
The dashboard in a real browser: Playwright (PyPI `playwright`) driving
Debian's `chromium` (scripts/install-browser; never a browser of Playwright's
own), against a real `twistd -n wsrelay` with its admin endpoint, a
`websockets` echo origin and `websockets` clients, all on 127.0.0.1.

It signs in with the token, checks the cookie, reads the values each chart
plotted (plotly's own data on the chart element) and compares them with the
JSON API's answers for the same query after a scripted traffic run, filters
the live sessions, closes one with a chosen code from the page and sees the
client receive it, and finds no console error (a Content-Security-Policy
violation included). Screenshots of each view are written to tmp_path, and
to docs/ when WSRELAY_SCREENSHOTS=1 (how docs/dashboard-*.png were made).
Without `chromium` the test fails and says what to run: it is never skipped.
"""

import asyncio
import json
import os
import shutil
import time
import urllib.request

import pytest
from playwright.async_api import async_playwright, expect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import ROOT, WAIT, free_port, run
from tests.test_admin_loopback import TOKEN
from tests.test_observe_loopback import relay_with_admin
from tests.traffic import EchoOrigin, Expected, talk

VIEWPORT = {"width": 1400, "height": 1000}
PAGE_START = 30.0  # seconds for the first page with plotly.js (4.5 MB) on a busy 2-core machine


def chromium():
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("no 'chromium' on PATH: run scripts/install-browser "
                    "(as root on Debian it installs the 'chromium' package)")
    return found


def api(port, path):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.loads(response.read())


def test_dashboard_in_chromium(tmp_path):
    executable = chromium()
    admin_port = free_port()
    shots = [tmp_path / "shots"]
    if os.environ.get("WSRELAY_SCREENSHOTS"):
        shots.append(ROOT / "docs")
    shots[0].mkdir()

    async def screenshot(page, name):
        for folder in shots:
            await page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=True)

    async def scenario():
        expected = Expected()
        async with EchoOrigin() as origin, async_playwright() as p:
            with relay_with_admin(tmp_path, origin.port, admin_port) as relay:
                await talk(relay, origin, expected, sizes=(10, 2000, 70_000))
                await talk(relay, origin, expected, sizes=(5,))
                await asyncio.to_thread(relay.session_lines, 2)
                browser = await p.chromium.launch(executable_path=executable,
                                                  args=["--no-sandbox", "--disable-gpu"])
                try:
                    await in_browser(browser, relay, origin, expected)
                finally:
                    await browser.close()

    async def in_browser(browser, relay, origin, expected):
        context = await browser.new_context(viewport=VIEWPORT, color_scheme="dark")
        page = await context.new_page()
        problems = []
        page.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        base = f"http://127.0.0.1:{admin_port}"

        # sign in: a wrong token is refused, the right one gives an HttpOnly, SameSite=Strict cookie
        await page.goto(base + "/")
        await page.fill("#token", "not-the-token-at-all")
        await page.click("button[type=submit]")
        assert "not the admin token" in await page.inner_text(".error")
        problems.clear()  # the 401 of the wrong token is itself logged by Chromium as an error
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#view-overview:not([hidden])", timeout=PAGE_START * 1000)
        (cookie,) = await context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("wsrelay_admin", True, "Strict")
        assert TOKEN not in cookie["value"]

        # overview: live numbers, origins up
        await expect(page.locator("#t-origins")).to_contain_text("/", timeout=PAGE_START * 1000)
        assert await page.inner_text("#t-origins") == "2 / 2"
        assert await page.inner_text("#t-sessions") == "0"
        await expect(page.locator("#t-handshakes")).not_to_have_text("–", timeout=WAIT * 1000)

        # per domain: the plotted values are the API's for the same query
        await page.goto(base + "/#domain")
        await page.select_option("#d-domain", "*")
        await page.select_option("#d-range", "3600")
        await wait_flushed(admin_port, expected)
        await page.evaluate("delete document.body.dataset.domainLoaded")
        await page.click("#domain-form button[type=submit]")
        await expect(page.locator("body[data-domain-loaded]")).to_have_count(1, timeout=WAIT * 1000)
        query = await page.evaluate("document.body.dataset.domainLoaded")
        traffic = await asyncio.to_thread(api, admin_port, "/v1/traffic?" + query)
        charts = {name: await plotted_async(page, name) for name in
                  ("c-traffic", "c-bandwidth", "c-statuses", "c-connections", "c-closes")}
        starts = [p["start"] for p in traffic["points"]]
        assert charts["c-traffic"] == [
            ["to clients", starts, [p["bytes_out"] for p in traffic["points"]]],
            ["from clients", starts, [p["bytes_in"] for p in traffic["points"]]]]
        assert sum(charts["c-traffic"][0][2]) == expected.totals["client_bytes_out"]
        assert charts["c-bandwidth"][0][2] == [p["bandwidth_out"] for p in traffic["points"]]
        statuses = await asyncio.to_thread(api, admin_port, "/v1/statuses?" + query)
        assert charts["c-statuses"] == [["101", starts, [p["statuses"].get("101", 0) for p in statuses["points"]]]]
        connections = await asyncio.to_thread(api, admin_port, "/v1/connections?" + query)
        assert charts["c-connections"][0][2] == [p["opened"] for p in connections["points"]]
        assert sum(charts["c-connections"][0][2]) == 2
        closes = {name: dict(zip(x, y)) for name, x, y in charts["c-closes"]}
        assert closes == {"client leg, closed by client": {"1000": 2}, "origin leg, closed by relay": {"1000": 2}}
        await screenshot(page, "domain")

        # live sessions: filter, then close one from the page with a chosen code
        async with connect(f"ws://chat.example.com:{relay.port}/room/7", host="127.0.0.1") as chat, \
                connect(relay.url("/other")) as other:
            await chat.send("hi")
            await chat.recv()
            await page.goto(base + "/#overview")  # the live numbers follow (one poll every 5 s)
            await expect(page.locator("#t-sessions")).to_have_text("2", timeout=WAIT * 1000)
            await expect(page.locator("#domains-table tbody tr").first).to_contain_text("1")
            await screenshot(page, "overview")
            await page.goto(base + "/#sessions")
            await page.wait_for_selector("#sessions-table tbody tr:nth-child(2)", timeout=WAIT * 1000)
            await page.select_option("#s-domain", "chat.example.com")
            await page.click("#sessions-form button[type=submit]")
            await expect(page.locator("#sessions-table tbody tr")).to_have_count(1, timeout=WAIT * 1000)
            row = await page.inner_text("#sessions-table tbody tr")
            assert "chat.example.com" in row and "/room/7" in row
            await page.select_option("#s-domain", "")
            await page.click("#sessions-form button[type=submit]")
            await page.wait_for_selector("#sessions-table tbody tr:nth-child(2)", timeout=WAIT * 1000)
            await screenshot(page, "sessions")
            await page.select_option("#s-domain", "chat.example.com")
            await page.click("#sessions-form button[type=submit]")
            await expect(page.locator("#sessions-table tbody tr")).to_have_count(1, timeout=WAIT * 1000)
            await page.click("#sessions-table tbody tr button")
            await page.fill("#close-code", "4123")
            await page.fill("#close-reason", "closed from the dashboard")
            await page.click("#close-confirm")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(chat.recv(), WAIT)
            assert (chat.close_code, chat.close_reason) == (4123, "closed from the dashboard")
            await other.send("still open")
            assert await other.recv() == "still open"

        # billing: the usage report per domain and cycle
        await page.goto(base + "/#billing")
        await page.wait_for_selector("#billing-table tbody tr", timeout=WAIT * 1000)
        csv = await page.get_attribute("#b-csv", "href")
        report = await asyncio.to_thread(api, admin_port, csv.replace("format=csv", "format=json"))
        rows = await page.locator("#billing-table tbody tr").all_inner_texts()
        assert len(rows) == len(report["cycles"]) >= 1
        assert [r.split("\t")[0] for r in rows] == [c["domain"] for c in report["cycles"]]
        await screenshot(page, "billing")

        # light, on a phone
        light = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="light")
        await light.add_cookies(await context.cookies())
        phone = await light.new_page()
        phone.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)
        phone.on("pageerror", lambda e: problems.append(str(e)))
        await phone.goto(base + "/#overview")
        await expect(phone.locator("#t-origins")).to_contain_text("/", timeout=PAGE_START * 1000)
        await screenshot(phone, "overview-light-phone")
        assert problems == []

    run(scenario(), timeout=WAIT * 12)


async def plotted_async(page, chart):
    """[[trace name, x (epoch seconds), y]] of what plotly drew in one chart element."""
    return await page.evaluate("""(id) => document.getElementById(id).data.map(
        (t) => [t.name, (t.x || []).map((v) => v instanceof Date ? v.getTime() / 1000 : v), t.y])""", chart)


async def wait_flushed(port, expected):
    """Until the store holds the scripted run (the relay flushes every 0.2 s); bounded by WAIT."""
    deadline = asyncio.get_running_loop().time() + WAIT
    now = int(time.time())
    window = (f"start={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now - 3600))}"
              f"&end={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now + 600))}&domain=*")
    while True:
        body = await asyncio.to_thread(api, port, "/v1/traffic?" + window)
        if sum(p["bytes_out"] for p in body["points"]) == expected.totals["client_bytes_out"]:
            return
        assert asyncio.get_running_loop().time() < deadline, "the scripted run never reached the store"
        await asyncio.sleep(0.1)  # polling the relay's flush; bounded by WAIT
