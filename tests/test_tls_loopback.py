"""
TLS over loopback: `twistd -n wsrelay` with ssl: listeners and https origins,
the `websockets` library (and Python's ssl module, and one hand-made
ClientHello) as peers. Certificates are made afresh by tests.test_tls_pki.
"""

import asyncio
import os
import socket
import ssl
import struct
import subprocess

import pytest
from cryptography import x509
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import ROOT, TWISTD, WAIT, LoopbackOrigin, free_port, run
from tests.test_tls_pki import pki  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def certs(pki):  # noqa: F811
    return {
        "default": pki.issue("lo-default", ["relay.test"]),
        "a": pki.issue("lo-a", ["a.test"]),
        "b": pki.issue("lo-b", ["b.test"]),
        "secure": pki.issue("lo-secure", ["secure.test"]),
        "origin": pki.issue("lo-origin", ["origin.test", "secure.test"]),
        "other": pki.issue("lo-other", ["other.test"]),
        "stranger": pki.issue("lo-stranger", ["origin.test"], issuer=pki.stranger),
        "expired": pki.issue("lo-expired", ["origin.test"], valid_from=-30, valid_days=20),
    }


class Origin(LoopbackOrigin):
    """A websockets echo origin, over TLS when given a certificate; it notes requests and SNI names."""

    def __init__(self, issued=None):
        super().__init__()
        self.issued = issued
        self.requests = []
        self.server_names = []

    def serve_options(self):
        context = None
        if self.issued is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.issued.certificate, self.issued.key)
            context.sni_callback = lambda _obj, name, _ctx: self.server_names.append(name)
        return dict(super().serve_options(), ssl=context)

    async def handle(self, ws):
        self.requests.append(ws.request)
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass


def trusting(pki, check_hostname=True, maximum=None, minimum=None):  # noqa: F811
    """A client TLS context trusting the test root CA."""
    context = ssl.create_default_context(cafile=str(pki.root.path))
    if not check_hostname:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.maximum_version = maximum
    if minimum is not None:
        context.minimum_version = minimum
    return context


def wss(relay, name, context, path="/", **kwargs):
    """A websockets client to the relay's TLS port asking for `name` (SNI and Host, unless overridden)."""
    return connect(f"wss://{name}:{relay.port}{path}", host="127.0.0.1", port=relay.port, ssl=context,
                   open_timeout=WAIT, **kwargs)


def peer_certificate(ws):
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def domains(origin_port, *names_and_certs, extra=""):
    text = ""
    for name, issued in names_and_certs:
        text += f"""
        [domain:{name}]
        origins = 127.0.0.1:{origin_port}
        origin_protocol = http
        certificate = {issued.certificate}
        private_key = {issued.key}
        {extra}
        """
    return text


# --- certificates by SNI ------------------------------------------------------------------------

def test_two_domains_on_one_port_each_get_their_certificate_by_sni(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                certificate = {certs['default'].certificate}
                private_key = {certs['default'].key}
                {domains(origin.port, ("a.test", certs["a"]), ("b.test", certs["b"]))}
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
            """, start=True)
            context = trusting(pki)   # checks that the certificate names what was asked for
            for name in ("a.test", "b.test"):
                async with wss(relay, name, context, "/echo") as ws:
                    assert peer_certificate(ws) == certs[name[0]].leaf
                    await ws.send(f"hello {name}")
                    assert await ws.recv() == f"hello {name}"
            # No SNI (an address in the URL), or a name without a certificate: the default.
            lax = trusting(pki, check_hostname=False)
            async with connect(f"wss://127.0.0.1:{relay.port}/", ssl=lax, open_timeout=WAIT) as ws:
                assert peer_certificate(ws) == certs["default"].leaf
                await ws.send("no sni")
                assert await ws.recv() == "no sni"
            async with wss(relay, "c.test", lax) as ws:
                assert peer_certificate(ws) == certs["default"].leaf
            assert origin.requests[0].headers["X-Forwarded-Proto"] == "https"
            assert [r.headers["Host"] for r in origin.requests] == [
                f"a.test:{relay.port}", f"b.test:{relay.port}", f"127.0.0.1:{relay.port}", f"c.test:{relay.port}"]

    run(main())


def test_clients_offering_alpn_connect_on_every_certificate_and_speak_http11(make_relay, pki, certs):  # noqa: F811
    """What browsers (http/1.1) and HTTP stacks (h2, http/1.1) offer, with and without SNI, default and per-domain."""
    async def main():
        async with Origin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                certificate = {certs['default'].certificate}
                private_key = {certs['default'].key}
                {domains(origin.port, ("a.test", certs["a"]))}
                [domain:*]
                origins = 127.0.0.1:{origin.port}
                origin_protocol = http
            """, start=True)
            for offered, selected in ((["http/1.1"], "http/1.1"), (["h2", "http/1.1"], "http/1.1"),
                                      (["acme-tls/1"], None)):
                for name, certificate in (("a.test", "a"), (None, "default")):
                    context = trusting(pki, check_hostname=name is not None)
                    context.set_alpn_protocols(offered)
                    url = f"wss://{name or '127.0.0.1'}:{relay.port}/echo"
                    async with connect(url, host="127.0.0.1", port=relay.port, ssl=context, open_timeout=WAIT) as ws:
                        tls_object = ws.transport.get_extra_info("ssl_object")
                        assert tls_object.selected_alpn_protocol() == selected, (offered, name)
                        assert peer_certificate(ws) == certs[certificate].leaf
                        await ws.send(f"{offered} {name}")
                        assert await ws.recv() == f"{offered} {name}"
            assert "TLS handshake" not in relay.log(), relay.log()

    run(main())


