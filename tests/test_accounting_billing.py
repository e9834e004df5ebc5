"""
Billing: cycles, the 95th percentile, tiers, plans consumed oldest-expiring
first, a change of method or cycle taking effect at the next boundary, and
the usage report built from stored points (pure functions, no I/O).
"""

from decimal import Decimal

import pytest

from wsrelay.accounting.billing import (
    GB, BillingSettings, Plan, billed_bandwidth, csv_rows, cycle_bounds, cycles, deduct, effective_from, in_force,
    parse_plans, parse_tiers, percentile95, schedule, tiered_amount, usage)

DAY = 86400
NOV = 1_793_491_200  # 2026-11-01T00:00:00Z
DEC = NOV + 30 * DAY
JAN = DEC + 31 * DAY


def test_cycles_are_utc_days_and_months():
    assert cycle_bounds(NOV + 5, "monthly") == (NOV, DEC)
    assert cycle_bounds(DEC + 31 * DAY - 1, "monthly") == (DEC, JAN)  # December into January
    assert cycle_bounds(NOV + DAY + 7, "daily") == (NOV + DAY, NOV + 2 * DAY)


def test_the_95th_percentile_drops_the_highest_5_percent_with_idle_points_as_zeros():
    assert percentile95(range(1, 101)) == 95
    assert percentile95([1000] * 5 + [10] * 95) == 10
    assert percentile95([1000] * 6 + [10] * 94) == 1000
    assert percentile95([50] * 5, count=100) == 0  # 95 idle points of the month
    assert percentile95([50] * 6, count=100) == 50


def test_bandwidth_billed_daily_is_the_peak_and_monthly_the_95th_percentile():
    points = {NOV + i * 300: 37_500_000 for i in range(8640)}  # 1 Mbit/s all month
    points[NOV] = 375_000_000  # one 10 Mbit/s point
    assert billed_bandwidth(points, NOV, NOV + DAY, "daily") == 10
    assert billed_bandwidth(points, NOV, DEC, "monthly") == 1


def test_tiers_are_graduated():
    tiers = parse_tiers("0:0.10 10240:0.08")
    assert tiers == ((0, Decimal("0.10")), (10240, Decimal("0.08")))
    assert tiered_amount(Decimal(100), tiers) == Decimal("10.00")
    assert tiered_amount(Decimal(10240 + 1000), tiers) == Decimal("1024.00") + Decimal("80.00")
    for bad in ("10:0.1", "0:0.1 0:0.2", "0-0.1", "0:-1", "0:x", ""):
        with pytest.raises(ValueError):
            parse_tiers(bad)


def test_plans_are_consumed_before_anything_is_billable_the_one_expiring_first_first():
    long, short = parse_plans("500GB:2026-11-01:2027-01-01 100GB:2026-11-01:2026-12-01")
    assert short == Plan(100 * GB, NOV, DEC) and short.key == "100GB:2026-11-01:2026-12-01"
    deductions, billable, used = deduct((long, short), {}, 80 * GB, NOV + 10)
    assert (deductions, billable) == ([(short, 80 * GB)], 0)
    deductions, billable, used = deduct((long, short), used, 600 * GB, NOV + 20)
    assert (deductions, billable) == ([(short, 20 * GB), (long, 500 * GB)], 80 * GB)
    assert deduct((long, short), {}, 50, DEC + 1)[:2] == ([(long, 50)], 0)  # the short plan has expired
    assert parse_plans("0.5gb:2026-11-01:2026-11-02")[0].size == 500_000_000
    for bad in ("500:2026-11-01:2026-12-01", "500GB:2026-11-01", "0GB:2026-11-01:2026-12-01",
                "5GB:2026-12-01:2026-11-01", "5GB:2026-13-01:2026-12-01"):
        with pytest.raises(ValueError):
            parse_plans(bad)


def test_a_change_waits_for_the_next_cycle_boundary():
    # daily to daily: the next UTC day; a monthly cycle on either side: the first of next month
    assert effective_from(NOV + 3600, "daily", "daily") == NOV + DAY
    assert effective_from(NOV + 3600, "daily", "monthly") == DEC
    assert effective_from(NOV + 3600, "monthly", "daily") == DEC
    assert effective_from(NOV, "monthly", "monthly") == NOV  # at the boundary itself
    steps = schedule([(NOV - DAY, "traffic", "monthly"), (NOV + 15 * DAY, "bandwidth", "monthly")],
                     ("traffic", "monthly"))
    assert steps == [(None, "traffic", "monthly"), (DEC, "bandwidth", "monthly")]
    assert in_force(steps, DEC - 1) == ("traffic", "monthly")
    assert in_force(steps, DEC) == ("bandwidth", "monthly")
    # no recorded change: the config's setting, always
    assert schedule([], ("bandwidth", "daily")) == [(None, "bandwidth", "daily")]


def test_a_change_reverted_before_it_applies_never_applies():
    steps = schedule([(NOV, "traffic", "monthly"), (NOV + 2 * DAY, "bandwidth", "monthly"),
                      (NOV + 3 * DAY, "traffic", "monthly")], ("traffic", "monthly"))
    assert steps == [(None, "traffic", "monthly")]
    # daily, then to monthly (pending for December), then to daily bandwidth: applies the next day
    steps = schedule([(NOV, "traffic", "daily"), (NOV + 3600, "traffic", "monthly"),
                      (NOV + 7200, "bandwidth", "daily")], ("traffic", "daily"))
    assert steps == [(None, "traffic", "daily"), (NOV + DAY, "bandwidth", "daily")]


