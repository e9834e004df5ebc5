"""
The keys of origin choice: the origins of a domain, the protocol and TLS towards them, the
selector and the health of each origin.
"""

from wsrelay.config import kinds as k
from wsrelay.config.keytypes import DOMAIN, INHERITED, Key, Topic
from wsrelay.config.values import HEALTH_CHECKS, PROTOCOLS

KEYS = (
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
    Key("origins", DOMAIN, k.Origins(), (), "", example="127.0.0.1:8081",
        help="The origins, host[:port] [weight=N], white-space separated.",
        doc_default="(required while `websocket` or `http` is `on`)",
        ini="Origins as host[:port], white-space separated; a missing port is 80 for http and 443 for "
            "https. Required while websocket or http = on. Only these are ever dialled.\n"
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
)
