"""
`wsrelay-stats`: JSON series from the store a config names (SQLite, PostgreSQL:
the whole fleet); refused queries say what is allowed (exit 2), a failing
store exits 1.
"""

import io
import json

from tests.support import free_port
from wsrelay.accounting import postgresql, sql
from wsrelay.accounting.builtin import PostgreSQLFactory
from wsrelay.accounting.meter import COUNTS, Batch
from wsrelay.accounting.cli import main
from wsrelay.accounting.sqlite import open_database, write_batch

T0 = 1_700_006_400  # 2023-11-15T00:00:00Z


def setup_files(tmp_path):
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\n[accounting]\ndatabase = stats.sqlite\n[domain:*]\norigins = a:1\n")
    db = open_database(str(tmp_path / "stats.sqlite"), 1)
    row = [0] * len(COUNTS)
    row[COUNTS.index("client_bytes_out")] = 3000
    write_batch(db, Batch("n", "r", 1, traffic={
        ("a.example", T0, "US", "isp"): tuple(row), ("b.example", T0 + 300, "US", "isp"): tuple(row)}), T0)
    db.close()
    return str(config)


def test_traffic_of_one_domain_as_json(tmp_path):
    out = io.StringIO()
    code = main(["--config", setup_files(tmp_path), "traffic", "--start", "2023-11-15T00:00:00Z",
                 "--end", "2023-11-15T00:10:00Z", "--domain", "a.example"], out=out)
    assert code == 0
    points = json.loads(out.getvalue())["points"]
    assert [(p["start"], p["bytes_out"], p["bandwidth_out"]) for p in points] == [(T0, 3000, 80.0), (T0 + 300, 0, 0.0)]


def test_a_refused_interval_says_what_is_allowed(tmp_path):
    err = io.StringIO()
    code = main(["--config", setup_files(tmp_path), "traffic", "--start", "2023-11-01T00:00:00Z",
                 "--end", "2023-11-15T00:00:00Z", "--interval", "300"], err=err)
    assert code == 2
    assert "use 3600 or 86400" in err.getvalue()


def test_connections_statuses_and_closes_commands(tmp_path):
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\n[accounting]\ndatabase = stats.sqlite\n[domain:*]\norigins = a:1\n")
    db = open_database(str(tmp_path / "stats.sqlite"), 1)
    row = [0] * len(COUNTS)
    row[COUNTS.index("opened")], row[COUNTS.index("closed")], row[COUNTS.index("session_ms")] = 2, 1, 2500
    key = ("a.example", T0, "US", "isp")
    write_batch(db, Batch("n", "r", 1, traffic={key: tuple(row)}, peaks={key: 2},
                          statuses={(*key, 101): 2, (*key, 403): 1},
                          closes={(*key, "client", 1000, "client"): 1}), T0)
    db.close()
    window = ["--start", "2023-11-15T00:00:00Z", "--end", "2023-11-15T01:00:00Z", "--interval", "3600"]

    def ask(*command):
        out = io.StringIO()
        assert main(["--config", str(config), *command, *window], out=out) == 0
        return json.loads(out.getvalue())["points"]

    assert ask("connections") == [{"start": T0, "opened": 2, "closed": 1, "session_seconds": 2.5,
                                   "peak_concurrent": 2}]
    assert ask("statuses")[0]["statuses"] == {"101": 2, "403": 1}
    assert ask("closes", "--leg", "client")[0]["closes"] == [
        {"leg": "client", "code": 1000, "closed_by": "client", "count": 1}]


def test_a_failing_store_exits_1_naming_it(tmp_path):
    (tmp_path / "var").write_text("a file where the database's directory should be")
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\n[accounting]\ndatabase = var/stats.sqlite\n[domain:*]\norigins = a:1\n")
    err = io.StringIO()
    code = main(["--config", str(config), "traffic", "--start", "2023-11-15T00:00:00Z",
                 "--end", "2023-11-15T00:10:00Z"], err=err)
    assert code == 1
    assert err.getvalue().startswith("wsrelay-stats: accounting = sqlite: ")


def postgresql_config(tmp_path, dsn):
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\naccounting = postgresql\n[accounting]\ndsn = {dsn}\nconnect_timeout = 2\n"
                      "[domain:*]\norigins = a:1\n")
    return str(config)


