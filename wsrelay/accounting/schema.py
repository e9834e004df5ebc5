"""
The statistics schema, shared by the SQL stores: table definitions, the
additive upserts of a Batch and the rollups that recompute the 1-hour and
1-day points of the periods a batch touched from the finer points.
Placeholders are written `?` (the stores translate them). See docs/statistics.md.
"""

from wsrelay.accounting.meter import COUNTS, HTTP, PROTOCOL_COUNTS, WEBSOCKET

VERSION = 4
WIDTHS = (300, 3600, 86400)
SUFFIX = {300: "5m", 3600: "1h", 86400: "1d"}
DIMS = ("domain", "bucket", "region", "isp", "kind")
PEAK_COLUMNS = ("peak_concurrent", "peak_client_bytes_in", "peak_client_bytes_out")

_INT = "BIGINT NOT NULL DEFAULT 0"
_TEXT = "TEXT NOT NULL"
_KEY = "PRIMARY KEY (domain, bucket, region, isp, kind"


def _dims():
    # kind: websocket or http (version 3); every point is one kind's
    return (f"domain {_TEXT}, bucket BIGINT NOT NULL, region {_TEXT}, isp {_TEXT}, "
            f"kind {_TEXT} DEFAULT '{WEBSOCKET}'")


def point_tables():
    """{table name: its columns and key} of the point tables, as of VERSION."""
    counts = ", ".join(f"{name} {_INT}" for name in COUNTS)
    peaks = ", ".join(f"{name} {_INT}" for name in PEAK_COLUMNS)
    # the peak of live sessions per node in each 5-minute point (the fleet's: their sum)
    tables = {"peaks_5m": f"{_dims()}, node {_TEXT}, peak {_INT}, {_KEY}, node)"}
    for width in WIDTHS:
        s = SUFFIX[width]
        extra = f", {peaks}" if width != 300 else ""
        tables[f"traffic_{s}"] = f"{_dims()}, {counts}{extra}, {_KEY})"
        tables[f"statuses_{s}"] = f"{_dims()}, status INTEGER NOT NULL, count {_INT}, {_KEY}, status)"
        tables[f"closes_{s}"] = (f"{_dims()}, leg {_TEXT}, code INTEGER NOT NULL, closed_by {_TEXT}, "
                                 f"count {_INT}, {_KEY}, leg, code, closed_by)")
    tables.update(protocol_tables())
    return tables


def protocol_tables():
    """{table name: definition} of the points by carrying protocol (h1, h2), as of version 4."""
    counts = ", ".join(f"{name} {_INT}" for name in PROTOCOL_COUNTS)
    return {f"protocols_{SUFFIX[width]}": f"{_dims()}, protocol {_TEXT}, {counts}, {_KEY}, protocol)"
            for width in WIDTHS}


def _protocol_upgrade():
    """Version 4: the protocol tables, created empty (older points were not counted by protocol)."""
    statements = [f"CREATE TABLE {name} ({columns})" for name, columns in protocol_tables().items()]
    return statements + [f"CREATE INDEX {name}_bucket ON {name} (bucket)" for name in protocol_tables()]


def create_statements():
    """The schema of VERSION, as a list of statements."""
    statements = [
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "CREATE TABLE batches (node TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL, "
        "written BIGINT NOT NULL, PRIMARY KEY (node, run, seq))",
    ]
    statements += [f"CREATE TABLE {name} ({columns})" for name, columns in point_tables().items()]
    statements += [f"CREATE INDEX {name}_bucket ON {name} (bucket)" for name in point_tables()]
    return statements + BILLING_TABLE


def _columns(definition):
    """The column names of a table definition, without kind (what version 2 had)."""
    names = []
    for part in definition.split(", "):
        word = part.split()[0]
        if word == "PRIMARY":
            break
        if word != "kind":
            names.append(word)
    return names


def _kind_upgrade():
    """
    Version 3: every point table gets the kind column in its key, its rows
    becoming websocket points. A key cannot be changed in place in SQLite,
    so each table is rebuilt (the same statements in PostgreSQL), in the
    upgrade's one transaction.
    """
    statements = []
    for name, columns in point_tables().items():
        if name.startswith("protocols_"):
            continue  # version 4's
        listed = ", ".join(_columns(columns))
        statements += [
            f"DROP INDEX {name}_bucket",
            f"CREATE TABLE {name}_v3 ({columns})",
            f"INSERT INTO {name}_v3 ({listed}, kind) SELECT {listed}, '{WEBSOCKET}' FROM {name}",
            f"DROP TABLE {name}",
            f"ALTER TABLE {name}_v3 RENAME TO {name}",
            f"CREATE INDEX {name}_bucket ON {name} (bucket)",
        ]
    return statements


# Version 2: the billing method and cycle of each domain, as each relay found them in its config.
BILLING_TABLE = [
    f"CREATE TABLE billing_changes (domain {_TEXT}, changed_ms BIGINT NOT NULL, method {_TEXT}, "
    f"cycle {_TEXT}, node {_TEXT}, PRIMARY KEY (domain, changed_ms, node))",
]

# Each version's upgrade from the one before: statements run in one transaction.
UPGRADES = {2: BILLING_TABLE, 3: _kind_upgrade(), 4: _protocol_upgrade()}

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
            f"ON CONFLICT (domain, bucket, region, isp, kind) DO UPDATE SET {adds}")


UPSERT_PEAK = (
    "INSERT INTO peaks_5m (domain, bucket, region, isp, kind, node, peak) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (domain, bucket, region, isp, kind, node) DO UPDATE SET "
    "peak = CASE WHEN excluded.peak > peaks_5m.peak THEN excluded.peak ELSE peaks_5m.peak END")
