"""
Every configuration key, declared once: where it may be written, its type,
its default, and what it means.

The reader takes each key's value through its Kind (wsrelay/config/kinds.py),
the key sets it accepts per section come from here, and so do the commented
etc/relay.ini and the key tables of docs/configuration.md
(`python -m wsrelay.config.render --write` regenerates both; a test checks they
are current). Adding a key: one Key below, one field on the value it fills
(wsrelay/config/values.py), then regenerate.

Scopes: RELAY keys are written in [relay]; DOMAIN keys in [domain:...];
INHERITED keys in either, a domain's value defaulting to [relay]'s; ACCOUNTING
keys in [accounting]. The options of selectors and statistics stores are
declared by their plugins (`options`) and rendered alongside.
"""

from dataclasses import dataclass

from wsrelay import tls
from wsrelay.accounting.billing import CYCLES, METHODS
from wsrelay.config import kinds as k
from wsrelay.config.values import HEALTH_CHECKS, PROTOCOLS

RELAY = ("relay",)
DOMAIN = ("domain",)
INHERITED = ("relay", "domain")
ACCOUNTING = ("accounting",)


@dataclass(frozen=True)
class Key:
    """One key of one scope."""

    name: str
    scope: tuple
    kind: k.Kind
    default: object     # the value when the key is absent or empty (a domain's inherited: [relay]'s)
    shown: str          # the default as an operator writes it ("" : empty)
    help: str           # one line: what it sets
    ini: str = None     # its comment in etc/relay.ini; None: help (none right after a Topic); "": the one above
    doc: str = ""       # its cell in docs/configuration.md; "" : help
    table: str = ""     # the docs table it is in ("" : the table of its first scope)
    group: str = ""     # the value it fills: "" (the config or domain), health, billing, accounting
    field: str = ""     # its attribute there, when not its name
    example: str = None  # written in etc/relay.ini instead of `shown`
    commented: bool = False  # etc/relay.ini shows it commented out (it has no single default)
    doc_default: str = ""  # the docs' default column, when not `shown`
    in_ini: bool = True  # listed in etc/relay.ini (False: a note there names it)

    @property
    def attribute(self):
        return self.field or self.name


@dataclass(frozen=True)
class Topic:
    """A paragraph of etc/relay.ini opening a group of keys (after a blank line)."""

    ini: str
    scope: tuple = RELAY