def test_tls_sessions_resume_and_a_session_stays_with_its_name(make_relay, pki, certs):  # noqa: F811
    """
    A browser reconnecting resumes its TLS session (1.2 by session ID, 1.3 by
    a stateful ticket). A TLS 1.2 session offered for another name stays
    bound to the name it was made for (OpenSSL resumes it anyway): a request
    for the other domain on it gets 421, never that domain's answer.
    """
    relay = make_relay(f"""
        [relay]
        listen = ssl:{{port}}:interface=127.0.0.1
        {domains(9, ("a.test", certs["a"]), ("b.test", certs["b"]))}
    """, start=True)
    upgrade = ("GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

    def ask(context, name, session=None, request="GET / HTTP/1.1\r\nHost: {}\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as raw:
            with context.wrap_socket(raw, server_hostname=name, session=session) as conn:
                conn.sendall(request.format(name).encode())
                head = conn.recv(4096)   # TLS 1.3 tickets arrive with the first answer
                return head, conn.session, conn.session_reused, conn.getpeercert(binary_form=True)

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = trusting(pki, maximum=version, minimum=version)
        context.set_alpn_protocols(["http/1.1"])
        head, session, reused, _ = ask(context, "a.test")
        assert head.startswith(b"HTTP/1.1 426 ") and not reused
        head, _, reused, der = ask(context, "a.test", session)
        assert head.startswith(b"HTTP/1.1 426 ") and reused, version
        assert x509.load_der_x509_certificate(der) == certs["a"].leaf
    context = trusting(pki, maximum=ssl.TLSVersion.TLSv1_2, check_hostname=False)
    _, session, _, _ = ask(context, "a.test")
    head, _, reused, _ = ask(context, "b.test", session, upgrade)
    assert not reused or head.startswith(b"HTTP/1.1 421 "), head
    head, _, _, _ = ask(context, "b.test", None, upgrade)
    assert head.startswith(b"HTTP/1.1 502 "), head     # b.test's own connection reaches its (absent) origin


def test_without_a_default_certificate_no_sni_or_an_unknown_name_fails_the_handshake(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                {domains(origin.port, ("a.test", certs["a"]))}
            """, start=True)
            lax = trusting(pki, check_hostname=False)
            for url, name in ((f"wss://127.0.0.1:{relay.port}/", None), (f"wss://c.test:{relay.port}/", "c.test")):
                with pytest.raises(ssl.SSLError):
                    async with connect(url, host="127.0.0.1", port=relay.port, ssl=lax, open_timeout=WAIT):
                        pass
            async with wss(relay, "a.test", trusting(pki)) as ws:
                await ws.send("still fine")
                assert await ws.recv() == "still fine"

    run(main())


def test_sni_and_host_naming_different_domains_get_421(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as origin:
            relay = make_relay(f"""
                [relay]
                listen = ssl:{{port}}:interface=127.0.0.1
                {domains(origin.port, ("a.test", certs["a"]), ("b.test", certs["b"]))}
            """, start=True)
            with pytest.raises(InvalidStatus) as caught:
                async with wss(relay, "b.test", trusting(pki), server_hostname="a.test"):
                    pass
            assert caught.value.response.status_code == 421
            assert b"opened for a.test" in caught.value.response.body
            assert origin.requests == []
            (line,) = relay.session_lines(1)
            assert " 421 " in line

    run(main())


# --- protocol versions ------------------------------------------------------------------------

def client_hello(version=b"\x03\x02", server_name=b"a.test"):
    """
    A minimal ClientHello record, TLS 1.1 by default: ECDHE suites (CBC for
    1.1, GCM for 1.2), SNI, P-256/P-384, uncompressed points, and ECDSA/RSA
    SHA-256 signatures (which only 1.2 reads).
    """
    suites = b"".join(struct.pack("!H", s) for s in (0xC02B, 0xC02F, 0xC009, 0xC013, 0xC00A, 0xC014, 0x002F))
    sni = struct.pack("!HBH", len(server_name) + 3, 0, len(server_name)) + server_name
    groups = struct.pack("!HHH", 4, 23, 24)
    signatures = struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)
    extensions = (struct.pack("!HH", 0, len(sni)) + sni + struct.pack("!HH", 10, len(groups)) + groups
                  + struct.pack("!HHBB", 11, 2, 1, 0) + struct.pack("!HH", 13, len(signatures)) + signatures)
    body = (version + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def answer_to(port, hello):
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(hello)
        data = b""
        while len(data) < 7:
            chunk = s.recv(7 - len(data))
            if not chunk:
                break
            data += chunk
        return data


def test_tls_11_is_refused_and_12_accepted(make_relay, pki, certs):  # noqa: F811
    relay = make_relay(f"""
        [relay]
        listen = ssl:{{port}}:interface=127.0.0.1
        {domains(9, ("a.test", certs["a"]))}
    """, start=True)
    # A hand-made TLS 1.1 ClientHello, whatever the local OpenSSL can still offer:
    # a fatal alert (21), protocol_version (70).
    answer = answer_to(relay.port, client_hello())
    assert answer[:1] == b"\x15" and answer[5:7] == b"\x02\x46", answer
    assert answer_to(relay.port, client_hello(version=b"\x03\x03"))[:1] == b"\x16"   # TLS 1.2: a ServerHello

    # And Python's ssl module limited to TLS 1.1 (it needs SECLEVEL=0 to offer it at all).
    if ssl.HAS_TLSv1_1:
        old = trusting(pki, check_hostname=False)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with pytest.warns(DeprecationWarning):
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as raw:
            with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|protocol version"):
                old.wrap_socket(raw, server_hostname="a.test")
    tls12 = trusting(pki, maximum=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as raw:
        with tls12.wrap_socket(raw, server_hostname="a.test") as wrapped:
            assert wrapped.version() == "TLSv1.2"


def test_tls_min_version_13_refuses_12(make_relay, pki, certs):  # noqa: F811
    relay = make_relay(f"""
        [relay]
        listen = ssl:{{port}}:interface=127.0.0.1
        tls_min_version = 1.3
        {domains(9, ("a.test", certs["a"]))}
    """, start=True)
    with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as raw:
        with pytest.raises(ssl.SSLError):
            trusting(pki, maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname="a.test")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as raw:
        with trusting(pki).wrap_socket(raw, server_hostname="a.test") as wrapped:
            assert wrapped.version() == "TLSv1.3"


# --- https origins ---------------------------------------------------------------------------

def test_https_origins_are_verified_and_refusals_logged(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin(certs["origin"]) as good, Origin(certs["other"]) as misnamed, \
                Origin(certs["stranger"]) as stranger, Origin(certs["expired"]) as expired, \
                Origin(certs["origin"]) as checked:
            def https(name, origin, extra):
                return f"""
                    [domain:{name}]
                    origins = 127.0.0.1:{origin.port}
                    origin_protocol = https
                    {extra}
                """
            ca = f"origin_ca = {pki.root.path}"
            relay = make_relay(f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1
                {https("origin.test", good, ca)}
                {https("valid.test", good, ca + chr(10) + "origin_host = origin.test")}
                {https("wrongname.test", misnamed, ca + chr(10) + "origin_sni = origin.test")}
                {https("unknownca.test", stranger, ca + chr(10) + "origin_sni = origin.test")}
                {https("expired.test", expired, ca + chr(10) + "origin_sni = origin.test")}
                {https("noverify.test", stranger, "origin_verify = off" + chr(10) + "origin_sni = origin.test")}
                {https("system.test", good, "origin_sni = origin.test")}
                {https("checked.test", checked, ca + chr(10) + "origin_sni = origin.test" + chr(10) +
                       "health_interval = 0.2" + chr(10) + "health_timeout = 0.2" + chr(10) + "health_fall = 1")}
            """, start=True)

            def plain(name):
                return connect(f"ws://{name}/echo", host="127.0.0.1", port=relay.port, open_timeout=WAIT)

            for name in ("origin.test", "valid.test", "noverify.test"):
                async with plain(name) as ws:
                    await ws.send(name)
                    assert await ws.recv() == name
            assert good.server_names == ["origin.test", "origin.test"]     # the domain, then origin_host
            assert stranger.server_names == ["origin.test"]                 # origin_sni
            assert [r.headers["X-Forwarded-Proto"] for r in good.requests] == ["http", "http"]

            for name in ("wrongname.test", "unknownca.test", "expired.test", "system.test"):
                with pytest.raises(InvalidStatus) as caught:
                    async with plain(name):
                        pass
                assert caught.value.response.status_code == 502, name
                assert b"TLS certificate was refused" in caught.value.response.body
            assert misnamed.requests == expired.requests == [] and len(stranger.requests) == 1

            # The active checks of an https domain use its origin_ca and SNI too: they pass.
            for _ in range(int(WAIT / 0.05)):
                if len(checked.requests) >= 2:
                    break
                await asyncio.sleep(0.05)   # the checks run every 0.2 s; bounded by WAIT
            assert len(checked.requests) >= 2 and set(checked.server_names) == {"origin.test"}

            log = relay.log()
            assert "checked.test" not in log.replace("[domain:checked.test]", "")  # never down, nothing refused
            assert "noverify.test]: origin_verify = off: origin certificates are not checked" in log
            assert ("wrongname.test (origin.test): certificate refused: wrong name: the certificate is not "
                    "for origin.test (it names other.test)") in log
            assert "unknownca.test (origin.test): certificate refused: unknown CA" in log
            assert "expired.test (origin.test): certificate refused: the certificate has expired" in log
            assert "system.test (origin.test): certificate refused: unknown CA" in log   # not in the system store

    run(main())


def test_follow_uses_the_scheme_the_client_used(make_relay, pki, certs):  # noqa: F811
    async def main():
        async with Origin() as plain_origin, Origin(certs["origin"]) as tls_origin:
            tls_port = free_port()
            relay = make_relay(f"""
                [relay]
                listen = tcp:{{port}}:interface=127.0.0.1 ssl:{tls_port}:interface=127.0.0.1
                [domain:plain.test]
                origins = 127.0.0.1:{plain_origin.port}
                [domain:secure.test]
                origins = 127.0.0.1:{tls_origin.port}
                origin_ca = {pki.root.path}
                certificate = {certs['secure'].certificate}
                private_key = {certs['secure'].key}
            """, start=True)
            async with connect("ws://plain.test/x", host="127.0.0.1", port=relay.port, open_timeout=WAIT) as ws:
                await ws.send("plain")
                assert await ws.recv() == "plain"
            async with connect(f"wss://secure.test:{tls_port}/x", host="127.0.0.1", port=tls_port,
                               ssl=trusting(pki), open_timeout=WAIT) as ws:
                await ws.send("secure")
                assert await ws.recv() == "secure"
            assert plain_origin.requests[0].headers["X-Forwarded-Proto"] == "http"
            assert tls_origin.requests[0].headers["X-Forwarded-Proto"] == "https"
            assert "proto=https" in tls_origin.requests[0].headers["Forwarded"]
            assert tls_origin.server_names == ["secure.test"]
            # The same domain from the plain listener: ws:// to the TLS origin, which fails.
            with pytest.raises(InvalidStatus) as caught:
                async with connect("ws://secure.test/x", host="127.0.0.1", port=relay.port, open_timeout=WAIT):
                    pass
            assert caught.value.response.status_code == 502
            assert len(tls_origin.requests) == 1

    run(main())


# --- startup -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["expired", "mismatched"])
def test_a_bad_certificate_stops_twistd_with_one_clear_line(tmp_path, certs, case):
    cert = certs["expired"] if case == "expired" else certs["a"]
    key = certs["expired"].key if case == "expired" else certs["b"].key
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\nlisten = ssl:{free_port()}:interface=127.0.0.1\n"
                      f"[domain:a.test]\norigins = o\ncertificate = {cert.certificate}\nprivate_key = {key}\n")
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "wsrelay", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=tmp_path)
    assert result.returncode != 0
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    if case == "expired":
        assert f"{config}: [domain:a.test] certificate: {cert.certificate}: the certificate expired on " in last
    else:
        assert last.endswith(f"{config}: [domain:a.test] private_key: {key}: does not match the certificate "
                             f"in {cert.certificate} (CN=a.test)")
