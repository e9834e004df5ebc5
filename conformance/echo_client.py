"""Autobahn (Python 3) echo client: the testee for the origin-side conformance run.

    python conformance/echo_client.py --url ws://127.0.0.1:RELAY_PORT --agent wsrelay \
        [--deflate] [--case-timeout 60] [--out client.json]

Talks to `wstest -m fuzzingserver` (directly or through a relay): asks /getCaseCount,
then connects to /runCase?case=N&agent=AGENT for N = 1..count and echoes every message
it gets, then asks /updateReports?agent=AGENT so that wstest writes its report.  Each
connection is bounded by --case-timeout (then it is aborted and the next case runs).
--out writes what the client saw per case (close code, duration, timeout/error) as JSON.
Exits 0 when the report update was acknowledged (the verdicts are in wstest's report),
1 when the case count could not be fetched or the report update failed.
"""
import argparse
import json
import sys
import time
from urllib.parse import quote

from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                        connectWS)
from autobahn.websocket.compress import (PerMessageDeflateOffer, PerMessageDeflateResponse,
                                         PerMessageDeflateResponseAccept)
from twisted.internet import defer, task

MAX_SIZE = 64 * 1024 * 1024


class EchoClientProtocol(WebSocketClientProtocol):
    def connectionMade(self):
        super().connectionMade()
        self.transport.setTcpNoDelay(True)   # Autobahn does not manage to (see PITFALLS)
        self.factory.proto = self

    def onOpen(self):
        self.factory.opened = True

    def onMessage(self, payload, isBinary):
        if self.factory.echo:
            self.sendMessage(payload, isBinary)
        else:
            self.factory.messages.append(payload)

    def onClose(self, wasClean, code, reason):
        self.factory.close = {"clean": wasClean, "code": code, "reason": reason}


class OneConnectionFactory(WebSocketClientFactory):
    """One WebSocket connection; ``done`` fires when it is over (lost or failed)."""

    protocol = EchoClientProtocol

    def __init__(self, url, echo, deflate):
        super().__init__(url, useragent="wsrelay-conformance-echo-client")
        self.echo = echo
        self.messages = []
        self.close = None
        self.opened = False
        self.proto = None
        self.error = None
        self.done = defer.Deferred()
        options = dict(failByDrop=False, maxFramePayloadSize=MAX_SIZE,
                       maxMessagePayloadSize=MAX_SIZE, openHandshakeTimeout=30,
                       closeHandshakeTimeout=5)
        if deflate:
            options["perMessageCompressionOffers"] = [
                PerMessageDeflateOffer(accept_no_context_takeover=True,
                                       accept_max_window_bits=True)]
            options["perMessageCompressionAccept"] = (
                lambda response: PerMessageDeflateResponseAccept(response)
                if isinstance(response, PerMessageDeflateResponse) else None)
        self.setProtocolOptions(**options)

    def _finish(self):
        if not self.done.called:
            self.done.callback(self)

    def clientConnectionFailed(self, connector, reason):
        self.error = "connection failed: %s" % reason.getErrorMessage()
        self._finish()

    def clientConnectionLost(self, connector, reason):
        self._finish()


def run_connection(reactor, url, echo, deflate, timeout):
    """Connect to url, wait (at most timeout seconds) until the connection is over."""
    factory = OneConnectionFactory(url, echo, deflate)
    connector = connectWS(factory, timeout=min(timeout, 30))
    started = time.monotonic()
    timed_out = []

    def expire():
        timed_out.append(True)
        factory.error = "timed out after %ss" % timeout
        if factory.proto is not None and factory.proto.transport is not None:
            factory.proto.transport.abortConnection()
        else:
            connector.disconnect()
    timer = reactor.callLater(timeout, expire)

    def finished(result):
        if timer.active():
            timer.cancel()
        factory.duration = time.monotonic() - started
        return factory
    return factory.done.addCallback(finished)


@defer.inlineCallbacks
def run(reactor, args):
    base = args.url.rstrip("/")
    agent = quote(args.agent)
    record = {"url": args.url, "agent": args.agent, "cases": [], "ok": False}

    def save():
        if args.out:
            with open(args.out, "w") as f:
                json.dump(record, f, indent=1)

    got = yield run_connection(reactor, base + "/getCaseCount", False, args.deflate, 30)
    try:
        count = int(got.messages[0])
    except (IndexError, ValueError):
        print("echo_client: no case count from %s/getCaseCount (%s)"
              % (base, got.error or got.close), flush=True)
        record["error"] = "getCaseCount failed"
        save()
        return 1
    print("echo_client: %d cases" % count, flush=True)
    record["count"] = count

    for n in range(1, count + 1):
        url = "%s/runCase?case=%d&agent=%s" % (base, n, agent)
        res = yield run_connection(reactor, url, True, args.deflate, args.case_timeout)
        entry = {"case": n, "seconds": round(res.duration, 3), "close": res.close,
                 "error": res.error}
        record["cases"].append(entry)
        if not res.opened and not res.error:
            entry["error"] = res.error = "no WebSocket connection: %s" % (
                res.close["reason"] if res.close else "?")
        if res.error:
            print("echo_client: case %d: %s" % (n, res.error), flush=True)
        elif args.verbose:
            print("echo_client: case %d done in %.3fs, close %s"
                  % (n, res.duration, res.close), flush=True)
        save()

    url = "%s/updateReports?agent=%s" % (base, agent)
    res = yield run_connection(reactor, url, False, args.deflate, args.report_timeout)
    # fuzzingserver closes it cleanly once the report is written (with no close code)
    clean = res.error is None and res.close is not None and res.close["clean"]
    record["ok"] = clean
    record["updateReports"] = {"close": res.close, "error": res.error}
    save()
    print("echo_client: updateReports %s" % ("done" if clean else
                                             "FAILED (%s)" % (res.error or res.close)),
          flush=True)
    return 0 if clean else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://host:port of fuzzingserver or relay")
    parser.add_argument("--agent", default="wsrelay")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--case-timeout", type=float, default=60)
    parser.add_argument("--report-timeout", type=float, default=300)
    parser.add_argument("--out", help="write per-case observations to this JSON file")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    outcome = []

    def go(reactor):
        d = run(reactor, args)
        d.addCallback(outcome.append)
        return d
    try:
        task.react(go)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    sys.exit(outcome[0] if outcome else 1)


if __name__ == "__main__":
    main()