def test_traffic_of_the_whole_fleet_from_postgresql(tmp_path, pg_dsn):
    db = postgresql.connect(PostgreSQLFactory().parse_options({"dsn": pg_dsn}, "/"))
    row = [0] * len(COUNTS)
    for node, sent in (("edge-1", 3000), ("edge-2", 600)):
        row[COUNTS.index("client_bytes_out")] = sent
        sql.write_batch(db, postgresql.POSTGRESQL, Batch(node, "r", 1, traffic={
            ("a.example", T0, "US", "isp"): tuple(row), ("a.example", T0 + 300, "DE", "isp"): tuple(row)}), T0)
    db.close()
    out = io.StringIO()
    code = main(["--config", postgresql_config(tmp_path, pg_dsn), "traffic", "--start", "2023-11-15T00:00:00Z",
                 "--end", "2023-11-15T01:00:00Z", "--interval", "3600"], out=out)
    assert code == 0
    assert [(p["start"], p["bytes_out"]) for p in json.loads(out.getvalue())["points"]] == [(T0, 7200)]


def test_an_unreachable_postgresql_exits_1_without_showing_the_password(tmp_path):
    dsn = f"host=127.0.0.1 port={free_port()} dbname=stats user=relay password=pw-s3cret"
    err = io.StringIO()
    code = main(["--config", postgresql_config(tmp_path, dsn), "traffic", "--start", "2023-11-15T00:00:00Z",
                 "--end", "2023-11-15T00:10:00Z"], err=err)
    assert code == 1
    assert err.getvalue().startswith("wsrelay-stats: accounting = postgresql: ")
    assert "s3cret" not in err.getvalue()


NOV = 1_793_491_200  # 2026-11-01T00:00:00Z
BILLED = """
[domain:a.example]
origins = a:1
billing_cycle = daily
price_tiers = 0:0.50
plans = 1GB:2026-11-01:2026-11-03
"""


def write_sent(write, sent_per_day):
    """Batches of bytes sent to clients of a.example, one per (day, bytes), as two nodes would write them."""
    row = [0] * len(COUNTS)
    for seq, (day, sent) in enumerate(sent_per_day, 1):
        row[COUNTS.index("client_bytes_out")] = sent
        write(Batch(f"edge-{seq % 2}", "r", seq, traffic={("a.example", day + 600, "US", "isp"): tuple(row)}))


def usage_of(config, *extra):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", config, "usage", "--start", "2026-11-01T00:00:00Z", "--end", "2026-11-03T00:00:00Z",
                 *extra], out=out, err=err)
    assert (code, err.getvalue()) == (0, "")
    return out.getvalue()


def test_usage_as_json_and_csv_from_sqlite(tmp_path):
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\n[accounting]\ndatabase = stats.sqlite\n" + BILLED)
    db = open_database(str(tmp_path / "stats.sqlite"), 1)
    write_sent(lambda batch: write_batch(db, batch, NOV), [(NOV, 600_000_000), (NOV + 86400, 2_400_000_000)])
    db.close()
    cycles = json.loads(usage_of(str(config)))["cycles"]
    assert [(c["start"], c["traffic_bytes"], c["plan_deducted_gb"], c["billable_quantity"], c["amount"])
            for c in cycles] == [("2026-11-01T00:00:00Z", 600_000_000, 0.6, 0, 0.0),
                                 ("2026-11-02T00:00:00Z", 2_400_000_000, 0.4, 2.0, 1.0)]
    lines = usage_of(str(config), "--format", "csv", "--domain", "a.example").splitlines()
    assert len(lines) == 3 and lines[0].startswith("domain,cycle,method,start,end")
    assert lines[2].endswith(",1GB:2026-11-01:2026-11-03=0.4,0.4,2.0,GB,1.00")


def test_usage_refusals_exit_2(tmp_path):
    config = tmp_path / "relay.ini"
    config.write_text("[relay]\n[accounting]\ndatabase = stats.sqlite\n" + BILLED)
    err = io.StringIO()
    assert main(["--config", str(config), "usage", "--start", "2026-11-01T00:00:00Z", "--end",
                 "2026-11-02T00:00:00Z", "--domain", "b.example"], err=err) == 2
    assert "'b.example' is not a [domain:...] section" in err.getvalue()


def test_usage_of_the_whole_fleet_from_postgresql(tmp_path, pg_dsn):
    db = postgresql.connect(PostgreSQLFactory().parse_options({"dsn": pg_dsn}, "/"))
    write_sent(lambda batch: sql.write_batch(db, postgresql.POSTGRESQL, batch, NOV),
               [(NOV, 700_000_000), (NOV, 800_000_000)])
    db.close()
    config = tmp_path / "relay.ini"
    config.write_text(f"[relay]\naccounting = postgresql\n[accounting]\ndsn = {pg_dsn}\n" + BILLED)
    [first, _] = json.loads(usage_of(str(config)))["cycles"]
    assert (first["traffic_bytes"], first["plan_deducted_gb"], first["billable_quantity"]) == (1_500_000_000, 1, 0.5)
