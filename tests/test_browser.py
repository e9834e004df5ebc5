"""
The demo page in a real headless Chromium, loaded through a real relay process
(``http = on``) and its WebSockets going through the same relay port to the
real demo origin, all on 127.0.0.1 (the wss:// test loads the page from the
origin and connects to an ssl: listener).

- the demo origin: ``python -m wsrelay.demo --port 0 --relay-url same-host``
  in a subprocess, its port read from the line it prints;
- the relay: ``twistd -n wsrelay`` (tests.support.RelayProcess) with
  ``[domain:*] origins = 127.0.0.1:DEMO``, ``http = on``;
- the browser: Debian's ``chromium --headless``, driven over the Chrome DevTools
  Protocol with the ``websockets`` library: it opens the page, types into the
  echo and comment boxes and clicks their buttons with real input events, and
  reads the page's DOM.

Every wait is bounded (the DOM is polled with ``Runtime.evaluate`` until a
deadline); the three processes are ended, with their process groups, whatever
happens. Without ``chromium`` the test fails and says to run
``scripts/install-browser``: it is never skipped.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
from cryptography.hazmat.primitives import serialization
from websockets.sync.client import connect

from tests.support import ROOT, WAIT, RelayProcess, read_first_line
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)

BROWSER = "chromium"
BROWSER_START = 30.0  # seconds for a cold Chromium start on a slow 2-core machine
POLL = 0.05  # seconds between two looks at the DOM, always under a deadline

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]

RELAY_CONFIG = """
    [relay]
    listen = tcp:{port}:interface=127.0.0.1
    [domain:*]
    origins = 127.0.0.1:{demo_port}
    origin_protocol = http
    http = on
"""

# Everything the test reads from the page, in one evaluation.
SNAPSHOT_JS = r"""
(() => {
  if (!document.getElementById("comments-log")) return null;  // not the demo page (yet)
  const state = (id) => {
    const b = document.querySelector("#" + id + " b");
    return { state: b ? b.className : null, text: document.getElementById(id).textContent };
  };
  const items = (id) => [...document.querySelectorAll("#" + id + " li")].map((li) => ({
    cls: li.className,
    meta: (li.querySelector(".meta") || { textContent: "" }).textContent,
    text: li.lastChild ? li.lastChild.textContent : "",
  }));
  return {
    relay: document.getElementById("relay").textContent,
    echo: state("echo-state"),
    comments: state("comments-state"),
    viewers: document.getElementById("viewers").textContent,
    echoLog: items("echo-log"),
    commentsLog: items("comments-log"),
    echoInput: document.getElementById("echo-text").value,
    commentsInput: document.getElementById("comments-text").value,
  };
})()
"""


# ---------------------------------------------------------------------------
# Processes.
# ---------------------------------------------------------------------------


def stop_group(proc, grace=WAIT):
    """
    End ``proc`` (started with start_new_session=True) and everything left in its
    process group: SIGTERM, a bounded wait for the leader, then SIGKILL to the
    group. The leader is reaped only at the end, so the group id cannot have been
    reused when it is signalled.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            time.sleep(POLL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind (renderers, zygotes)
        except ProcessLookupError:
            pass
    proc.wait(grace)


def start_demo(stack, tmp_path, relay_url):
    """The demo origin on 127.0.0.1, any free port; returns (process, port)."""
    log = open(tmp_path / "demo.log", "wb")
    stack.callback(log.close)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsrelay.demo", "--port", "0", "--interface", "127.0.0.1",
         "--relay-url", relay_url],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        start_new_session=True)
    stack.callback(proc.stdout.close)
    stack.callback(stop_group, proc)
    try:
        line = read_first_line(proc, "the demo origin")
    except AssertionError as e:
        raise AssertionError(f"{e}\ndemo log:\n{(tmp_path / 'demo.log').read_text(errors='replace')}") from None
    m = re.match(r"^demo origin listening on http://127\.0\.0\.1:(\d+)/ ", line)
    assert m, f"unexpected first line from the demo origin: {line!r}"
    return proc, int(m.group(1))


