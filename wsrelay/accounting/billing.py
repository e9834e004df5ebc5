"""
Billing arithmetic as pure functions (no I/O, no clock): UTC billing cycles,
the 95th percentile of 5-minute bandwidth points, graduated price tiers and
prepaid traffic plans consumed oldest-expiring first. Not yet wired to the
config, the API or the command (see docs/statistics.md, "Billing").

Units: traffic in GB (10^9 bytes) sent to clients; bandwidth in Mbit/s
(10^6 bit/s); a tier's price is per unit of the method's quantity.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from wsrelay.accounting.meter import BUCKET

GB = 10**9
MBIT = 10**6
METHODS = ("traffic", "bandwidth")
CYCLES = ("daily", "monthly")


def cycle_bounds(now, cycle):
    """[start, end) in epoch seconds of the UTC day or month holding `now`."""
    t = datetime.fromtimestamp(now, timezone.utc)
    if cycle == "daily":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(start.timestamp()), int(start.timestamp()) + 86400
    if cycle != "monthly":
        raise ValueError(f"cycle {cycle!r} is not one of {', '.join(CYCLES)}")
    start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp()), int(end.timestamp())


def percentile95(values, count=None):
    """
    The 95th percentile of `values`, padded with zeros up to `count` points
    (the 5-minute points of a whole month, idle ones included): sorted
    ascending, the value at rank ceil(0.95 x n), so the highest 5% are dropped.
    """
    values = sorted(values)
    n = max(len(values), count or 0)
    if n == 0:
        return 0
    values = [0] * (n - len(values)) + values
    return values[math.ceil(0.95 * n) - 1]


def bandwidth_of(bytes_per_point):
    """Mbit/s of a 5-minute point that carried `bytes_per_point` bytes."""
    return bytes_per_point * 8 / BUCKET / MBIT


def billed_bandwidth(points, cycle_start, cycle_end):
    """
    Mbit/s billed for a cycle from its 5-minute points' bytes sent to clients
    ({bucket: bytes}): daily, the day's peak point; monthly, the 95th percentile
    of all the month's points (idle points are zeros).
    """
    values = [b for at, b in points.items() if cycle_start <= at < cycle_end]
    count = (cycle_end - cycle_start) // BUCKET
    peak = max(values, default=0) if count <= 86400 // BUCKET else percentile95(values, count)
    return bandwidth_of(peak)


def parse_tiers(text):
    """`0:0.10 10240:0.08` (from quantity: price per unit, ascending from 0) -> ((0.0, 0.10), (10240.0, 0.08))."""
    tiers = []
    for word in text.split():
        start, sep, price = word.partition(":")
        try:
            tier = (float(start), float(price))
        except ValueError:
            raise ValueError(f"{word!r} is not FROM:PRICE, e.g. 0:0.10")
        if not sep or tier[0] < 0 or tier[1] < 0 or not all(map(math.isfinite, tier)):
            raise ValueError(f"{word!r} is not FROM:PRICE with numbers of at least 0")
        if tiers and tier[0] <= tiers[-1][0]:
            raise ValueError(f"{word!r}: tiers must start at ascending quantities")
        tiers.append(tier)
    if not tiers or tiers[0][0] != 0:
        raise ValueError("the first tier must start at 0, e.g. 0:0.10")
    return tuple(tiers)


def tiered_amount(quantity, tiers):
    """Graduated pricing: each tier's price applies to the part of `quantity` within that tier."""
    amount = 0.0
    for i, (start, price) in enumerate(tiers):
        end = tiers[i + 1][0] if i + 1 < len(tiers) else math.inf
        if quantity <= start:
            break
        amount += (min(quantity, end) - start) * price
    return amount


@dataclass(frozen=True)
class Plan:
    """A prepaid traffic plan: `size` GB usable for traffic sent in [valid_from, valid_to)."""

    size: float
    valid_from: int
    valid_to: int

    @property
    def key(self):
        return f"{self.size:g}GB:{self.valid_from}:{self.valid_to}"


def parse_plans(text):
    """`500GB:2026-11-01:2026-12-01 ...` (dates UTC, the end excluded) -> (Plan, ...)."""
    plans = []
    for word in text.split():
        parts = word.split(":")
        if len(parts) != 3 or not parts[0].upper().endswith("GB"):
            raise ValueError(f"{word!r} is not SIZEGB:FROM:TO, e.g. 500GB:2026-11-01:2026-12-01")
        try:
            size = float(parts[0][:-2])
            start, end = (int(datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
                          for d in parts[1:])
        except ValueError:
            raise ValueError(f"{word!r} is not SIZEGB:FROM:TO with dates like 2026-11-01")
        if not (size > 0 and math.isfinite(size)) or end <= start:
            raise ValueError(f"{word!r}: the size must be more than 0 and TO after FROM")
        plans.append(Plan(size, start, end))
    return tuple(plans)


def deduct(plans, used, quantity, at):
    """
    Consume `quantity` GB sent at `at` from the plans valid then, the one
    expiring first first. `used` maps Plan.key to GB already consumed.
    Returns ([(plan, GB deducted)], GB left billable, the new `used`).
    """
    used = dict(used)
    deductions = []
    left = quantity
    for plan in sorted((p for p in plans if p.valid_from <= at < p.valid_to),
                       key=lambda p: (p.valid_to, p.valid_from)):
        if left <= 0:
            break
        take = min(left, plan.size - used.get(plan.key, 0.0))
        if take > 0:
            used[plan.key] = used.get(plan.key, 0.0) + take
            deductions.append((plan, take))
            left -= take
    return deductions, left, used


def in_force(history, cycle_start):
    """
    The (method, cycle) billing a cycle starting at `cycle_start`: `history` is
    [(changed_at, method, cycle)] oldest first; a change applies from the first
    cycle that starts at or after it, so a change in the middle of a cycle
    waits for the next boundary.
    """
    chosen = None
    for changed_at, method, cycle in history:
        if changed_at <= cycle_start:
            chosen = (method, cycle)
    if chosen is None:
        raise ValueError("no billing setting was in force at the start of that cycle")
    return chosen
