"""
The statistics schema, shared by the SQL stores: table definitions, the
additive upserts of a Batch and the rollups that recompute the 1-hour and
1-day points of the periods a batch touched from the finer points.
Placeholders are written `?` (the stores translate them). See docs/statistics.md.
"""

from wsrelay.accounting.meter import COUNTS

VERSION = 2
WIDTHS = (300, 3600, 86400)
SUFFIX = {300: "5m", 3600: "1h", 86400: "1d"}
DIMS = ("domain", "bucket", "region", "isp")
PEAK_COLUMNS = ("peak_concurrent", "peak_client_bytes_in", "peak_client_bytes_out")

_INT = "BIGINT NOT NULL DEFAULT 0"
_TEXT = "TEXT NOT NULL"


def _dims():
    return f"domain {_TEXT}, bucket BIGINT NOT NULL, region {_TEXT}, isp {_TEXT}"


def create_statements():
    """The schema of VERSION, as a list of statements."""
    counts = ", ".join(f"{name} {_INT}" for name in COUNTS)
    peaks = ", ".join(f"{name} {_INT}" for name in PEAK_COLUMNS)
    key = "PRIMARY KEY (domain, bucket, region, isp"
    statements = [
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "CREATE TABLE batches (node TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL, "
        "written BIGINT NOT NULL, PRIMARY KEY (node, run, seq))",
        # the peak of live sessions per node in each 5-minute point (the fleet's: their sum)
        f"CREATE TABLE peaks_5m ({_dims()}, node {_TEXT}, peak {_INT}, {key}, node))",
    ]
    for width in WIDTHS:
        s = SUFFIX[width]
        extra = f", {peaks}" if width != 300 else ""
        statements += [
            f"CREATE TABLE traffic_{s} ({_dims()}, {counts}{extra}, {key}))",
            f"CREATE TABLE statuses_{s} ({_dims()}, status INTEGER NOT NULL, count {_INT}, {key}, status))",
            f"CREATE TABLE closes_{s} ({_dims()}, leg {_TEXT}, code INTEGER NOT NULL, "
            f"closed_by {_TEXT}, count {_INT}, {key}, leg, code, closed_by))",
        ]
        statements += [f"CREATE INDEX {t}_{s}_bucket ON {t}_{s} (bucket)" for t in ("traffic", "statuses", "closes")]
    statements.append("CREATE INDEX peaks_5m_bucket ON peaks_5m (bucket)")
    return statements + BILLING_TABLE


# Version 2: the billing method and cycle of each domain, as each relay found them in its config.
BILLING_TABLE = [
    f"CREATE TABLE billing_changes (domain {_TEXT}, changed_ms BIGINT NOT NULL, method {_TEXT}, "
    f"cycle {_TEXT}, node {_TEXT}, PRIMARY KEY (domain, changed_ms, node))",
]

# Each version's upgrade from the one before: statements run in one transaction.
UPGRADES = {2: BILLING_TABLE}

# A domain's (method, cycle) recorded when it differs from the last one recorded
# (args: domain, changed_ms, method, cycle, node, domain, method, cycle). Milliseconds: two
# reloads within a second are two changes; the same change retried is one.
RECORD_BILLING = (
    "INSERT INTO billing_changes (domain, changed_ms, method, cycle, node) SELECT ?, ?, ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM (SELECT method, cycle FROM billing_changes WHERE domain = ? "
    "ORDER BY changed_ms DESC, node DESC LIMIT 1) last WHERE last.method = ? AND last.cycle = ?) "
    "ON CONFLICT DO NOTHING")


def record_billing(domain, method, cycle, at, node):
    return RECORD_BILLING, (domain, round(at * 1000), method, cycle, node, domain, method, cycle)


def select_billing(domains=None):
    """(statement, args) reading the recorded billing changes of `domains` (None: all), oldest first; see billing_rows."""
    sql = "SELECT domain, changed_ms, method, cycle FROM billing_changes"
    args = ()
    if domains is not None:
        domains = tuple(domains)
        sql += f" WHERE domain IN ({', '.join('?' for _ in domains)})" if domains else " WHERE FALSE"
        args = domains
    return sql + " ORDER BY changed_ms, node", args


def upsert_traffic():
    columns = ", ".join(DIMS + COUNTS)
    marks = ", ".join("?" for _ in DIMS + COUNTS)
    adds = ", ".join(f"{c} = traffic_5m.{c} + excluded.{c}" for c in COUNTS)
    return (f"INSERT INTO traffic_5m ({columns}) VALUES ({marks}) "
            f"ON CONFLICT (domain, bucket, region, isp) DO UPDATE SET {adds}")


UPSERT_PEAK = (
    "INSERT INTO peaks_5m (domain, bucket, region, isp, node, peak) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (domain, bucket, region, isp, node) DO UPDATE SET "
    "peak = CASE WHEN excluded.peak > peaks_5m.peak THEN excluded.peak ELSE peaks_5m.peak END")
