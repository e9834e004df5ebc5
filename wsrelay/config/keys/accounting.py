"""
The keys of statistics and billing: the store ([relay] accounting, [accounting]), the region
and ISP databases, the admin API, billing per domain.
"""

from wsrelay.config import kinds as k
from wsrelay.config.keytypes import ACCOUNTING, DOMAIN, INHERITED, RELAY, Key, Topic  # noqa: F401
from wsrelay.accounting.billing import CYCLES, METHODS

KEYS = (
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
    Key("metrics_public", ACCOUNTING, k.Flag(), False, "off",
        "on: GET /metrics is answered without the admin token.", table="statistics", group="accounting",
        ini="on: GET /metrics (Prometheus) is answered without the token, for a scraper on a private address; "
            "/healthz and /readyz never need it.",
        doc="`on`: `GET /metrics` on the admin endpoint is answered without the token, for a Prometheus scraper"
            " on a private address; the dashboard, `/v1/` and the rest still need it. `/healthz` and `/readyz` "
            "never need it."),
    Key("plans", DOMAIN, k.PLANS, (), "",
        "This domain's prepaid traffic plans: SIZEGB:FROM:TO words.", table="billing", group="billing",
        ini="Prepaid traffic plans of this domain, consumed before anything is billable: SIZEGB:FROM:TO "
            "words with UTC dates, the end excluded, e.g. 500GB:2026-11-01:2026-12-01. Empty: none.",
        doc="Prepaid traffic plans consumed before anything is billable: `SIZEGB:FROM:TO` words with UTC "
            "dates, the end excluded, e.g. `500GB:2026-11-01:2026-12-01`. Consumed by traffic sent "
            "while valid, on days billed by traffic, the plan expiring first first."),
)
