"""Billing arithmetic: cycles, the 95th percentile, tiers, plans consumed oldest-expiring first, the change at the boundary."""

import pytest

from wsrelay.accounting.billing import (
    Plan, billed_bandwidth, cycle_bounds, deduct, in_force, parse_plans, parse_tiers, percentile95, tiered_amount)

NOV = 1_793_491_200  # 2026-11-01T00:00:00Z
DEC = NOV + 30 * 86400


def test_cycles_are_utc_days_and_months():
    assert cycle_bounds(NOV + 5, "monthly") == (NOV, DEC)
    assert cycle_bounds(DEC + 31 * 86400 - 1, "monthly") == (DEC, DEC + 31 * 86400)  # December into January
    assert cycle_bounds(NOV + 86400 + 7, "daily") == (NOV + 86400, NOV + 2 * 86400)


def test_the_95th_percentile_drops_the_highest_5_percent_with_idle_points_as_zeros():
    assert percentile95(range(1, 101)) == 95
    assert percentile95([1000] * 5 + [10] * 95) == 10
    assert percentile95([1000] * 6 + [10] * 94) == 1000
    assert percentile95([50] * 5, count=100) == 0  # 95 idle points of the month
    assert percentile95([50] * 6, count=100) == 50


def test_bandwidth_billed_daily_is_the_peak_and_monthly_the_95th_percentile():
    points = {NOV + i * 300: 37_500_000 for i in range(8640)}  # 1 Mbit/s all month
    points[NOV] = 375_000_000  # one 10 Mbit/s point
    assert billed_bandwidth(points, NOV, NOV + 86400) == 10.0
    assert billed_bandwidth(points, NOV, DEC) == 1.0


def test_tiers_are_graduated():
    tiers = parse_tiers("0:0.10 10240:0.08")
    assert tiers == ((0.0, 0.10), (10240.0, 0.08))
    assert tiered_amount(100, tiers) == pytest.approx(10.0)
    assert tiered_amount(10240 + 1000, tiers) == pytest.approx(1024.0 + 80.0)
    for bad in ("10:0.1", "0:0.1 0:0.2", "0-0.1", ""):
        with pytest.raises(ValueError):
            parse_tiers(bad)


def test_plans_are_consumed_before_anything_is_billable_the_one_expiring_first_first():
    long, short = parse_plans("500GB:2026-11-01:2027-01-01 100GB:2026-11-01:2026-12-01")
    assert short == Plan(100, NOV, DEC)
    deductions, billable, used = deduct((long, short), {}, 80, NOV + 10)
    assert (deductions, billable) == ([(short, 80)], 0)
    deductions, billable, used = deduct((long, short), used, 600, NOV + 20)
    assert (deductions, billable) == ([(short, 20), (long, 500)], 80)
    assert deduct((long, short), {}, 50, DEC + 1)[:2] == ([(long, 50)], 0)  # the short plan has expired
    with pytest.raises(ValueError, match="SIZEGB:FROM:TO"):
        parse_plans("500:2026-11-01:2026-12-01")


def test_a_change_of_method_or_cycle_waits_for_the_next_boundary():
    history = [(0, "traffic", "monthly"), (NOV + 15 * 86400, "bandwidth", "monthly")]
    assert in_force(history, NOV) == ("traffic", "monthly")
    assert in_force(history, DEC) == ("bandwidth", "monthly")
    assert in_force([(0, "traffic", "daily"), (NOV + 3600, "traffic", "monthly")], NOV) == ("traffic", "daily")