UPSERT_STATUS = (
    "INSERT INTO statuses_5m (domain, bucket, region, isp, status, count) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (domain, bucket, region, isp, status) DO UPDATE SET count = statuses_5m.count + excluded.count")
UPSERT_CLOSE = (
    "INSERT INTO closes_5m (domain, bucket, region, isp, leg, code, closed_by, count) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (domain, bucket, region, isp, leg, code, closed_by) "
    "DO UPDATE SET count = closes_5m.count + excluded.count")
CLAIM_BATCH = "INSERT INTO batches (node, run, seq, written) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"


def batch_rows(batch):
    """(statement, [parameters]) pairs adding a Batch's points to the 5-minute tables."""
    return [
        (upsert_traffic(), [(*key, *row) for key, row in batch.traffic.items()]),
        (UPSERT_PEAK, [(*key, batch.node, peak) for key, peak in batch.peaks.items()]),
        (UPSERT_STATUS, [(*key, count) for key, count in batch.statuses.items()]),
        (UPSERT_CLOSE, [(*key, count) for key, count in batch.closes.items()]),
    ]


def touched(batch, width):
    """The starts of the `width`-second periods a batch has points in."""
    keys = list(batch.traffic) + list(batch.peaks) + list(batch.statuses) + list(batch.closes)
    return sorted({key[1] // width * width for key in keys})


def rollup_statements(fine, coarse, start):
    """
    (statement, parameters) recomputing the `coarse` points of the period at
    `start` from the `fine` ones: counters summed; peaks the highest of the
    finer points (the peak of the 5-minute points for both 1 h and 1 d).
    """
    f, c = SUFFIX[fine], SUFFIX[coarse]
    end = start + coarse
    sums = ", ".join(f"SUM(t.{name})" for name in COUNTS)
    if fine == 300:
        peaks = ("COALESCE(MAX(p.peak), 0), MAX(t.client_bytes_in), MAX(t.client_bytes_out)")
        source = (f"traffic_5m t LEFT JOIN (SELECT domain, bucket, region, isp, SUM(peak) AS peak "
                  f"FROM peaks_5m WHERE bucket >= ? AND bucket < ? GROUP BY domain, bucket, region, isp) p "
                  f"ON p.domain = t.domain AND p.bucket = t.bucket AND p.region = t.region AND p.isp = t.isp")
        source_args = (start, end)
    else:
        peaks = ", ".join(f"MAX(t.{name})" for name in PEAK_COLUMNS)
        source, source_args = f"traffic_{f} t", ()
    columns = ", ".join(DIMS + COUNTS + PEAK_COLUMNS)
    return [
        (f"DELETE FROM traffic_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO traffic_{c} ({columns}) SELECT t.domain, ?, t.region, t.isp, {sums}, {peaks} "
         f"FROM {source} WHERE t.bucket >= ? AND t.bucket < ? GROUP BY t.domain, t.region, t.isp",
         (start, *source_args, start, end)),
        (f"DELETE FROM statuses_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO statuses_{c} (domain, bucket, region, isp, status, count) "
         f"SELECT domain, ?, region, isp, status, SUM(count) FROM statuses_{f} "
         f"WHERE bucket >= ? AND bucket < ? GROUP BY domain, region, isp, status", (start, start, end)),
        (f"DELETE FROM closes_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO closes_{c} (domain, bucket, region, isp, leg, code, closed_by, count) "
         f"SELECT domain, ?, region, isp, leg, code, closed_by, SUM(count) FROM closes_{f} "
         f"WHERE bucket >= ? AND bucket < ? GROUP BY domain, region, isp, leg, code, closed_by",
         (start, start, end)),
    ]


def rollups(batch):
    """Every rollup statement a batch calls for: its hours from 5 minutes, then its days from hours."""
    statements = []
    for hour in touched(batch, 3600):
        statements += rollup_statements(300, 3600, hour)
    for day in touched(batch, 86400):
        statements += rollup_statements(3600, 86400, day)
    return statements


def expire_statements(now, retention):
    """Deletes of the points older than their retention ({width: seconds}), and of old batch ids."""
    statements = []
    for width in WIDTHS:
        cutoff = int(now - retention[width]) // width * width
        tables = ["traffic", "statuses", "closes"] + (["peaks"] if width == 300 else [])
        statements += [(f"DELETE FROM {t}_{SUFFIX[width]} WHERE bucket < ?", (cutoff,)) for t in tables]
    # a batch is retried within minutes or hours; its id is kept for the life of its 5-minute points
    statements.append(("DELETE FROM batches WHERE written < ?", (int(now - retention[300]),)))
    return statements


def billing_rows(rows):
    """select_billing's rows as IAccounting.billing_history gives them (changed_at in epoch seconds)."""
    return [{"domain": row["domain"], "changed_at": row["changed_ms"] / 1000, "method": row["method"],
             "cycle": row["cycle"]} for row in rows]


TABLES = {f"{t}_{SUFFIX[w]}" for t in ("traffic", "statuses", "closes") for w in WIDTHS} | {"peaks_5m"}
