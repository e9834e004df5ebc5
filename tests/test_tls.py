"""
TLS without sockets: the certificate keys of the config and every way a PEM
file can be unusable, which certificate a server name gets, SNI/Host
agreement, expiry with an explicit `now`, the ssl:PORT listener form, the
policy on every context (handshakes over memory BIOs), origin certificate
checks, and the service pieces on a MemoryReactorClock.
"""

import re
import time
import sys

import pytest
from OpenSSL import SSL
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import globalLogPublisher

from tests.test_tls_pki import pki  # noqa: F401  (a fixture)
from wsrelay import tls
from wsrelay.config import ConfigError, Origin, parse_config
from wsrelay.process.service import build_service
from wsrelay.process.relay import LISTEN_BACKLOG
from wsrelay.process.tap import Options


def config_with(pki_dir, relay="", domains="", listen="ssl:8443:interface=127.0.0.1", path=None, now=None):
    text = f"[relay]\nlisten = {listen}\n{relay}\n{domains}\n"
    if "[domain:" not in domains:
        text += "[domain:*]\norigins = 127.0.0.1:9000\n"
    return parse_config(text, str(path or pki_dir / "relay.ini"), now)


@pytest.fixture(scope="module")
def certs(pki):  # noqa: F811
    """Leaf certificates the unit tests share."""
    intermediate = pki.authority("wsrelay test intermediate CA", issuer=pki.root)
    return {
        "default": pki.issue("unit-default", ["relay.test"]),
        "a": pki.issue("unit-a", ["a.test"]),
        "b": pki.issue("unit-b", ["b.test"], issuer=intermediate, chain=[intermediate.certificate]),
        "wild": pki.issue("unit-wild", ["*.example.test"]),
        "combined": pki.issue("unit-combined", ["c.test"], combined=True),
        "expiring": pki.issue("unit-expiring", ["soon.test"], valid_days=11),   # 10 days left
        "expired": pki.issue("unit-expired", ["old.test"], valid_from=-30, valid_days=20),
        "future": pki.issue("unit-future", ["new.test"], valid_from=5),
        "encrypted": pki.issue("unit-encrypted", ["e.test"], password=b"secret"),
        "intermediate": intermediate,
    }


def domain(name, issued, extra=""):
    return (f"[domain:{name}]\norigins = 127.0.0.1:9000\ncertificate = {issued.certificate}\n"
            f"private_key = {issued.key}\n{extra}\n")


# --- config ---------------------------------------------------------------------------------

def test_defaults_no_certificates_tls_12_origins_verified(pki):  # noqa: F811
    config = parse_config("[domain:*]\norigins = o\n", "x.ini")
    d = config.catch_all
    assert config.certificate is None and config.tls_min_version == "1.2" and config.tls_listeners == ()
    assert d.certificate is None and d.origin_ca is None and d.origin_verify and d.origin_sni is None


def test_certificates_load_with_their_chain_in_order(pki, certs):  # noqa: F811
    config = config_with(pki.dir, relay=f"certificate = {certs['default'].certificate}\n"
                                        f"private_key = {certs['default'].key}",
                         domains=domain("a.test", certs["a"]) + domain("b.test", certs["b"]))
    assert config.certificate.leaf == certs["default"].leaf
    b = config.domain_for("b.test").certificate
    assert b.chain == (certs["b"].leaf, certs["intermediate"].certificate)
    assert config.tls_listeners == ("ssl:8443:interface=127.0.0.1",)
    assert [where for where, _ in config.server_certificates()] == ["[relay]", "[domain:a.test]", "[domain:b.test]"]
    assert config.warnings == ()


def test_a_relative_path_is_taken_from_the_config_directory_and_the_key_may_share_the_file(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains="[domain:c.test]\norigins = o\ncertificate = unit-combined.pem\n")
    assert config.domain_for("c.test").certificate.key_path == str(pki.dir / "unit-combined.pem")


def test_tls_min_version_and_origin_keys(pki):  # noqa: F811
    config = parse_config(f"""
[relay]
tls_min_version = 1.3
[domain:chat.test]
origins = o
origin_protocol = https
origin_ca = {pki.root.path}
origin_sni = Origin.Internal.
""", "x.ini")
    d = config.domain_for("chat.test")
    assert config.tls_min_version == "1.3"
    assert d.origin_ca == (pki.root.certificate,) and d.origin_sni == "origin.internal" and d.origin_verify


