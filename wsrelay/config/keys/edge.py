"""
The keys of the client side: listeners, TLS, HTTP/2, the session's clocks and sizes, admission
limits, and what a domain accepts from clients.
"""

from wsrelay.config import kinds as k
from wsrelay.config.keytypes import DOMAIN, INHERITED, RELAY, Key, Topic
from wsrelay import tls

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
    Key("max_session_duration", INHERITED, k.Seconds(), 0.0, "0",
        "Seconds a session may last at most; 0: no limit.",
        ini="Seconds a session may last at most; then both legs are closed with 1001 \"session reached its "
            "maximum duration\" (as API gateways close at 2 hours: 7200). Each session ends at a random point "
            "in the last drain_window seconds (at most half) of it, so sessions opened together do not end "
            "together. 0 = no limit. A domain may set its own.",
        doc='Seconds a session may last at most, however busy: then both legs are closed with 1001 "session '
            'reached its maximum duration" and the client reconnects (API gateways close WebSockets at 2 hours:'
            ' `7200`; a way to move long-lived clients onto new origins and new config). Each session ends at a'
            ' random point in the last `drain_window` seconds of its duration (at most the last half), so '
            'sessions opened together (after a deploy, a network blip) end spread out rather than in one burst,'
            ' and none outlives the limit. `0` = no limit.'),
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
    Key("max_memory", RELAY, k.Size(), 0, "0",
        "Memory ceiling of each relay process (bytes, or with K, M or G); 0: off.",
        ini='Memory ceiling of each relay process (resident size, sampled every second): a whole number of '
            'bytes, or with K, M or G after it (KiB, MiB, GiB). Over it, new handshakes get 503 with '
            'Retry-After and the sessions holding the most unsent data (readers that stopped reading) are '
            'closed with 1013, those legs dropped, until what they held covers the excess over 95 % of it; '
            'handshakes are taken again once under 95 % of it. Set it under the memory the process may really '
            "have (MemoryMax= of the systemd unit, the container's limit) so the OOM killer never ends every "
            'session at once. 0 = off.',
        doc='Memory ceiling of each relay process (its resident size, sampled once a second): a whole number of'
            ' bytes, or with `K`, `M` or `G` after it (KiB, MiB, GiB). Over it, new handshakes get 503 with '
            '`Retry-After: 5` ("the relay is short of memory") and the sessions holding the most unsent data '
            '(peers that stopped reading) are closed with 1013 "the relay is short of memory", largest first, '
            'until what they hold covers the excess over 95 % of it (and again at each sample while refusing): '
            'a leg holding unsent data is dropped (that frees it at once; a peer that is not reading could not '
            'read a Close frame either), the other leg gets the 1013 Close. Handshakes are taken again once the'
            ' resident size is under 95 % of it. One line is logged when refusing starts, when it ends, and at '
            'each round of closes. Set it below what the process may really use (`MemoryMax=` in the systemd '
            "unit, a container's limit) so that the OOM killer never ends every session at once (Envoy's "
            'overload manager does the same). `0`: off (nothing is sampled). Per process, so per worker.'),
    Key("websocket", DOMAIN, k.Flag(), True, "on",
        "off: upgrade requests for this domain get 403.",
        doc="`off`: upgrade requests for this domain get 403."),
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
)
