"""
The keys of the HTTP pass-through (domains with `http = on`): request rates,
keep-alive towards clients and origins, the origin's and the body's timeouts,
the largest body.
"""

from wsrelay.config import kinds as k
from wsrelay.config.keytypes import DOMAIN, INHERITED, RELAY, Key, Topic

KEYS = (
    Topic("Plain HTTP requests (domains with http = on) per second per client address, and of the whole "
          "process; over them 429 / 503 with Retry-After. 0 = no limit. Requests in flight count as live "
          "sessions for the max_connections limits."),
    Key("request_rate_per_ip", RELAY, k.Rate(), 0.0, "0",
        "Plain HTTP requests per second per client address per process; 0: no limit.",
        doc="Plain HTTP requests (domains with `http = on`) per second per client address in this process, a "
            "burst of one second's worth; over it 429 with `Retry-After`. `0`: no limit (as nginx and HAProxy "
            "ship). Requests in flight also count as live sessions for `max_connections`, "
            "`max_connections_per_ip` and a domain's `max_connections`."),
    Key("request_rate", RELAY, k.Rate(), 0.0, "0",
        "Plain HTTP requests per second of the whole process; 0: no limit.",
        doc="Plain HTTP requests per second of the whole process; over it 503 with `Retry-After`. `0`: no limit."),
    Topic("Plain HTTP (domains with http = on). Seconds an idle client connection is kept open between "
          "requests."),
    Key("http_keepalive_timeout", RELAY, k.Seconds(zero="must be greater than 0"), 75.0, "75",
        "Seconds an idle plain HTTP client connection is kept open between requests.",
        doc="Seconds an idle plain HTTP client connection is kept open between requests (nginx's "
            "`keepalive_timeout`)."),
    Key("origin_keepalive", RELAY, k.Count(minimum=0), 32, "32",
        "Idle connections kept open to each origin of a domain; 0: none kept.",
        ini="Idle connections kept open to each origin of a domain for later requests (like nginx's upstream "
            "keepalive); 0 = a new connection per request.",
        doc="Idle connections kept open to each origin of a domain for later plain HTTP requests (nginx's "
            "upstream `keepalive`); busy ones are not limited by it. `0`: none kept."),
    Key("origin_read_timeout", INHERITED, k.Seconds(zero="must be greater than 0"), 60.0, "60",
        "Plain HTTP: seconds the origin may stay silent (504, or the response is cut).",
        ini="Seconds the origin may stay silent: before the response head (504) and between two pieces of the "
            "response (the response is cut). Like nginx's proxy_read_timeout. Per domain too.",
        doc="Plain HTTP: seconds the origin may stay silent, before its response head (504; an idempotent "
            "request that got nothing is tried on the next origin first) and between two pieces of its response "
            "(the response is cut). nginx's `proxy_read_timeout`."),
    Key("client_body_timeout", INHERITED, k.Seconds(), 60.0, "60",
        "Plain HTTP: seconds a client may stall while sending a request body (408); 0: never.",
        ini="Seconds a client may stall while sending a request body (408). 0 = never. Per domain too.",
        doc="Plain HTTP: seconds a client may stall while sending a request body; then 408 (or the response is "
            "cut if it started). Time the relay itself holds the client back (a slow origin) does not count. "
            "`0`: never."),
    Key("max_body_size", INHERITED, k.Count(minimum=0), 0, "0",
        "Plain HTTP: largest request body in bytes (413); 0: no limit.",
        ini="Largest request body in bytes (413); 0 = no limit. Per domain too.",
        doc="Plain HTTP: largest request body in bytes; a larger announced `Content-Length` gets 413 before any "
            "origin is dialled, a chunked body 413 when it gets there. `0`: no limit."),
    Key("http", DOMAIN, k.Flag(), False, "off",
        "on: requests that are not WebSocket upgrades are proxied to the origins; off: 426.",
        ini="on: every request that is not a WebSocket upgrade is proxied to the origins (the page, its API, "
            "long-polling) on the same listener and host; off: such requests get 426. Default off.",
        doc="`on`: every request that is not a WebSocket upgrade is proxied to this domain's origins, on the "
            "same listeners, with the same selector, health, `origin_protocol`, certificate checks, "
            "`origin_host` and forwarded headers (see [http.md](http.md)). `off`: such requests get 426."),
)