KEYS = (
    Key("listen", RELAY, k.Listeners(), ("tcp:8080:interface=127.0.0.1",), "tcp:8080:interface=127.0.0.1",
        "The listeners: Twisted server endpoint strings, white-space separated.",
        ini="One or more Twisted server endpoint strings, separated by white space. "
            "tcp:PORT[:interface=ADDR] serves ws://. ssl:PORT[:interface=ADDR][:backlog=N] serves wss:// "
            "with the certificates below (chosen by the name the client asks for, SNI); it takes no "
            "certificate options of its own. Both get backlog=1024 unless the string names its own. "
            "Example: tcp:80 ssl:443 (all IPv4 interfaces); interface=\\:\\: for IPv6.\n"
            ":proxy_protocol=on after an entry (default off): every connection to it must start with a "
            "PROXY protocol v1 or v2 header (before TLS on ssl:) from one of trusted_proxies, naming the "
            "real client; others are closed unanswered. Example behind an L4 balancer: "
            "tcp:80:proxy_protocol=on",
        doc="One or more Twisted server endpoint strings, white-space separated. "
            "`ssl:PORT[:interface=ADDR][:backlog=N]` is a TLS (`wss://`) listener using the certificates "
            "below (see [TLS](#tls)); it takes no certificate options of its own, and Twisted's `tls:` "
            "directory form is refused. `tcp` and `ssl` listeners get `backlog=1024` unless the string "
            "names its own (Twisted's default is 50). `systemd:domain=INET:index=N` (or `name=NAME`) "
            "serves a socket systemd passed in (socket activation, see "
            "[operations.md](operations.md#installing-with-systemd)). `:proxy_protocol=on` after any "
            "entry (`tcp:80:proxy_protocol=on`, `ssl:443:interface=10.0.0.5:proxy_protocol=on`) makes it "
            "a [PROXY protocol](#proxy-protocol) listener; default `off`. On a reload, entries added are "
            "opened and entries removed closed (an entry is known by its whole text, so changing an "
            "option of a listener whose port stays the same is refused by a reload, its port being still "
            "in use: restart instead)."),
    Topic("TLS for ssl: listeners. The default certificate: what clients that send no server name "
          "(SNI), or a name without a certificate of its own, are given. Empty: no default; such "
          "clients' handshakes fail. PEM files: the certificate file may hold the chain (leaf first, "
          "then intermediates, sent in that order) and the key too (then private_key may stay empty). "
          "Relative paths start from this file's directory. A missing, unreadable, mismatched, expired "
          "or not yet valid certificate or key stops startup; one that expires within 14 days is logged "
          "as a warning at startup and once a day."),
    Key("certificate", RELAY, k.File(), None, "",
        "The default certificate (PEM) of ssl: listeners.", group="tls",
        doc="The default certificate for `ssl:` listeners, a PEM file: given to clients that send no "
            "server name (SNI) or a name no domain has a certificate for. The file may hold the chain "
            "after the certificate (sent in that order) and the key. Empty: no default, such handshakes "
            "fail. Relative paths start from the config file's directory."),
    Key("private_key", RELAY, k.File(), None, "",
        "The default certificate's private key (PEM, unencrypted); empty: in the certificate file.",
        group="tls", ini="",
        doc="The default certificate's private key, PEM, unencrypted. Empty: it is in the `certificate` "
            "file."),
    Key("tls_min_version", RELAY, k.Choice(*tls.MIN_VERSIONS), "1.2", "1.2",
        "The lowest TLS version clients may use: 1.2 or 1.3.",
        ini="Lowest TLS version clients may use: 1.2 or 1.3. Every certificate gets the same policy: "
            "this minimum, forward secret AEAD ciphers only (ECDHE with AES-GCM or ChaCha20-Poly1305 for "
            "TLS 1.2), no compression, no renegotiation, ALPN http/1.1 (browsers offer it), sessions "
            "resumable for 5 minutes.",
        doc="The lowest TLS version clients may use on `ssl:` listeners: `1.2` or `1.3`."),
    Key("http2", INHERITED, k.Flag(), False, "off",
        "HTTP/2 (h2 by ALPN, WebSockets over RFC 8441) on ssl: listeners.",
        ini="HTTP/2 on ssl: listeners (off | on): h2 is offered by ALPN before http/1.1, and WebSockets "
            "ride on streams of the page's connection (RFC 8441). This is the default of every domain, "
            "and what clients sending no SNI get.",
        doc="`on`: `ssl:` listeners offer HTTP/2 (`h2`, then `http/1.1`) by ALPN, and WebSockets are "
            "accepted over HTTP/2 streams (RFC 8441), see [HTTP/2](#http2). The default of every "
            "domain's own `http2` (for clients asking for it by SNI), and what clients sending no SNI "
            "get."),
    Key("max_concurrent_streams", RELAY, k.Count(), 100, "100",
        "HTTP/2 streams one client connection may have open at once.",
        ini="HTTP/2 streams one client connection may have open at once; a client opening more loses "
            "its connection (GOAWAY).",
        doc="HTTP/2 streams (WebSockets and requests) one client connection may have open at once "
            "(`SETTINGS_MAX_CONCURRENT_STREAMS`); a client opening more is sent GOAWAY and its "
            "connection closed."),
    Topic("Seconds between pings on each leg (client and origin); 0 turns pings off."),
    Key("heartbeat_interval", INHERITED, k.Seconds(), 60.0, "60",
        "Seconds between pings on each leg; 0: no pings.",
        doc="Seconds between pings on each leg; `0` turns pings off."),
    Key("heartbeat_timeout", INHERITED, k.Seconds(), 60.0, "60",
        "Seconds a leg may take to answer a ping before it is dropped; 0: never awaited.",
        ini="A leg that sends no pong within this many seconds of a ping is dead: it is dropped, and the "
            "other leg is closed (1001 towards the origin, or origin_gone_close_code towards the "
            "client). 0: pings are never awaited.",
        doc="A leg with no pong this many seconds after an unanswered ping is dead: it is dropped and "
            "the other leg closed. `0`: pings are sent but never awaited."),
    Key("connection_timeout", INHERITED, k.Seconds(), 60.0, "60",
        "Seconds without a data message before both legs are closed; 0: never.",
        ini="Seconds with no data message in either direction before both legs are closed with 1001 "
            "\"connection timeout\"; pings and pongs do not count. 0 = never.",
        doc="Seconds with no data message in either direction before both legs are closed with 1001 "
            "\"connection timeout\". Pings and pongs do not count. `0` = never."),
    Key("handshake_timeout", RELAY, k.Seconds(zero="must be greater than 0"), 5.0, "5",
        "Seconds a client has to send its opening handshake request.",
        ini="A client must send its complete opening handshake request within this many seconds.",
        doc="Seconds a client has to send its complete opening handshake request. Time spent waiting "
            "for the origin is bounded by `origin_connect_timeout` instead."),
    Key("origin_connect_timeout", RELAY, k.Seconds(zero="must be greater than 0"), 3.0, "3",
        "Seconds for the TCP connect plus the WebSocket handshake to one origin.",
        ini="Seconds for the TCP connect plus the WebSocket handshake to one origin: past it the client "
            "gets 504 (after one retry on the next origin when the TCP connect itself failed; an origin "
            "closing or resetting the connection before sending a byte is also retried there, else "
            "502).",
        doc="Seconds for the TCP connect plus the WebSocket handshake to one origin. Past it the client "
            "gets 504."),
    Key("max_message_size", INHERITED, k.Count(), 1048576, "1048576",
        "Largest message in bytes, either direction.",
        ini="Largest message, in bytes, accepted from either side; a larger one closes that leg with "
            "1009 (and the other with 1001 / origin_gone_close_code).",
        doc="Largest message in bytes, either direction, after inflation when compressed. A larger one "
            "closes that leg with 1009."),
    Key("origin_gone_close_code", RELAY, k.CloseCode(), 1011, "1011",
        "Close code the client gets when the origin side fails without a close frame.",
        ini="Close code sent to the client when the origin side fails without a close frame (connection "
            "lost, no pong, protocol error): 1011, 1012, 1013 or 1014.",
        doc="Close code the client gets when the origin side fails without a close frame (connection "
            "lost, no pong, protocol error): `1011`, `1012`, `1013` or `1014`.",
        field="origin_gone_close_code"),
    Key("trusted_proxies", RELAY, k.Networks(), (), "",
        "Addresses or CIDRs whose X-Forwarded-For (and PROXY header) is believed.",
        ini="Addresses or CIDRs (white-space separated) whose X-Forwarded-For is believed, and the only "
            "peers a proxy_protocol=on listener takes a header from. Empty: nobody's; the client "
            "address is always the TCP peer.",
        doc="Addresses or CIDRs whose `X-Forwarded-For` is believed, and the only peers a "
            "`proxy_protocol=on` listener takes a PROXY header from. Empty: nobody's (and "
            "`proxy_protocol=on` is a config error)."),
    Topic("How a domain chooses among its origins: round-robin, least-connections, hash, "
            "primary-backup, or the name of a third-party plugin (`twistd wsrelay --help-selectors` "
            "lists what is installed). A domain may set its own. The relay dials the chosen origin and, "
            "when its TCP connect fails, retries once on the selector's second choice."),
    Key("selector", INHERITED, k.Text(), "round-robin", "round-robin",
        "How a domain chooses among its origins (an installed selector's name).", group="selector",
        doc="How each domain chooses among its origins: `round-robin`, `least-connections`, `hash`, "
            "`primary-backup`, or a third-party plugin's name (see [Origin "
            "selection](#origin-selection)). An unknown name stops startup, listing the installed ones."),
    Key("eject_after", INHERITED, k.Count(minimum=0), 3, "3",
        "Failed connects in a row that eject an origin; 0: never.", group="health",
        ini="Passive health: an origin whose connect or handshake fails this many times in a row is "
            "ejected (taken out of rotation). 0 = never. Only what the origin did counts (refused, "
            "reset, closed, answered wrongly, too slow to answer); a timeout the relay itself was too "
            "busy to judge, or the relay running out of descriptors, does not.",
        doc="Passive health: an origin whose connect or handshake fails this many times in a row is "
            "ejected (out of rotation). Only what the origin did counts: refused, reset, closed, "
            "answered wrongly, or not answering within `origin_connect_timeout`; a timeout the relay's "
            "own event loop was too late to judge (more than 0.25 s behind), or the relay out of "
            "descriptors or ports, does not. `0`: never."),
    Key("eject_for", INHERITED,
        k.Seconds(zero="must be greater than 0 (eject_after = 0 turns ejection off)"), 30.0, "30",
        "Seconds an ejected origin stays out.", group="health",
        ini="Seconds an ejected origin stays out; then it gets handshakes again, and a single further "
            "failure ejects it again.",
        doc="Seconds an ejected origin stays out; then it gets handshakes again, and a single further "
            "failure ejects it again."),
    Key("health_interval", INHERITED, k.Seconds(), 0.0, "0",
        "Seconds between active checks of each origin; 0: none.", group="health", field="interval",
        ini="Active health checks: every health_interval seconds each origin gets a real WebSocket "
            "handshake (health_check = websocket) or an HTTP GET that must be answered 2xx "
            "(health_check = http), for health_path. 0 = no active checks.",
        doc="Active health checks: seconds between two checks of each origin. `0`: no active checks."),
    Key("health_check", INHERITED, k.Choice(*HEALTH_CHECKS), "websocket", "websocket",
        "What an active check is: websocket or http.", group="health", field="check",
        doc="`websocket`: a real WebSocket opening handshake that must be answered `101` with the right "
            "`Sec-WebSocket-Accept` (then closed with 1000); `http`: a `GET` that must be answered "
            "`2xx`.", ini=""),
    Key("health_path", INHERITED, k.RequestPath(), "/", "/",
        "The request path of the checks.", group="health", field="path", ini=""),
    Key("health_timeout", INHERITED, k.Seconds(zero="must be greater than 0"), 2.0, "2",
        "Seconds one check may take; at most health_interval.", group="health", field="timeout",
        ini="Seconds one check may take; at most health_interval.",
        doc="Seconds one check may take (TCP connect plus answer); at most `health_interval`."),
    Key("health_fall", INHERITED, k.Count(), 3, "3",
        "Failed checks in a row that take an origin out of rotation.", group="health", field="fall",
        ini="Failed checks in a row that take an origin out of rotation, and passed checks in a row "
            "that put it back (also ending an ejection early)."),
    Key("health_rise", INHERITED, k.Count(), 2, "2",
        "Passed checks in a row that put an origin back.", group="health", field="rise",
        doc="Passed checks in a row that put an origin back (also ending an ejection early).", ini=""),
    Key("panic_threshold", INHERITED, k.Percent(), 50, "50",
        "Percent of origins in rotation below which a domain balances over all of them; 0: never.",
        group="health",
        ini="Panic threshold (percent): when fewer than this share of a domain's origins are in "
            "rotation, the health verdicts are doubted and handshakes are balanced over all of its "
            "origins (as Envoy does), rather than piling onto the last ones or refusing everyone. 0 = "
            "never: with no origin of a domain in rotation, its handshakes get 503 at once.",
        doc="Percent. When fewer than this share of a domain's origins are in rotation (ejected or "
            "failing their checks), the verdicts are doubted and the selector balances over all of the "
            "domain's origins (Envoy's panic threshold), so an overloaded relay or a flaky check cannot "
            "shut a domain down. `0`: never; then a domain with no origin in rotation gets 503 at once. "
            "`50`, `50%` both accepted."),
    Topic("Relay processes sharing the listeners (SO_REUSEPORT: the kernel spreads new connections over "
          "them); auto = the CPUs this process may run on. With more than one, a parent process starts "
          "them, restarts one that dies, and passes SIGHUP and SIGTERM on; only tcp:, tcp6: and ssl: "
          "listeners. Read at start only (a reload does not change the number). Default 1: no parent, "
          "one process."),
    Key("workers", RELAY, k.CountOrAuto(zero="'0' must be 1 or more, or auto"), 1, "1",
        "Relay processes sharing the listeners, or auto (the CPUs this process may use).",
        doc="Relay processes sharing the listeners, or `auto` (the CPUs this process may run on). Above "
            "1 a parent process supervises them (see [operations.md](operations.md#several-workers)); "
            "only `tcp:`, `tcp6:` and `ssl:` listeners then. Read at startup only. Every limit below is "
            "per process, so per worker."),
    Topic("Limits, all counted per relay process (with workers = N: per worker). Over them a handshake "
          "is refused before any origin is dialled: 503 with Retry-After for the relay's own limits, 429 "
          "with Retry-After for one client address's."),
    Key("max_connections", RELAY, k.CountOrAuto(), None, "auto",
        "Live sessions per process; auto: from the open-files limit; 0: no limit.",
        ini="Live sessions: auto = what the open-files limit holds (two descriptors a session, 64 kept "
            "aside); 0 = no limit. A domain may set its own too.",
        doc="Live sessions (counted from the handshake on) in this process; over it a handshake gets 503 "
            "with `Retry-After`, nothing dialled. `auto`: what the open-files limit holds, two "
            "descriptors a session, 64 kept aside (`(RLIMIT_NOFILE - 64) / 2`, e.g. 32736 with "
            "`LimitNOFILE=65536`). `0`: no limit."),
    Key("max_connections_per_ip", RELAY, k.Count(minimum=0), 0, "0",
        "Live sessions per client address per process; 0: no limit (the default).",
        ini="Live sessions per client address (from X-Forwarded-For of trusted_proxies); 0 = no limit (the "
            "default: behind an L4 balancer or a carrier NAT one address is many users; see "
            "docs/operations.md for when to set it).",
        doc="Live sessions per client address (the peer, or from X-Forwarded-For of a `trusted_proxies` "
            "peer) in this process; over it 429 with `Retry-After`. `0`: no limit (the default, as in "
            "nginx, HAProxy and Envoy: clients behind an L4 balancer without the PROXY protocol or behind "
            "carrier-grade NAT share one address). When to set it: "
            "[operations.md](operations.md#limits)."),
    Key("handshake_rate_per_ip", RELAY, k.Rate(), 0.0, "0",
        "Handshakes per second per client address per process; 0: no limit (the default).",
        ini="Handshakes per second per client address, and of the whole process (a burst of one "
            "second's worth); 0 = no limit (the default).",
        doc="Handshakes per second per client address in this process, with a burst of one second's "
            "worth; over it 429 with `Retry-After` (when a handshake is allowed again). Fractions "
            "allowed; `0`: no limit (the default)."),
    Key("handshake_rate", RELAY, k.Rate(), 0.0, "0",
        "Handshakes per second of the whole process; 0: no limit (the default).",
        doc="Handshakes per second of the whole process (protects the origins from a reconnection "
            "storm); over it 503 with `Retry-After`. A refused handshake uses up neither rate. `0`: no "
            "limit (the default).", ini=""),
    Key("max_ping_rate", RELAY, k.Rate(), 10.0, "10",
        "Pings per second a peer may send on its leg; 0: no limit.",
        ini="Pings per second a client or origin may send; a faster one is closed with 1008.",
        doc="Pings per second a peer may send on its leg (a burst of one second's worth); a client or "
            "origin pinging faster is closed with 1008 \"too many pings\" (the other leg as after any "
            "protocol error). `0`: no limit."),
    Topic("Reload and shutdown. SIGHUP re-reads this file: sessions whose domain, origins or "
          "origin_protocol changed (or whose domain is gone) get 1012, and at SIGTERM every session gets "
          "1001, spread over drain_window seconds with jitter so clients do not reconnect all at once. "
          "0 = all at once."),
    Key("drain_window", RELAY, k.Seconds(), 10.0, "10",
        "Seconds over which reload and SIGTERM closes are spread; 0: all at once.",
        doc="Seconds over which the relay spreads the closes it starts itself: on a reload, sessions "
            "whose route changed get 1012; on SIGTERM, every session gets 1001. Each session gets its "
            "own slot of the window at a random point within it, so clients do not reconnect in one "
            "burst. `0`: all at once."),
    Key("drain_timeout", RELAY, k.Seconds(zero="must be greater than 0"), 30.0, "30",
        "SIGTERM: seconds after which the sessions still open are closed at once.",
        ini="SIGTERM: seconds after which the sessions still open are closed at once (a second SIGTERM "
            "does the same).",
        doc="SIGTERM: seconds after which the sessions still open are closed at once (1001, dropped 2 s "
            "later if their peers do not answer); a second SIGTERM does the same at once. Must be "
            "greater than 0; a `drain_window` longer than it is warned about."),
    Topic("Statistics (docs/statistics.md): where the per-domain counters are kept. sqlite (an "
          "embedded file, see [accounting] database), postgresql (one database for a fleet of relays, "
          "see [accounting] dsn), the name of another installed store, or off. Read at startup only "
          "(a reload does not change it)."),
    Key("accounting", RELAY, k.Text(), "sqlite", "sqlite",
        "The statistics store (an installed store's name) or off.", table="statistics", group="accounting",
        doc="The statistics store: `sqlite` (an embedded file on this machine), `postgresql` (one "
            "database for a fleet of relays; needs `pip install 'wsrelay[postgresql]'`), the name of "
            "another installed store (an `IAccountingFactory` plugin), or `off`. An unknown name stops "
            "startup and lists the installed ones."),
    Key("geoip_city_db", RELAY, k.File(), None, "",
        "A MaxMind-format City database: the region each client address is counted under.",
        table="statistics", group="accounting", doc_default="empty",
        ini="MaxMind-format databases (GeoIP2/GeoLite2 City and ASN) giving the region and ISP each "
            "client address is counted under. Empty: every public address is counted as region and ISP "
            "\"unknown\"; loopback and private addresses are \"private\" either way. Relative paths "
            "start from this file's directory.",
        doc="A MaxMind-format City database: the region (`US-CA`, or `DE` without a subdivision) each "
            "client address is counted under. Empty: `unknown`. Relative to the config file's "
            "directory; an unreadable file stops startup."),
    Key("geoip_asn_db", RELAY, k.File(), None, "",
        "A MaxMind-format ASN database: the ISP each client address is counted under.",
        table="statistics", group="accounting", doc_default="empty",
        doc="A MaxMind-format ASN database: the ISP (the AS organisation, else `AS64500`). Empty: "
            "`unknown`. Loopback, private and other non-global addresses are `private` either way.", ini=""),
    Topic("Billing (the usage report, docs/statistics.md#billing): the default of every domain, which "
          "a [domain:...] section may override."),
    Key("billing", INHERITED, k.Choice(*METHODS), "traffic", "traffic",
        "How traffic is billed: traffic (GB) or bandwidth (Mbit/s).", table="billing", group="billing",
        field="method",
        ini="traffic (GB, 10^9 bytes, sent to clients) or bandwidth (Mbit/s sent to clients: a day's "
            "peak 5-minute point, or a month's 95th percentile).",
        doc="`traffic`: GB (10^9 bytes) sent to clients. `bandwidth`: Mbit/s of client-bound traffic, "
            "the day's peak 5-minute point (daily cycle) or the 95th percentile of the month's 5-minute "
            "points (monthly)."),
    Key("billing_cycle", INHERITED, k.Choice(*CYCLES), "monthly", "monthly",
        "The billing cycle: daily or monthly (UTC).", table="billing", group="billing", field="cycle",
        ini="daily or monthly (UTC). A change of billing or billing_cycle takes effect at the next cycle "
            "boundary: the next UTC day from daily to daily, else the first of the next month.",
        doc="`daily` (UTC days) or `monthly` (UTC months). A change of `billing` or `billing_cycle` (by "
            "reload or restart) takes effect at the next cycle boundary: the next UTC day from daily to "
            "daily, else the first of the next month."),
    Key("price_tiers", INHERITED, k.TIERS, (), "",
        "Graduated prices per unit per cycle: FROM:PRICE words.", table="billing", group="billing",
        field="tiers",
        ini="Graduated prices per unit (GB or Mbit/s) per cycle: FROM:PRICE words ascending from 0, "
            "e.g. 0:0.10 10240:0.08. Empty: the report has no amount.",
        doc="Graduated prices per unit (GB or Mbit/s) per cycle: `FROM:PRICE` words ascending from 0, "
            "e.g. `0:0.10 10240:0.08`. Empty: the report has no amount."),

    # [accounting]
    Key("flush_interval", ACCOUNTING, k.Seconds(), 10.0, "10",
        "Seconds between flushes of the in-memory counters.", table="statistics", group="accounting",
        ini="Seconds between flushes of the in-memory counters (one transaction each); more than 0, at "
            "most 300. The relay also flushes when it stops.",
        doc="Seconds between flushes of the in-memory counters, one transaction each; more than 0, at "
            "most 300. Also flushed when the relay stops."),
    Key("node_id", ACCOUNTING, k.Text(), "", "",
        "This relay's name in batch ids and per-node peaks; empty: the host name.", table="statistics",
        group="accounting", doc_default="the host name",
        ini="This relay's name in the batch ids that make a retried flush count once, and in the "
            "per-node peak of live sessions. Empty: the host name.",
        doc="This relay's name in batch ids and in the per-node peak of live sessions; give each relay "
            "writing one database its own."),
    Key("retention_5m", ACCOUNTING, k.Days(), 93 * 86400.0, "93",
        "Days the 5-minute points are kept.", table="statistics", group="accounting",
        ini="Days the 5-minute, hourly and daily points are kept (at least 1).",
        doc="Days the 5-minute points are kept; at least 1."),
    Key("retention_1h", ACCOUNTING, k.Days(), 186 * 86400.0, "186",
        "Days the hourly points are kept.", table="statistics", group="accounting",
        doc="Days the hourly points are kept; at least 1.", ini=""),
    Key("retention_1d", ACCOUNTING, k.Days(), 366 * 86400.0, "366",
        "Days the daily points are kept.", table="statistics", group="accounting",
        doc="Days the daily points are kept; at least 1.", ini=""),
    Key("admin", ACCOUNTING, k.Endpoint(), None, "",
        "The admin HTTP API's server endpoint string; empty: no admin API.", table="statistics",
        group="accounting", doc_default="empty",
        ini="The admin HTTP API (statistics queries as JSON, docs/openapi.yaml): one Twisted server "
            "endpoint string, e.g. tcp:9090:interface=127.0.0.1. Empty: off. Plain HTTP: keep it on "
            "loopback or a private network.",
        doc="The admin HTTP API ([statistics.md](statistics.md#admin-http-api), "
            "[openapi.yaml](openapi.yaml)): one Twisted server endpoint string, e.g. "
            "`tcp:9090:interface=127.0.0.1`. Empty: no admin API. Plain HTTP with a bearer token: keep "
            "it on loopback or a private network. A port in use stops startup. With `workers` above 1, "
            "only the first worker serves it."),
    Key("admin_token_file", ACCOUNTING, k.File(), None, "",
        "The file holding the admin API's bearer token (required with admin).", table="statistics",
        group="accounting", example="admin.token", commented=True, doc_default="empty",
        ini="Required with admin: a file holding the bearer token clients send as `Authorization: "
            "Bearer TOKEN` (at least 16 printable characters, no spaces); relative paths start from "
            "this file's directory. Read at startup.",
        doc="Required with `admin` (and refused without it): a file holding the API's bearer token, at "
            "least 16 printable ASCII characters without spaces (surrounding white space is ignored). "
            "Relative to the config file's directory; read at startup."),

    # [domain:...]
    Key("websocket", DOMAIN, k.Flag(), True, "on",
        "off: upgrade requests for this domain get 403.",
        doc="`off`: upgrade requests for this domain get 403."),
    Key("origins", DOMAIN, k.Origins(), (), "", example="127.0.0.1:8081",
        help="The origins, host[:port] [weight=N], white-space separated.",
        doc_default="(required while `websocket = on`)",
        ini="Origins as host[:port], white-space separated; a missing port is 80 for http and 443 for "
            "https. Required while websocket = on. Only these are ever dialled.\n"
            "weight=N after an origin (1-1000, default 1) gives it N times the share with round-robin, "
            "least-connections and hash: origins = a:8000 weight=3 b:8000",
        doc="`host[:port]` entries, white-space separated; IPv6 as `[addr]:port`. A missing port is 80 "
            "for http and 443 for https. `weight=N` after an origin (1 to 1000, default 1) gives it N "
            "times the share with `round-robin`, `least-connections` and `hash`: `origins = a:8000 "
            "weight=3 b:8000`. An origin may be listed once. Only these are ever dialled. The "
            "`selector` chooses; a failed TCP connect, or an origin that closes or resets the "
            "connection before sending a byte of its answer, is retried once on its second choice (an "
            "upgrade is idempotent; nginx's `proxy_next_upstream error`)."),
    Key("origin_protocol", DOMAIN, k.Choice(*PROTOCOLS), "follow", "follow",
        "The protocol to the origin: http, https or follow (the client's).",
        ini="Protocol to the origin: http (ws://, port 80 when an origin names none), https (wss://, "
            "port 443, certificate verified), or follow (the scheme the client used: http behind tcp: "
            "listeners, https behind ssl: listeners). Default: follow.",
        doc="`http` (ws:// to the origin, port 80 unless the origin names one), `https` (wss://, port "
            "443 unless named, certificate checked, see [TLS to the origin](#tls-to-the-origin)), or "
            "`follow` (the scheme the client used: `http` behind `tcp:` listeners, `https` behind "
            "`ssl:` listeners)."),
    Key("origin_host", DOMAIN, k.HostHeader(), None, "",
        "The Host header sent to the origin; empty: the client's own.",
        ini="Host header sent to the origin (and TLS server name for https); empty = the client's own "
            "Host header.",
        doc="Host header sent to the origin (and the TLS server name for https unless `origin_sni` is "
            "set). Empty: the client's own Host header."),
    Key("origin_ca", DOMAIN, k.File(), None, "",
        "A PEM bundle of the CAs trusted for https origins; empty: the system store.", group="tls",
        ini="TLS towards the origin. A PEM bundle of the CAs to trust for it instead of the system "
            "store; empty = the system store.",
        doc="A PEM bundle of the CA certificates to trust for this domain's TLS origins, instead of the "
            "system trust store."),
    Key("origin_verify", DOMAIN, k.Flag(), True, "on",
        "Whether the origin's certificate chain and name are checked.",
        ini="on: the origin's certificate chain and host name are checked (with service_identity), a "
            "failure gives the client 502 and is logged with its reason; off: not checked (a warning at "
            "startup). Default on.",
        doc="`on`: the origin's certificate chain and host name are checked; a failure gives the client "
            "502. `off`: not checked; a warning is logged at startup."),
    Key("origin_sni", DOMAIN, k.ServerName(), None, "",
        "The name sent as SNI to the origin and checked in its certificate.",
        ini="The name sent as SNI and checked in the origin's certificate; empty = origin_host, else the "
            "client's Host (without its port).",
        doc="The name sent as SNI to the origin and checked in its certificate. Empty: `origin_host` "
            "(without a port), else the client's Host (without a port). An IP address is checked "
            "against the certificate's IP addresses and not sent as SNI."),
    Key("certificate", DOMAIN, k.File(), None, "",
        "This domain's certificate (PEM) for clients asking for it by SNI.", group="tls", in_ini=False,
        doc="This domain's certificate for `ssl:` listeners, chosen when a client asks for the domain by "
            "SNI; like the `[relay]` key. Not in `[domain:*]` or an IP-address section (clients never "
            "ask for those by name): use the `[relay]` default. A `[domain:*.example.com]` certificate "
            "also serves the names it matches whose own section has none. A warning is logged at "
            "startup when the certificate does not name the domain."),
    Key("private_key", DOMAIN, k.File(), None, "",
        "This domain's certificate's private key; empty: in the certificate file.", group="tls",
        in_ini=False, doc="This domain's private key; like the `[relay]` key."),
    Key("allowed_origins", DOMAIN, k.BrowserOrigins(), frozenset(), "",
        "Browser Origin values accepted; empty: any.",
        ini="Browser Origin header values accepted, e.g. https://app.example.com, white-space separated; "
            "empty = any. Others get 403.",
        doc="Browser `Origin` values accepted, e.g. `https://app.example.com`, white-space separated. "
            "Empty: any. Others get 403. Requests without an Origin header (non-browser clients) are not "
            "affected."),
    Key("max_connections", DOMAIN, k.Count(minimum=0), 0, "0",
        "Live sessions of this domain per process; 0: only the [relay] limits.",
        ini="Live sessions of this domain (per process); 0 = only the [relay] limits. Default 0.",
        doc="Live sessions of this domain in this process; over it 503 with `Retry-After`. `0`: only the "
            "`[relay]` limits apply."),
    Key("compression", DOMAIN, k.Flag(), False, "off",
        "permessage-deflate with clients.",
        ini="permessage-deflate with clients (off | on). Default off.",
        doc="`on`: negotiate permessage-deflate with clients that offer it."),
    Key("origin_compression", DOMAIN, k.Flag(), False, "off",
        "Offer permessage-deflate to the origin.",
        ini="Offer permessage-deflate to the origin (off | on). Default off.",
        doc="`on`: offer permessage-deflate to the origin. The two legs negotiate independently; the "
            "relay inflates and deflates between them. Each compressed leg costs zlib memory (up to a "
            "few hundred KiB per direction)."),
    Key("plans", DOMAIN, k.PLANS, (), "",
        "This domain's prepaid traffic plans: SIZEGB:FROM:TO words.", table="billing", group="billing",
        ini="Prepaid traffic plans of this domain, consumed before anything is billable: SIZEGB:FROM:TO "
            "words with UTC dates, the end excluded, e.g. 500GB:2026-11-01:2026-12-01. Empty: none.",
        doc="Prepaid traffic plans consumed before anything is billable: `SIZEGB:FROM:TO` words with UTC "
            "dates, the end excluded, e.g. `500GB:2026-11-01:2026-12-01`. Consumed by traffic sent "
            "while valid, on days billed by traffic, the plan expiring first first."),
)


def keys(scope):
    """The Keys that may be written in `scope` ("relay", "domain" or "accounting"), in order."""
    return tuple(key for key in KEYS if isinstance(key, Key) and scope in key.scope)


def key(scope, name):
    """The Key `name` of `scope`; KeyError when there is none."""
    for found in keys(scope):
        if found.name == name:
            return found
    raise KeyError(f"{scope}: {name}")


def names(scope, group=None):
    """The key names of `scope` (of one `group` when given)."""
    return frozenset(key.name for key in keys(scope) if group is None or key.group == group)