BAD = [
    # (what, relay lines, domain lines, key, words in the message)
    ("missing certificate", "", "certificate = {dir}/nope.pem\nprivate_key = {a.key}", "certificate",
     ["{dir}/nope.pem", "no such file"]),
    ("missing key", "", "certificate = {a.certificate}\nprivate_key = {dir}/nope.key", "private_key",
     ["{dir}/nope.key", "no such file"]),
    ("a directory", "", "certificate = {dir}\nprivate_key = {a.key}", "certificate", ["is a directory"]),
    ("not PEM", "", "certificate = {dir}/relay.ini\nprivate_key = {a.key}", "certificate",
     ["{dir}/relay.ini", "holds no PEM certificate"]),
    ("a certificate for a key", "", "certificate = {a.certificate}\nprivate_key = {a.certificate}",
     "private_key", ["holds no usable PEM private key"]),
    ("mismatched", "", "certificate = {a.certificate}\nprivate_key = {b.key}", "private_key",
     ["{b.key}", "does not match the certificate in {a.certificate}"]),
    ("expired", "", "certificate = {expired.certificate}\nprivate_key = {expired.key}", "certificate",
     ["{expired.certificate}", "the certificate expired on"]),
    ("not yet valid", "", "certificate = {future.certificate}\nprivate_key = {future.key}", "certificate",
     ["not valid before"]),
    ("encrypted key", "", "certificate = {encrypted.certificate}\nprivate_key = {encrypted.key}", "private_key",
     ["encrypted"]),
    ("key without certificate", "", "private_key = {a.key}", "private_key", ["without certificate"]),
    ("default certificate expired", "certificate = {expired.certificate}\nprivate_key = {expired.key}", "",
     "certificate", ["expired"]),
    ("origin_ca missing", "", "origin_ca = {dir}/ca-nope.pem", "origin_ca", ["{dir}/ca-nope.pem", "no such file"]),
    ("origin_ca not PEM", "", "origin_ca = {a.key}", "origin_ca", ["holds no PEM certificate"]),
    ("origin_verify", "", "origin_verify = maybe", "origin_verify", ["not on or off"]),
    ("origin_sni", "", "origin_sni = a b", "origin_sni", ["not a host name"]),
    ("tls_min_version", "tls_min_version = 1.1", "", "tls_min_version", ["1.2, 1.3"]),
]