UPSERT_STATUS = (
    "INSERT INTO statuses_5m (domain, bucket, region, isp, kind, status, count) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (domain, bucket, region, isp, kind, status) DO UPDATE SET count = statuses_5m.count + excluded.count")
UPSERT_CLOSE = (
    "INSERT INTO closes_5m (domain, bucket, region, isp, kind, leg, code, closed_by, count) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (domain, bucket, region, isp, kind, leg, code, closed_by) "
    "DO UPDATE SET count = closes_5m.count + excluded.count")
_PROTOCOL_COLUMNS = ", ".join(PROTOCOL_COUNTS)
UPSERT_PROTOCOL = (
    f"INSERT INTO protocols_5m (domain, bucket, region, isp, kind, protocol, {_PROTOCOL_COLUMNS}) "
    f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' for _ in PROTOCOL_COUNTS)}) "
    f"ON CONFLICT (domain, bucket, region, isp, kind, protocol) DO UPDATE SET "
    + ", ".join(f"{c} = protocols_5m.{c} + excluded.{c}" for c in PROTOCOL_COUNTS))
CLAIM_BATCH = "INSERT INTO batches (node, run, seq, written) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"


def batch_rows(batch):
    """(statement, [parameters]) pairs adding a Batch's points (both kinds) to the 5-minute tables."""
    traffic, peaks, statuses, closes, protocols = [], [], [], [], []
    for kind in (WEBSOCKET, HTTP):
        protocols += [(*key[:4], kind, key[4], *row) for key, row in batch.protocol_table(kind).items()]
        t, p, s, c = batch.tables(kind)
        traffic += [(*key, kind, *row) for key, row in t.items()]
        peaks += [(*key, kind, batch.node, peak) for key, peak in p.items()]
        statuses += [(*key[:4], kind, *key[4:], count) for key, count in s.items()]
        closes += [(*key[:4], kind, *key[4:], count) for key, count in c.items()]
    return [(upsert_traffic(), traffic), (UPSERT_PEAK, peaks), (UPSERT_STATUS, statuses), (UPSERT_CLOSE, closes),
            (UPSERT_PROTOCOL, protocols)]


def touched(batch, width):
    """The starts of the `width`-second periods a batch has points in."""
    keys = []
    for kind in (WEBSOCKET, HTTP):
        for table in batch.tables(kind):
            keys += list(table)
        keys += list(batch.protocol_table(kind))
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
        source = (f"traffic_5m t LEFT JOIN (SELECT domain, bucket, region, isp, kind, SUM(peak) AS peak "
                  f"FROM peaks_5m WHERE bucket >= ? AND bucket < ? GROUP BY domain, bucket, region, isp, kind) p "
                  f"ON p.domain = t.domain AND p.bucket = t.bucket AND p.region = t.region AND p.isp = t.isp "
                  f"AND p.kind = t.kind")
        source_args = (start, end)
    else:
        peaks = ", ".join(f"MAX(t.{name})" for name in PEAK_COLUMNS)
        source, source_args = f"traffic_{f} t", ()
    columns = ", ".join(DIMS + COUNTS + PEAK_COLUMNS)
    return [
        (f"DELETE FROM traffic_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO traffic_{c} ({columns}) SELECT t.domain, ?, t.region, t.isp, t.kind, {sums}, {peaks} "
         f"FROM {source} WHERE t.bucket >= ? AND t.bucket < ? GROUP BY t.domain, t.region, t.isp, t.kind",
         (start, *source_args, start, end)),
        (f"DELETE FROM statuses_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO statuses_{c} (domain, bucket, region, isp, kind, status, count) "
         f"SELECT domain, ?, region, isp, kind, status, SUM(count) FROM statuses_{f} "
         f"WHERE bucket >= ? AND bucket < ? GROUP BY domain, region, isp, kind, status", (start, start, end)),
        (f"DELETE FROM closes_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO closes_{c} (domain, bucket, region, isp, kind, leg, code, closed_by, count) "
         f"SELECT domain, ?, region, isp, kind, leg, code, closed_by, SUM(count) FROM closes_{f} "
         f"WHERE bucket >= ? AND bucket < ? GROUP BY domain, region, isp, kind, leg, code, closed_by",
         (start, start, end)),
        (f"DELETE FROM protocols_{c} WHERE bucket = ?", (start,)),
        (f"INSERT INTO protocols_{c} (domain, bucket, region, isp, kind, protocol, {_PROTOCOL_COLUMNS}) "
         f"SELECT domain, ?, region, isp, kind, protocol, "
         + ", ".join(f"SUM({name})" for name in PROTOCOL_COUNTS)
         + f" FROM protocols_{f} WHERE bucket >= ? AND bucket < ? GROUP BY domain, region, isp, kind, protocol",
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
        tables = ["traffic", "statuses", "closes", "protocols"] + (["peaks"] if width == 300 else [])
        statements += [(f"DELETE FROM {t}_{SUFFIX[width]} WHERE bucket < ?", (cutoff,)) for t in tables]
    # a batch is retried within minutes or hours; its id is kept for the life of its 5-minute points
    statements.append(("DELETE FROM batches WHERE written < ?", (int(now - retention[300]),)))
    return statements


def billing_rows(rows):
    """select_billing's rows as IAccounting.billing_history gives them (changed_at in epoch seconds)."""
    return [{"domain": row["domain"], "changed_at": row["changed_ms"] / 1000, "method": row["method"],
             "cycle": row["cycle"]} for row in rows]


TABLES = ({f"{t}_{SUFFIX[w]}" for t in ("traffic", "statuses", "closes", "protocols") for w in WIDTHS}
          | {"peaks_5m"})