def start_chromium(stack, tmp_path, executable, extra_flags=()):
    """Headless Chromium with a fresh profile; returns (process, DevTools browser URL, log path)."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log_path = tmp_path / "chromium.log"
    log = open(log_path, "wb")
    stack.callback(log.close)
    proc = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True)
    stack.callback(stop_group, proc)
    deadline = time.monotonic() + BROWSER_START
    while True:
        text = log_path.read_text(errors="replace")
        m = re.search(r"DevTools listening on (ws://\S+)", text)
        if m:
            url = m.group(1)
            assert url.startswith("ws://127.0.0.1:"), f"DevTools is not on loopback: {url}"
            return proc, url, log_path
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with status {proc.returncode} before DevTools listened:\n{text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"chromium printed no 'DevTools listening on' within {BROWSER_START}s:\n{text}")
        time.sleep(POLL)


# ---------------------------------------------------------------------------
# A small Chrome DevTools Protocol client (one browser connection, flat sessions).
# ---------------------------------------------------------------------------


class DevTools:
    # Events worth keeping: what the page itself reports as going wrong.
    KEPT = {"Runtime.exceptionThrown", "Log.entryAdded", "Runtime.consoleAPICalled"}

    def __init__(self, ws):
        self.ws = ws
        self.last_id = 0
        self.events = []

    def call(self, method, params=None, session=None, timeout=WAIT):
        self.last_id += 1
        msg_id = self.last_id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"DevTools gave no answer to {method} within {timeout}s")
            try:
                reply = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})
            if reply.get("method") in self.KEPT:
                self.events.append(reply)


class Tab:
    """One page target, attached with its own DevTools session."""

    def __init__(self, devtools, name):
        self.devtools = devtools
        self.name = name
        self.target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = devtools.call("Target.attachToTarget", {"targetId": self.target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        # Every tab behaves as the focused one, as a person's foreground tab does.
        self.call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.closed = False

    def call(self, method, params=None, timeout=WAIT):
        return self.devtools.call(method, params, session=self.session, timeout=timeout)

    def navigate(self, url):
        result = self.call("Page.navigate", {"url": url})
        assert not result.get("errorText"), f"{self.name}: navigating to {url} failed: {result['errorText']}"

    def js(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{self.name}: {expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def snapshot(self):
        return self.js(SNAPSHOT_JS)

    def wait_for(self, check, what, timeout=WAIT):
        """Poll the page until ``check(snapshot)`` is true; at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                snap, error = self.js(SNAPSHOT_JS), None
            except AssertionError as e:  # e.g. evaluated while a navigation swaps the document
                snap, error = None, e
            if snap is not None and check(snap):
                return snap
            if time.monotonic() > deadline:
                shown = json.dumps(snap, indent=1, ensure_ascii=False)
                raise AssertionError(f"{self.name}: {what}: not within {timeout}s; the page shows:\n{shown}"
                                     + (f"\nlast error: {error}" if error else ""))
            time.sleep(POLL)

    def type_into(self, element_id, text):
        """Focus the input and type ``text`` as key presses."""
        self.js(f"document.getElementById({json.dumps(element_id)}).focus()")
        assert self.js("document.activeElement.id") == element_id, f"{self.name}: #{element_id} did not take the focus"
        for ch in text:
            self.call("Input.dispatchKeyEvent", {"type": "keyDown", "key": ch, "text": ch, "unmodifiedText": ch})
            self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": ch})
        value = self.js(f"document.getElementById({json.dumps(element_id)}).value")
        assert value == text, f"{self.name}: typed {text!r} into #{element_id}, it holds {value!r}"

    def click_button(self, form_id, label):
        """A left click with the mouse in the middle of the button of the form labelled ``label``."""
        find = (f"[...document.querySelectorAll('#{form_id} button')]"
                f".find((b) => b.textContent === {json.dumps(label)} && !b.hidden)")
        box = self.js(f"""(() => {{
            const b = {find};
            if (!b) return null;
            b.scrollIntoView({{block: "center"}});
            const r = b.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            return {{x, y, hit: document.elementFromPoint(x, y) === b}};
        }})()""")
        assert box is not None, f"{self.name}: no visible {label!r} button in #{form_id}"
        assert box["hit"], f"{self.name}: the {label!r} button is covered by something else"
        x, y = box["x"], box["y"]
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1})

    def close(self):
        if not self.closed:
            self.closed = True
            self.devtools.call("Target.closeTarget", {"targetId": self.target})


# ---------------------------------------------------------------------------
# Checks on what the page shows.
# ---------------------------------------------------------------------------


def connected(snap, viewers):
    return (snap["echo"]["state"] == "open" and snap["comments"]["state"] == "open"
            and snap["viewers"] == str(viewers))


def comment(snap, text):
    """The comment ``text`` in the page's list, or None."""
    return next((c for c in snap["commentsLog"] if c["text"] == text), None)