@pytest.mark.parametrize("what, relay, lines, key, words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_certificate_stops_startup_naming_file_section_key_and_pem(pki, certs, what, relay, lines, key, words):  # noqa: F811
    values = dict(certs, dir=pki.dir)
    (pki.dir / "relay.ini").write_text("not a certificate\n")
    section = "relay" if relay else "domain:a.test"
    with pytest.raises(ConfigError) as caught:
        config_with(pki.dir, relay=relay.format(**values),
                    domains="[domain:a.test]\norigins = o\n" + lines.format(**values))
    message = str(caught.value)
    assert message.startswith(f"{pki.dir / 'relay.ini'}: [{section}] {key}: ")
    for word in words:
        assert word.format(**values) in message


@pytest.mark.parametrize("section", ["*", "10.0.0.1"])
def test_the_catch_all_and_addresses_take_no_certificate(pki, certs, section):  # noqa: F811
    with pytest.raises(ConfigError, match=rf"\[domain:{re.escape(section)}\] certificate: .*set the default certificate in \[relay\]"):
        config_with(pki.dir, domains=domain(section, certs["a"]))


@pytest.mark.parametrize("listen, words", [
    ("ssl:8443", "no certificate is configured"),
    ("ssl:8443:privateKey=k.pem:certKey=c.pem", "privateKey= is not taken here"),
    ("tls:/etc/pems:port=443", "Twisted's own directory-of-PEMs listener"),
    ("ssl:http", "port 'http' is not 0-65535"),
    ("ssl:8443:interface=example.com", "is not an IP address"),
    ("ssl:8443:frob=1", "unknown or repeated option frob="),
])
def test_tls_listener_mistakes(listen, words):
    with pytest.raises(ConfigError, match=r"x.ini: \[relay\] listen: ") as caught:
        parse_config(f"[relay]\nlisten = {listen}\n[domain:*]\norigins = o\n", "x.ini")
    assert words in str(caught.value)


def test_warnings_for_names_verification_and_unused_certificates(pki, certs):  # noqa: F811
    config = config_with(pki.dir, listen="tcp:8080", domains=(
        domain("wrong.test", certs["a"]) + "[domain:plain.test]\norigins = o\norigin_protocol = http\n"
        f"origin_ca = {pki.root.path}\n[domain:lax.test]\norigins = o\norigin_protocol = https\norigin_verify = off\n"
        + domain("x.example.test", certs["wild"]) + domain("*.example.test", certs["wild"])))
    text = "\n".join(config.warnings)
    assert f"[domain:wrong.test] certificate: {certs['a'].certificate} is not for wrong.test (it names a.test)" in text
    assert "[domain:plain.test]: origin_ca has no effect with origin_protocol = http" in text
    assert "[domain:lax.test]: origin_verify = off: origin certificates are not checked" in text
    assert "certificates are configured but no listener is TLS" in text
    assert "example.test" not in text   # a wildcard certificate covers one more label and itself
    assert len(config.warnings) == 4


# --- the functional core ------------------------------------------------------------------

def test_sni_selects_exact_then_wildcard_then_default(pki, certs):  # noqa: F811
    load = lambda c: tls.load_server_certificate(str(c.certificate), str(c.key), pki.now.timestamp())
    a, wild, default = load(certs["a"]), load(certs["wild"]), load(certs["default"])
    chosen = tls.CertificateMap({"a.test": a}, {"example.test": wild}, default)
    assert chosen.select("a.test") is a and chosen.select("A.TEST.") is a
    assert chosen.select("x.example.test") is wild
    assert chosen.select("example.test") is default and chosen.select("y.x.example.test") is default
    assert chosen.select(None) is default and chosen.select("") is default
    assert tls.CertificateMap({"a.test": a}).select("b.test") is None
    assert chosen.all() == [default, a, wild]


def test_sni_and_host_must_name_the_same_domain(pki):  # noqa: F811
    config = parse_config("[domain:a.test]\norigins = o\n[domain:b.test]\norigins = o\n"
                          "[domain:*.w.test]\norigins = o\n[domain:*]\norigins = o\n", "x.ini")
    d = config.domain_for
    assert tls.misdirected(config, None, d("b.test")) is None                 # no SNI: the Host decides
    assert tls.misdirected(config, "a.test", d("a.test:8443")) is None
    assert tls.misdirected(config, "x.w.test", d("y.w.test")) is None          # the same wildcard section
    assert tls.misdirected(config, "unknown.test", d("other.test")) is None    # both the catch-all
    assert "opened for a.test" in tls.misdirected(config, "a.test", d("b.test"))
    assert tls.misdirected(config, "unknown.test", d("a.test"))


def test_expiry_is_judged_against_now(pki, certs):  # noqa: F811
    soon = tls.load_server_certificate(str(certs["expiring"].certificate), str(certs["expiring"].key),
                                       pki.now.timestamp())
    now = pki.now.timestamp()
    assert tls.expiring([("[relay]", soon)], now - 5 * 86400) == []              # 15 days left
    (found,) = tls.expiring([("[domain:soon.test]", soon)], now)
    assert 9.9 * 86400 < found.left < 10.1 * 86400
    assert found.message().startswith(f"[domain:soon.test] certificate {certs['expiring'].certificate} expires in 10.0 days")
    (gone,) = tls.expiring([("[relay]", soon)], now + 11 * 86400)
    assert gone.left < 0 and "has expired" in gone.message()


def test_listener_strings():
    assert tls.parse_tls_listener("tcp:8080") is None
    assert tls.parse_tls_listener("unix:/run/x.sock") is None
    assert tls.parse_tls_listener("ssl:8443") == tls.TLSListener(8443)
    assert tls.parse_tls_listener("SSL:port=443:interface=0.0.0.0:backlog=99") == tls.TLSListener(443, "0.0.0.0", 99)
    assert tls.parse_tls_listener(r"ssl:443:interface=\:\:1") == tls.TLSListener(443, "::1")


def _pump(*connections):
    """Move the bytes each of two memory-BIO connections wrote to the other."""
    a, b = connections
    for source, sink in ((a, b), (b, a)):
        try:
            sink.bio_write(source.bio_read(65536))
        except SSL.WantReadError:
            pass


def _handshake(server_context, client_context, server_name=None, both=False):
    """A TLS handshake between two pyOpenSSL connections over memory BIOs: the client's Connection."""
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    if server_name:
        client.set_tlsext_host_name(server_name.encode())
    for _ in range(20):
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        _pump(client, server)
        try:
            client.do_handshake()
            server.do_handshake()
            return (client, server) if both else client
        except SSL.WantReadError:
            continue
    raise AssertionError("no handshake")


def test_each_context_has_the_policy_and_sni_picks_the_certificate(pki, certs):  # noqa: F811
    config = config_with(pki.dir, relay=f"certificate = {certs['default'].certificate}\n"
                                        f"private_key = {certs['default'].key}\ntls_min_version = 1.3",
                         domains=domain("a.test", certs["a"]) + domain("b.test", certs["b"]))
    server = tls.ServerTLS(tls.CertificateMap.from_config(config), config.tls_min_version)
    assert len(server.contexts) == 3
    for context in server.contexts.values():
        options = context.set_options(0)
        for flag in (SSL.OP_NO_COMPRESSION, tls.OP_NO_RENEGOTIATION, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1,
                     SSL.OP_NO_TLSv1_2, SSL.OP_CIPHER_SERVER_PREFERENCE):
            assert options & flag == flag

        ciphers = SSL.Connection(context).get_cipher_list()
        assert ciphers and all(c.startswith("TLS_") or (c.startswith("ECDHE-") and ("GCM" in c or "CHACHA" in c))
                               for c in ciphers), ciphers    # forward secret AEAD only

    client = SSL.Context(SSL.TLS_METHOD)
    for name, expected in (("a.test", "a"), ("b.test", "b"), ("c.test", "default"), (None, "default")):
        connection = _handshake(server.initial, client, name)
        assert connection.get_peer_certificate().to_cryptography() == certs[expected].leaf
        assert connection.get_protocol_version_name() == "TLSv1.3"
    chain = _handshake(server.initial, client, "b.test").get_peer_cert_chain(as_cryptography=True)
    assert chain[1] == certs["intermediate"].certificate            # the chain is sent in file order


def test_tls_12_minimum_by_default_and_no_certificate_without_a_default(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    server = tls.ServerTLS(tls.CertificateMap.from_config(config))
    assert server.initial.set_options(0) & SSL.OP_NO_TLSv1_2 == 0
    client = SSL.Context(SSL.TLS_METHOD)
    client.set_max_proto_version(SSL.TLS1_2_VERSION)
    assert _handshake(server.initial, client, "a.test").get_protocol_version_name() == "TLSv1.2"
    with pytest.raises(SSL.Error):
        _handshake(server.initial, client, None)          # no SNI, no default: no certificate to offer


def test_a_client_cannot_renegotiate(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    server_tls = tls.ServerTLS(tls.CertificateMap.from_config(config))
    client_context = SSL.Context(SSL.TLS_METHOD)
    client_context.set_max_proto_version(SSL.TLS1_2_VERSION)   # 1.3 has no renegotiation at all
    client, server = _handshake(server_tls.initial, client_context, "a.test", both=True)
    assert client.renegotiate()
    with pytest.raises(SSL.Error, match="no renegotiation"):
        for _ in range(5):
            _pump(client, server)
            for side in (client, server):
                try:
                    side.recv(100)
                except SSL.WantReadError:
                    pass
    assert server.total_renegotiations() == 0


def _offering(*protocols, session=None):
    """A client context offering `protocols` by ALPN (none: no ALPN extension at all)."""
    context = SSL.Context(SSL.TLS_METHOD)
    if protocols:
        context.set_alpn_protos(list(protocols))
    return context


@pytest.mark.parametrize("offered, selected", [
    ((b"http/1.1",), b"http/1.1"),                  # every browser on wss://
    ((b"h2", b"http/1.1"), b"http/1.1"),            # curl, OkHttp, URLSession: no h2 until HTTP/2 is served
    ((b"acme-tls/1",), b""),                        # nothing the relay speaks: the handshake goes on without one
    ((), b""),                                      # no ALPN extension (Python's ssl, websockets)
])
def test_alpn_offers_get_http11_or_nothing_never_an_alert_on_every_context(pki, certs, offered, selected):  # noqa: F811
    config = config_with(pki.dir, relay=f"certificate = {certs['default'].certificate}\n"
                                        f"private_key = {certs['default'].key}",
                         domains=domain("a.test", certs["a"]) + domain("b.test", certs["b"]))
    server = tls.ServerTLS(tls.CertificateMap.from_config(config))
    for name, expected in (("a.test", "a"), ("b.test", "b"), (None, "default"), ("c.test", "default")):
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):
            client_context = _offering(*offered)
            client_context.set_max_proto_version(version)
            connection = _handshake(server.initial, client_context, name)
            assert connection.get_peer_certificate().to_cryptography() == certs[expected].leaf
            assert connection.get_alpn_proto_negotiated() == selected, (name, version)


def test_alpn_holds_for_a_listener_without_a_default_certificate_and_after_a_reload(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    server = tls.ServerTLS(tls.CertificateMap.from_config(config))
    assert _handshake(server.initial, _offering(b"h2", b"http/1.1"), "a.test").get_alpn_proto_negotiated() \
        == b"http/1.1"
    server.adopt(tls.ServerTLS(tls.CertificateMap.from_config(
        config_with(pki.dir, domains=domain("b.test", certs["b"])))))
    connection = _handshake(server.initial, _offering(b"http/1.1"), "b.test")
    assert connection.get_peer_certificate().to_cryptography() == certs["b"].leaf
    assert connection.get_alpn_proto_negotiated() == b"http/1.1"


def test_a_client_asking_for_ocsp_stapling_is_served_without_a_staple(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    server = tls.ServerTLS(tls.CertificateMap.from_config(config))
    seen = []
    client_context = _offering(b"http/1.1")
    client_context.set_ocsp_client_callback(lambda connection, staple, data: seen.append(staple) or True)
    client = SSL.Connection(client_context, None)
    client.request_ocsp()
    server_side = SSL.Connection(server.initial, None)
    server_side.set_accept_state()
    client.set_connect_state()
    client.set_tlsext_host_name(b"a.test")
    for _ in range(20):
        for side in (client, server_side):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        _pump(client, server_side)
    client.do_handshake()                      # finished: no alert
    assert client.get_alpn_proto_negotiated() == b"http/1.1"
    assert seen in ([], [b""])                 # no staple (OpenSSL may not call back without one)


def test_origins_are_offered_http11_by_alpn(certs):
    """Servers that choose their protocol by ALPN (h2-first origins) are told the origin leg speaks HTTP/1.1."""
    offers = []
    served = tls.load_server_certificate(str(certs["a"].certificate), str(certs["a"].key), now=time.time())
    origin_context = tls.server_context(served)
    origin_context.set_alpn_select_callback(lambda connection, offered: offers.append(offered) or b"http/1.1")
    origin = SSL.Connection(origin_context, None)
    origin.set_accept_state()
    relay = tls.OriginTLS(verify=False).connection_creator("a.test").clientConnectionForTLS(None)
    relay.set_connect_state()
    for _ in range(20):
        for side in (relay, origin):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        _pump(relay, origin)
    relay.do_handshake()
    assert offers == [[b"http/1.1"]]
    assert relay.get_alpn_proto_negotiated() == b"http/1.1"


def test_origin_certificate_problems_in_plain_words(pki, certs):  # noqa: F811
    a = certs["a"].leaf
    assert tls.name_problem(a, "a.test") is None
    assert tls.name_problem(a, "b.test") == "wrong name: the certificate is not for b.test (it names a.test)"
    assert tls.name_problem(a, "127.0.0.1").startswith("wrong name")
    assert tls.verify_problem(10, certs["expired"].leaf, 0).startswith(
        "the certificate has expired (not after ")
    assert tls.verify_problem(20, a, 0) == "unknown CA (unable to get the local issuer certificate): " \
                                           "the origin's certificate, CN=a.test"


def test_the_name_an_origin_is_asked_for():
    config = parse_config("[domain:chat.test]\norigins = 10.0.0.5:8443\norigin_protocol = https\n"
                          "[domain:api.test]\norigins = o\norigin_host = backend.internal:8443\n"
                          "[domain:sni.test]\norigins = o\norigin_host = h.internal\norigin_sni = s.internal\n"
                          "[domain:*.w.test]\norigins = o\n", "x.ini")
    d = config.domain_for
    assert tls.origin_server_name(d("chat.test"), "Chat.Test:8443") == "chat.test"     # the domain
    assert tls.origin_server_name(d("x.w.test"), "x.w.test") == "x.w.test"
    assert tls.origin_server_name(d("api.test"), "backend.internal:8443") == "backend.internal"
    assert tls.origin_server_name(d("sni.test"), "h.internal") == "s.internal"
    origin = Origin("10.0.0.5", 8443)
    assert tls.check_server_name(d("chat.test"), origin) == "chat.test"
    assert tls.check_server_name(d("api.test"), origin) == "backend.internal"
    assert tls.check_server_name(d("sni.test"), origin) == "s.internal"
    assert tls.check_server_name(d("x.w.test"), origin) == "10.0.0.5"


def test_follow_is_https_to_443_behind_a_tls_listener():
    d = parse_config("[domain:*]\norigins = o o2:8000\n", "x.ini").catch_all
    assert d.origin_scheme("https") == "https" and d.origins[0].port_for("https") == 443
    assert d.origin_scheme("http") == "http" and d.origins[0].port_for("http") == 80
    assert d.origins[1].port_for("https") == 8000


# --- the service ---------------------------------------------------------------------------

def test_tls_listeners_get_the_relays_server_tls_and_a_real_backlog(pki, certs):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]),
                         listen="tcp:0:interface=127.0.0.1 ssl:8443:interface=127.0.0.1 ssl:9443:backlog=7")
    reactor = MemoryReactorClock()
    top = build_service(config, reactor)
    top.startService()
    try:
        assert [p[2] for p in reactor.tcpServers] == [LISTEN_BACKLOG]
        (one, two) = reactor.sslServers
        assert (one[0], one[3], one[4]) == (8443, LISTEN_BACKLOG, "127.0.0.1")
        assert (two[0], two[3], two[4]) == (9443, 7, "")
        assert one[2] is two[2] is top.tls and isinstance(top.tls, tls.ServerTLS)
    finally:
        top.stopService()


@pytest.fixture
def tls_log():
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in observer if e.get("log_namespace") == "wsrelay.service" and "path" in e]
    globalLogPublisher.removeObserver(observer)


