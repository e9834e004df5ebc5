"""
A real headless Chromium on HTTP/2 through the relay (http2 = on): it loads a
page from the relay over h2, opens a WebSocket from that page, which goes
over the same connection (RFC 8441: the session line says proto=h2, and
Chromium only sends extended CONNECT on a connection it already has),
exchanges messages with a `websockets` origin and closes with a code that
reaches the origin.

The page is the relay's own answer to a plain GET (426 with its text, the
same as over HTTP/1.1), since the relay does not serve the origin's pages
yet: it is a real document of that origin, loaded over h2, and the script
runs in it through the DevTools protocol.
"""

import asyncio
import json
import threading
import time
from contextlib import ExitStack

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import WAIT, LoopbackOrigin, RelayProcess
from tests.test_browser import DevTools, Tab, find_browser, page_problems, show_logs, spki_pin, start_chromium
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


class EchoOrigin(LoopbackOrigin):
    """An echo origin in a thread of its own (the test drives the browser synchronously)."""

    def __init__(self):
        super().__init__()
        self.closes = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, ws):
        try:
            async for message in ws:
                await ws.send(f"echo: {message}")
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        self.closes.append((ws.request.path, ws.close_code, ws.close_reason))

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self.loop).result(WAIT)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.stop(), self.loop).result(WAIT)
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
            origin = stack.enter_context(EchoOrigin())
            relay = RelayProcess(tmp_path / "relay", f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                http2 = on
                [domain:a.test]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
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
            base = f"https://a.test:{relay.port}"
            tab.navigate(base + "/")
            wait_until(lambda: tab.js("document.readyState") == "complete", "the page loaded")
            assert tab.js("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
            assert "WebSocket relay" in tab.js("document.body.innerText")

            tab.js(f"""(() => {{
                window.got = []; window.closeInfo = null;
                const ws = window.ws = new WebSocket({json.dumps(f"wss://a.test:{relay.port}/chat?h2")});
                ws.onopen = () => {{ ws.send("one"); ws.send("two \\u2603"); }};
                ws.onmessage = (e) => window.got.push(e.data);
                ws.onclose = (e) => {{ window.closeInfo = [e.code, e.reason]; }};
            }})()""")
            wait_until(lambda: tab.js("window.got.length") == 2, "two echoes")
            assert tab.js("window.got") == ["echo: one", "echo: two \u2603"]
            tab.js("window.ws.close(4321, 'done here')")
            wait_until(lambda: tab.js("window.closeInfo") is not None, "the close")
            assert tab.js("window.closeInfo") == [4321, "done here"]
            wait_until(lambda: origin.closes, "the origin's close")
            assert origin.closes == [("/chat?h2", 4321, "done here")]

            lines = relay.session_lines(1)
            assert len(lines) == 1, relay.log()
            assert '"/chat?h2" 101 ' in lines[0] and lines[0].endswith(" proto=h2"), lines
            assert "close client=4321 origin=4321 first=client" in lines[0], lines
            problems = [p for p in page_problems(devtools) if "426" not in p]  # the page itself is a 426
            assert not problems, "the page reported problems:\n" + "\n".join(problems)
            devtools.call("Browser.close")
            chromium.wait(WAIT)
    except BaseException:
        show_logs(tmp_path)
        raise
