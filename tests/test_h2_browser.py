"""
A real headless Chromium on HTTP/2 through the relay (http2 = on, http = on):
it loads the origin's page through the relay over h2, and the page's own
script opens a WebSocket, which goes over the same connection (RFC 8441: the
session line says proto=h2, and Chromium only sends extended CONNECT on a
connection it already has), exchanges messages with the origin and closes
with a code that reaches the origin.
"""

import asyncio
import threading
import time
from contextlib import ExitStack

from aiohttp import WSMsgType, web
from websockets.sync.client import connect

from tests.support import WAIT, RelayProcess, free_port
from tests.test_browser import DevTools, Tab, find_browser, page_problems, show_logs, spki_pin, start_chromium
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


PAGE = """<!doctype html>
<meta charset="utf-8"><title>h2 page</title>
<p id="state">loading</p>
<script>
  window.got = []; window.closeInfo = null;
  const ws = window.ws = new WebSocket("wss://" + location.host + "/chat?h2");
  ws.onopen = () => { document.getElementById("state").textContent = "open"; ws.send("one"); ws.send("two \\u2603"); };
  ws.onmessage = (e) => window.got.push(e.data);
  ws.onclose = (e) => { window.closeInfo = [e.code, e.reason]; };
</script>
"""


class PageOrigin:
    """An aiohttp origin in a thread of its own: the page at /, a WebSocket echo at /chat noting close codes."""

    def __init__(self):
        self.port = free_port()
        self.closes = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = None

    async def page(self, request):
        return web.Response(text=PAGE, content_type="text/html")

    async def chat(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"echo: {message.data}")
        self.closes.append((request.path_qs, ws.close_code))
        return ws

    async def _start(self):
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/chat", self.chat)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(WAIT)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


def wait_until(check, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def test_chromium_loads_over_h2_and_its_websocket_rides_the_same_connection(tmp_path, pki):  # noqa: F811
    browser = find_browser()
    issued = pki.issue("browser-h2", ["a.test"])
    try:
        with ExitStack() as stack:
            origin = stack.enter_context(PageOrigin())
            relay = RelayProcess(tmp_path / "relay", f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                http2 = on
                [domain:a.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
                http = on
                certificate = {issued.certificate}
                private_key = {issued.key}
            """)
            stack.callback(relay.stop)
            relay.start()
            chromium, devtools_url, _log = start_chromium(stack, tmp_path, browser, [
                "--host-resolver-rules=MAP a.test 127.0.0.1",
                f"--ignore-certificate-errors-spki-list={spki_pin(issued.leaf)}",
            ])
            devtools = DevTools(stack.enter_context(
                connect(devtools_url, max_size=None, open_timeout=WAIT, close_timeout=WAIT, ping_interval=None)))
            tab = Tab(devtools, "tab")
            tab.navigate(f"https://a.test:{relay.port}/")
            wait_until(lambda: tab.js("document.readyState") == "complete", "the page loaded")
            assert tab.js("document.title") == "h2 page"   # the origin's page, through the relay
            assert tab.js("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
            wait_until(lambda: tab.js("window.got.length") == 2, "two echoes")
            assert tab.js("window.got") == ["echo: one", "echo: two \u2603"]
            tab.js("window.ws.close(4321, 'done here')")
            wait_until(lambda: tab.js("window.closeInfo") is not None, "the close")
            assert tab.js("window.closeInfo") == [4321, "done here"]
            wait_until(lambda: origin.closes, "the origin's close")
            assert origin.closes == [("/chat?h2", 4321)]

            assert '"GET /" 200' in relay.log()   # the page's access line
            lines = relay.session_lines(1)
            assert len(lines) == 1, relay.log()
            assert '"/chat?h2" 101 ' in lines[0] and lines[0].endswith(" proto=h2"), lines
            assert "close client=4321 origin=4321 first=client" in lines[0], lines
            problems = [p for p in page_problems(devtools) if "favicon" not in p]
            assert not problems, "the page reported problems:\n" + "\n".join(problems)
            devtools.call("Browser.close")
            chromium.wait(WAIT)
    except BaseException:
        show_logs(tmp_path)
        raise