def test_an_expiring_certificate_is_warned_about_at_startup_and_daily(pki, certs, tls_log):  # noqa: F811
    config = config_with(pki.dir, domains=domain("soon.test", certs["expiring"]))
    clock = MemoryReactorClock()
    clock.advance(pki.now.timestamp())
    top = build_service(config, clock)
    top.startService()
    try:
        (first,) = tls_log()
        assert first["log_level"].name == "warn" and first["path"] == str(certs["expiring"].certificate)
        assert first["where"] == "[domain:soon.test]" and "expires in 10.0 days" in first["message"]
        clock.advance(86400)
        assert len(tls_log()) == 2 and "expires in 9.0 days" in tls_log()[1]["message"]
        clock.advance(10 * 86400)
        assert tls_log()[-1]["log_level"].name == "error" and "has expired" in tls_log()[-1]["message"]
    finally:
        top.stopService()


def test_no_expiry_warning_for_a_fresh_certificate(pki, certs, tls_log):  # noqa: F811
    config = config_with(pki.dir, domains=domain("a.test", certs["a"]))
    clock = MemoryReactorClock()
    clock.advance(pki.now.timestamp())
    top = build_service(config, clock)
    top.startService()
    top.stopService()
    assert tls_log() == []


def test_the_relay_refuses_to_start_without_service_identity(monkeypatch):
    monkeypatch.setitem(sys.modules, "service_identity", None)
    monkeypatch.setitem(sys.modules, "service_identity.cryptography", None)
    with pytest.raises(SystemExit, match="service_identity is not installed.*pip install service-identity"):
        Options().parseOptions(["--config", "etc/relay.ini"])
