"""
With `workers`, one relay is several processes; the admin endpoint (served
by worker 0) answers for all of them. Every other worker serves a small
internal site on a Unix socket in a directory only the relay's user can
enter (made by the parent, named in WSRELAY_PEERS): its live sessions, its
metrics snapshot, and closing one of its sessions. Worker 0 asks each over
twisted.web's Agent, with a short timeout: a worker that does not answer
(restarting) is left out of that answer, never holds it up.
"""

import json
import os

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger
from twisted.web.client import Agent, readBody
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from wsrelay.admin import sessions
from wsrelay.admin.api import parameters
from wsrelay.admin.errors import ApiError
from wsrelay.accounting.query import QueryError

log = Logger(namespace="wsrelay.admin")

ENVIRONMENT = "WSRELAY_PEERS"   # the directory of the workers' sockets, set by the parent
TIMEOUT = 2.0                   # seconds a worker has to answer


def socket_path(directory, index):
    return os.path.join(directory, f"worker-{index}.sock")


class PeerResource(Resource):
    """What one worker tells worker 0: /sessions, /metrics, DELETE /sessions/{id}."""

    isLeaf = True

    def __init__(self, relay):
        super().__init__()
        self.relay = relay

    def render(self, request):
        path = request.path.decode("utf-8", "replace")
        now = self.relay.reactor.seconds()
        request.setHeader(b"content-type", b"application/json")
        try:
            if path == "/metrics":
                body = dict(self.relay.metrics.snapshot(now), pid=os.getpid())
            elif path == "/sessions":
                params = parameters(request.args, sessions.LIST_PARAMETERS, ("client", "limit"))
                domains, client, _ = sessions.parse_filters(params)
                body = sessions.select(self.relay.sessions, domains, client, now)
            elif path.startswith("/sessions/") and request.method == b"DELETE":
                params = parameters(request.args, sessions.CLOSE_PARAMETERS, sessions.CLOSE_PARAMETERS)
                client_code, origin_code, reason = sessions.parse_close(params)
                session = sessions.find(self.relay.sessions, path[len("/sessions/"):])
                if session is None:
                    request.setResponseCode(404)
                    body = {"found": False}
                else:
                    session.close_by_operator(client_code, origin_code, reason)
                    body = {"found": True}
            else:
                request.setResponseCode(404)
                body = {"error": "no such resource"}
        except (ApiError, QueryError) as e:
            request.setResponseCode(400)
            body = {"error": str(e)}
        return json.dumps(body).encode("utf-8")


def peer_site(relay):
    site = Site(PeerResource(relay))
    site.noisy = False
    site.log = lambda request: None
    return site


@implementer(IAgentEndpointFactory)
class _Sockets:
    """Agent endpoints: http://worker-N/... goes to worker N's socket."""

    def __init__(self, reactor, directory):
        self.reactor, self.directory = reactor, directory

    def endpointForURI(self, uri):
        index = int(uri.host.decode("ascii").rpartition("-")[2])
        return UNIXClientEndpoint(self.reactor, socket_path(self.directory, index), timeout=TIMEOUT)


class Peers:
    """Worker 0's view of the others (indexes 1 to count - 1)."""

    def __init__(self, reactor, directory, count):
        self.reactor = reactor
        self.directory = directory
        self.indexes = range(1, count)
        self.agent = Agent.usingEndpointFactory(reactor, _Sockets(reactor, directory))

    def _ask(self, index, method, path, query=b""):
        url = f"http://worker-{index}{path}".encode("ascii") + (b"?" + query if query else b"")
        d = self.agent.request(method, url)
        d.addCallback(lambda response: readBody(response).addCallback(
            lambda body: (response.code, json.loads(body))))
        d.addTimeout(TIMEOUT, self.reactor)
        d.addErrback(self._no_answer, index)
        return d

    def _no_answer(self, failure, index):
        log.info("worker {index} did not answer the admin endpoint ({why})", index=index,
                 why=failure.getErrorMessage())
        return None

    def _all(self, method, path, query=b""):
        asked = [self._ask(index, method, path, query) for index in self.indexes]
        return defer.gatherResults(asked).addCallback(lambda answers: list(zip(self.indexes, answers)))

    def metrics(self):
        """[(index, snapshot)] of the workers that answered."""
        return self._all(b"GET", "/metrics").addCallback(
            lambda answers: [(i, a[1]) for i, a in answers if a is not None and a[0] == 200])

    def sessions(self, query):
        """Every answering worker's matching live sessions, as one list."""
        def joined(answers):
            found = []
            for _, answer in answers:
                if answer is not None and answer[0] == 200:
                    found.extend(answer[1])
            return found
        return self._all(b"GET", "/sessions", query).addCallback(joined)

    def close(self, wanted, query):
        """Whether a worker had that session (and closes it)."""
        path = "/sessions/" + "".join(c for c in wanted if c.isalnum() or c == "-")
        return self._all(b"DELETE", path, query).addCallback(
            lambda answers: any(a is not None and a[0] == 200 for _, a in answers))