def page_problems(devtools):
    """JavaScript exceptions, console errors and browser errors the pages reported."""
    problems = []
    for ev in devtools.events:
        p = ev["params"]
        if ev["method"] == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails']}")
        elif ev["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            problems.append(f"console.{p['type']}: {[a.get('value') for a in p['args']]}")
        elif ev["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
            entry = p["entry"]
            problems.append(f"{entry['source']}: {entry['text']} ({entry.get('url', '')})")
    return problems


def show_logs(tmp_path, last=40):
    for name in ("relay/relay.log", "demo.log", "chromium.log"):
        path = tmp_path / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-last:]
            print(f"--- last lines of {name} ---", *tail, sep="\n")


# ---------------------------------------------------------------------------
# The test.
# ---------------------------------------------------------------------------


def find_browser():
    browser = shutil.which(BROWSER)
    if browser is None:
        pytest.fail(
            f"'{BROWSER}' is not on PATH, and this test drives a real headless Chromium: "
            "run scripts/install-browser (as root on Debian it installs the 'chromium' package)",
            pytrace=False)
    return browser


def test_demo_page_in_a_real_browser_through_the_relay(tmp_path):
    """The page, its echo and its comments room, all through the relay's one port (http = on)."""
    browser = find_browser()

    try:
        with ExitStack() as stack:
            relay = RelayProcess(tmp_path / "relay", RELAY_CONFIG)
            relay_url = f"ws://127.0.0.1:{relay.port}"
            # the page comes through the relay (http = on) and connects to the host it came from
            _demo, demo_port = start_demo(stack, tmp_path, "same-host")
            relay.config.write_text(relay.config.read_text().replace("{demo_port}", str(demo_port)))
            stack.callback(relay.stop)
            relay.start()

            chromium, devtools_url, _log = start_chromium(stack, tmp_path, browser)
            devtools = DevTools(stack.enter_context(
                connect(devtools_url, max_size=None, open_timeout=WAIT, close_timeout=WAIT, ping_interval=None)))
            page_url = f"http://127.0.0.1:{relay.port}/"

            # -- tab A: connects through the relay ----------------------------------
            a = Tab(devtools, "tab A")
            a.navigate(page_url)
            snap = a.wait_for(lambda s: connected(s, 1), "both panels open, 1 viewer")
            assert snap["relay"] == relay_url
            assert snap["echo"]["text"] == f"open {relay_url}/echo"
            assert snap["comments"]["text"] == f"open {relay_url}/comments"

            # -- echo: type, click Send, the text comes back with a round-trip time --
            echo_text = "hello through the relay \u2603"
            a.type_into("echo-text", echo_text)
            a.click_button("echo-form", "Send")
            snap = a.wait_for(lambda s: any(e["text"] == echo_text for e in s["echoLog"]), "the echo")
            (echoed,) = snap["echoLog"]
            assert re.fullmatch(r"\u21a9 \d+\.\d ms ", echoed["meta"]), f"no round-trip time: {echoed}"
            assert snap["echoInput"] == ""  # cleared once sent

            # -- comments: post one, it shows as mine, 1 viewer ---------------------
            first = "first comment, from A"
            a.type_into("comments-text", first)
            a.click_button("comments-form", "Post")
            snap = a.wait_for(lambda s: comment(s, first), "A's comment")
            mine = comment(snap, first)
            assert mine["cls"] == "mine" and mine["meta"].startswith("#1 (you) "), mine
            assert snap["viewers"] == "1" and snap["commentsInput"] == ""

            # -- tab B joins: both see 2 viewers, B gets A's comment replayed ------
            b = Tab(devtools, "tab B")
            b.navigate(page_url)
            snap = b.wait_for(lambda s: connected(s, 2) and comment(s, first), "B open, 2 viewers, A's comment")
            replayed = comment(snap, first)
            assert replayed["cls"] == "replay" and replayed["meta"].startswith("#1 ") and "(you)" not in replayed["meta"]
            a.wait_for(lambda s: s["viewers"] == "2", "A sees 2 viewers")

            # -- each sees the other's live comment --------------------------------
            from_b = "hi A, this is B"
            b.type_into("comments-text", from_b)
            b.click_button("comments-form", "Post")
            got = comment(a.wait_for(lambda s: comment(s, from_b), "B's comment on A"), from_b)
            assert got["cls"] == "" and got["meta"].startswith("#2 ") and "(you)" not in got["meta"], got
            got = comment(b.wait_for(lambda s: comment(s, from_b), "B's comment on B"), from_b)
            assert got["cls"] == "mine" and got["meta"].startswith("#2 (you) "), got

            from_a = "hello B, A here"
            a.type_into("comments-text", from_a)
            a.click_button("comments-form", "Post")
            got = comment(b.wait_for(lambda s: comment(s, from_a), "A's second comment on B"), from_a)
            assert got["cls"] == "" and got["meta"].startswith("#1 ") and "(you)" not in got["meta"], got
            snap = a.wait_for(lambda s: comment(s, from_a), "A's second comment on A")
            assert [c["text"] for c in snap["commentsLog"]] == [from_a, from_b, first]  # newest first
            assert snap["viewers"] == "2" and b.snapshot()["viewers"] == "2"

            # -- B leaves: A is told, through the relay ----------------------------
            b.close()
            a.wait_for(lambda s: s["viewers"] == "1", "A sees 1 viewer after B closed")
            a.close()

            # -- the relay logged the four sessions: 101 to the demo origin, each
            #    message counted, closed by the browser with 1001 on both legs ----
            lines = relay.session_lines(4)
            assert len(lines) == 4, "\n".join(lines) or relay.log()
            session_re = re.compile(
                r'\[wsrelay\.session#info\] 127\.0\.0\.1 \* "(/echo|/comments)" 101 '
                + re.escape(f"127.0.0.1:{demo_port}")
                + r" in=(\d+)/\d+B out=(\d+)/\d+B \d+\.\d+s close client=1001 origin=1001 first=client proto=h1$")
            sessions = []
            for line in lines:
                m = session_re.search(line)
                assert m, f"unexpected session line: {line}"
                sessions.append((m.group(1), int(m.group(2)), int(m.group(3))))
            assert sorted(sessions) == [
                ("/comments", 1, 5),  # B: posted 1; hello, A's replayed comment, viewers 2, B's, A's second
                ("/comments", 2, 7),  # A: posted 2; hello, viewers 1, own, viewers 2, B's, own second, viewers 1
                ("/echo", 0, 0),  # B never used the echo
                ("/echo", 1, 1),  # A: the one echo
            ], lines

            # -- both page loads went through the relay, proxied to the demo origin ---
            pages = re.findall(r'\[wsrelay\.http#info\] 127\.0\.0\.1 \* "GET /" 200 '
                               + re.escape(f"127.0.0.1:{demo_port}") + r" in=\d+B out=(\d+)B", relay.log())
            assert len(pages) == 2 and all(int(n) > 5000 for n in pages), relay.log()

            problems = page_problems(devtools)
            assert not problems, "the pages reported problems:\n" + "\n".join(problems)

            # -- the browser quits when asked --------------------------------------
            devtools.call("Browser.close")
            try:
                chromium.wait(WAIT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"chromium did not exit within {WAIT}s of Browser.close") from None
    except BaseException:
        show_logs(tmp_path)  # pytest prints them with the failure
        raise


def spki_pin(certificate):
    """Chromium's --ignore-certificate-errors-spki-list form: base64 of the SHA-256 of the public key."""
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def test_demo_page_over_wss_in_a_real_browser(tmp_path, pki):  # noqa: F811
    """
    wss:// from a browser, which offers ALPN (http/1.1) on every connection:
    the page's two sockets open through an ssl: listener serving a.test's
    certificate, a message goes there and back, and the relay logs no failed
    TLS handshake. Chromium reaches a.test at 127.0.0.1 and trusts that one
    key (no certificate checks are turned off).
    """
    browser = find_browser()
    issued = pki.issue("browser-a", ["a.test"])
    try:
        with ExitStack() as stack:
            relay = RelayProcess(tmp_path / "relay", f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                [domain:a.test]
                origins = 127.0.0.1:{{demo_port}}
                origin_protocol = http
                certificate = {issued.certificate}
                private_key = {issued.key}
            """)
            relay_url = f"wss://a.test:{relay.port}"
            _demo, demo_port = start_demo(stack, tmp_path, relay_url)
            relay.config.write_text(relay.config.read_text().replace("{demo_port}", str(demo_port)))
            stack.callback(relay.stop)
            relay.start()

            chromium, devtools_url, _log = start_chromium(stack, tmp_path, browser, [
                "--host-resolver-rules=MAP a.test 127.0.0.1",
                f"--ignore-certificate-errors-spki-list={spki_pin(issued.leaf)}",
            ])
            devtools = DevTools(stack.enter_context(
                connect(devtools_url, max_size=None, open_timeout=WAIT, close_timeout=WAIT, ping_interval=None)))
            a = Tab(devtools, "tab A")
            a.navigate(f"http://127.0.0.1:{demo_port}/")
            snap = a.wait_for(lambda s: connected(s, 1), "both panels open over wss://, 1 viewer")
            assert snap["echo"]["text"] == f"open {relay_url}/echo"
            echo_text = "over TLS \u2603"
            a.type_into("echo-text", echo_text)
            a.click_button("echo-form", "Send")
            a.wait_for(lambda s: any(e["text"] == echo_text for e in s["echoLog"]), "the echo over wss://")
            a.close()
            lines = relay.session_lines(2)
            assert len(lines) == 2, "\n".join(lines) or relay.log()
            assert all(" 101 " in line and "close client=1001" in line for line in lines), lines
            assert "TLS handshake" not in relay.log(), relay.log()
            problems = page_problems(devtools)
            assert not problems, "the page reported problems:\n" + "\n".join(problems)
            devtools.call("Browser.close")
            chromium.wait(WAIT)
    except BaseException:
        show_logs(tmp_path)
        raise