def test_cycles_follow_the_schedule_across_a_change_of_cycle():
    steps = schedule([(NOV, "traffic", "daily"), (NOV + 10 * DAY, "traffic", "monthly")], ("traffic", "monthly"))
    found = cycles(steps, DEC - 2 * DAY + 5, DEC + 3)
    assert found == [(DEC - 2 * DAY, DEC - DAY, "traffic", "daily"), (DEC - DAY, DEC, "traffic", "daily"),
                     (DEC, JAN, "traffic", "monthly")]


def settings(text="", method="traffic", cycle="monthly", tiers="0:0.10 10240:0.08"):
    return BillingSettings(method, cycle, parse_tiers(tiers) if tiers else (), parse_plans(text))


def test_a_monthly_traffic_report_deducts_the_plans_first_then_prices_the_rest_by_tier():
    # 300 GB in October under a 500 GB plan valid Oct 1 to Dec 1, then 400 GB in November
    oct1 = NOV - 31 * DAY
    daily = {oct1 + 3 * DAY: 300 * GB, NOV + 2 * DAY: 150 * GB, NOV + 20 * DAY: 250 * GB}
    fine = {NOV + 2 * DAY + 600: 150 * GB, NOV + 20 * DAY: 250 * GB}
    plan_text = "500GB:2026-10-01:2026-12-01"
    [row] = usage("a.example", settings(plan_text), [(None, "traffic", "monthly")], NOV, NOV + 1, daily, fine,
                  now=NOV + 25 * DAY)
    assert row["start"] == "2026-11-01T00:00:00Z" and row["end"] == "2026-12-01T00:00:00Z"
    assert not row["complete"]
    assert row["traffic_bytes"] == 400 * GB and row["traffic_gb"] == 400
    assert row["plan_deductions"] == [{"plan": plan_text, "gb": 200}]  # the 200 GB October left
    assert (row["billable_quantity"], row["unit"], row["amount"]) == (200, "GB", 20.0)
    assert row["peak_bandwidth_mbps"] == pytest.approx(250 * GB * 8 / 300 / 1e6)


def test_daily_bandwidth_bills_the_days_peak_and_plans_are_not_consumed_by_it():
    fine = {NOV + 300 * i: 37_500_000 for i in range(288)}  # 1 Mbit/s all day
    fine[NOV + 3000] = 375_000_000                             # one 10 Mbit/s point
    daily = {NOV: sum(fine.values())}
    rows = usage("a.example", settings("100GB:2026-11-01:2026-12-01", "bandwidth", "daily", "0:2"),
                 [(None, "bandwidth", "daily")], NOV, NOV + DAY, daily, fine, now=NOV + 2 * DAY)
    assert len(rows) == 1 and rows[0]["complete"]
    assert (rows[0]["billable_quantity"], rows[0]["unit"], rows[0]["amount"]) == (10, "Mbit/s", 20.0)
    assert rows[0]["plan_deductions"] == [] and rows[0]["plan_deducted_gb"] == 0


def test_monthly_bandwidth_bills_the_95th_percentile():
    fine = {NOV + 300 * i: 37_500_000 for i in range(8640)}  # 1 Mbit/s all month
    for i in range(400):                                      # 400 of 8640 points (4.6 %) at 10 Mbit/s
        fine[NOV + 300 * i] = 375_000_000
    [row] = usage("a.example", settings(method="bandwidth", tiers="0:1"), [(None, "bandwidth", "monthly")],
                  NOV, DEC, {}, fine, now=DEC)
    assert (row["billable_quantity"], row["amount"], row["peak_bandwidth_mbps"]) == (1, 1.0, 10)


def test_a_method_change_applies_from_the_next_cycle_in_the_report():
    steps = schedule([(NOV - DAY, "traffic", "daily"), (NOV + 3600, "bandwidth", "daily")], ("traffic", "daily"))
    fine = {NOV: 3 * GB, NOV + DAY: 3 * GB}
    rows = usage("a.example", settings(tiers="0:1"), steps, NOV, NOV + 2 * DAY, {NOV: 3 * GB, NOV + DAY: 3 * GB},
                 fine, now=NOV + 2 * DAY)
    assert [(r["method"], r["unit"], r["billable_quantity"]) for r in rows] == [
        ("traffic", "GB", 3), ("bandwidth", "Mbit/s", 80)]


def test_without_tiers_there_is_no_amount_and_csv_has_one_line_per_cycle():
    rows = usage("a.example", settings("1GB:2026-11-01:2026-11-03", cycle="daily", tiers=""),
                 [(None, "traffic", "daily")], NOV, NOV + 2 * DAY, {NOV: 1_500_000_000}, {}, now=NOV)
    assert [r["amount"] for r in rows] == [None, None]
    assert rows[0]["billable_quantity"] == 0.5
    lines = csv_rows(rows).splitlines()
    assert lines[0].startswith("domain,cycle,method,start,end,complete,traffic_bytes")
    assert lines[1] == ("a.example,daily,traffic,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,false,1500000000,1.5,"
                        "0.0,1GB:2026-11-01:2026-11-03=1,1.0,0.5,GB,")
    assert len(lines) == 3
