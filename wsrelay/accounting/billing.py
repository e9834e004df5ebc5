"""
Billing arithmetic as pure functions (no I/O, no clock): a domain's billing
settings, UTC billing cycles, when a change of method or cycle takes effect,
the 95th percentile of 5-minute bandwidth points, graduated price tiers,
prepaid traffic plans consumed oldest-expiring first, and the usage report of
each cycle built from stored points (see docs/statistics.md, "Billing").

Units: traffic in GB (10^9 bytes) sent to clients; bandwidth in Mbit/s
(10^6 bit/s); a tier's price is per unit of the method's quantity. Byte
counts stay integers and money is Decimal, so a report adds up exactly.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from wsrelay.accounting.meter import BUCKET

GB = 10**9
MBIT = 10**6
DAY = 86400
METHODS = ("traffic", "bandwidth")
CYCLES = ("daily", "monthly")
UNITS = {"traffic": "GB", "bandwidth": "Mbit/s"}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Plan:
    """A prepaid traffic plan: `size` bytes usable for traffic sent to clients in [valid_from, valid_to)."""

    size: int
    valid_from: int
    valid_to: int

    @property
    def key(self):
        """The plan as the config writes it, e.g. 500GB:2026-11-01:2026-12-01."""
        gb = Decimal(self.size) / GB
        return f"{gb.normalize():f}GB:{iso_date(self.valid_from)}:{iso_date(self.valid_to)}"


@dataclass(frozen=True)
class BillingSettings:
    """A domain's billing keys: method, cycle, price tiers ((from, price) Decimals) and plans."""

    method: str = "traffic"
    cycle: str = "monthly"
    tiers: tuple = ()
    plans: tuple = ()


def iso_date(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d")


def iso_time(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cycle_bounds(now, cycle):
    """[start, end) in epoch seconds of the UTC day or month holding `now`."""
    t = datetime.fromtimestamp(now, timezone.utc)
    if cycle == "daily":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(start.timestamp()), int(start.timestamp()) + DAY
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
    """Mbit/s (a Decimal) of a 5-minute point that carried `bytes_per_point` bytes."""
    return Decimal(bytes_per_point * 8) / (BUCKET * MBIT)


def billed_bandwidth(points, cycle_start, cycle_end, cycle):
    """
    Mbit/s billed for a cycle from its 5-minute points' bytes sent to clients
    ({bucket: bytes}): daily, the day's peak point; monthly, the 95th percentile
    of all the month's points (idle points are zeros).
    """
    values = [b for at, b in points.items() if cycle_start <= at < cycle_end]
    if cycle == "daily":
        return bandwidth_of(max(values, default=0))
    return bandwidth_of(percentile95(values, (cycle_end - cycle_start) // BUCKET))


def parse_tiers(text):
    """`0:0.10 10240:0.08` (from quantity: price per unit, ascending from 0) -> ((0, 0.10), (10240, 0.08)) as Decimals."""
    tiers = []
    for word in text.split():
        start, sep, price = word.partition(":")
        try:
            tier = (Decimal(start), Decimal(price))
        except InvalidOperation:
            raise ValueError(f"{word!r} is not FROM:PRICE, e.g. 0:0.10")
        if not sep or not all(v.is_finite() and v >= 0 for v in tier):
            raise ValueError(f"{word!r} is not FROM:PRICE with numbers of at least 0")
        if tiers and tier[0] <= tiers[-1][0]:
            raise ValueError(f"{word!r}: tiers must start at ascending quantities")
        tiers.append(tier)
    if not tiers or tiers[0][0] != 0:
        raise ValueError("the first tier must start at 0, e.g. 0:0.10")
    return tuple(tiers)


def tiered_amount(quantity, tiers):
    """Graduated pricing: each tier's price applies to the part of `quantity` (a Decimal) within that tier."""
    amount = Decimal(0)
    for i, (start, price) in enumerate(tiers):
        if quantity <= start:
            break
        end = tiers[i + 1][0] if i + 1 < len(tiers) else quantity
        amount += (min(quantity, end) - start) * price
    return amount


def parse_plans(text):
    """`500GB:2026-11-01:2026-12-01 ...` (dates UTC, the end excluded) -> (Plan, ...)."""
    plans = []
    for word in text.split():
        parts = word.split(":")
        if len(parts) != 3 or not parts[0].upper().endswith("GB"):
            raise ValueError(f"{word!r} is not SIZEGB:FROM:TO, e.g. 500GB:2026-11-01:2026-12-01")
        try:
            size = Decimal(parts[0][:-2])
            start, end = (int(datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
                          for d in parts[1:])
        except (InvalidOperation, ValueError):
            raise ValueError(f"{word!r} is not SIZEGB:FROM:TO with dates like 2026-11-01")
        if not (size.is_finite() and size > 0) or end <= start:
            raise ValueError(f"{word!r}: the size must be more than 0 and TO after FROM")
        plans.append(Plan(int(size * GB), start, end))
    return tuple(plans)


def deduct(plans, used, quantity, at):
    """
    Consume `quantity` bytes sent at `at` from the plans valid then, the one
    expiring first first. `used` maps Plan.key to bytes already consumed.
    Returns ([(plan, bytes deducted)], bytes left billable, the new `used`).
    """
    used = dict(used)
    deductions = []
    left = quantity
    for plan in sorted((p for p in plans if p.valid_from <= at < p.valid_to),
                       key=lambda p: (p.valid_to, p.valid_from)):
        if left <= 0:
            break
        take = min(left, plan.size - used.get(plan.key, 0))
        if take > 0:
            used[plan.key] = used.get(plan.key, 0) + take
            deductions.append((plan, take))
            left -= take
    return deductions, left, used


# -- when a change applies -------------------------------------------------------------


def effective_from(changed_at, old_cycle, new_cycle):
    """
    When a change recorded at `changed_at` applies: the next cycle boundary
    (a boundary itself counts). A monthly cycle on either side means the
    first of a month (a month is never split); daily to daily, the next UTC day.
    """
    cycle = "daily" if old_cycle == new_cycle == "daily" else "monthly"
    start, end = cycle_bounds(changed_at, cycle)
    return start if start == changed_at else end


def schedule(history, current):
    """
    [(from, method, cycle)] in force over time, `from` None for "always
    before": from the recorded changes `history` ([(changed_at, method,
    cycle)] in any order), or `current` (method, cycle) alone when none is
    recorded. Each change applies from its effective_from.
    """
    steps = []
    for changed_at, method, cycle in sorted(history):
        if steps and (method, cycle) == steps[-1][1:]:
            continue
        if not steps:
            steps.append((None, method, cycle))
            continue
        start = effective_from(changed_at, in_force(steps, changed_at)[1], cycle)
        while steps[-1][0] is not None and steps[-1][0] >= start:
            steps.pop()  # a change superseded before it took effect
        if steps and (method, cycle) == steps[-1][1:]:
            continue
        steps.append((start, method, cycle))
    return steps or [(None, *current)]


def in_force(steps, at):
    """The (method, cycle) of a schedule() at `at`."""
    chosen = steps[0][1:]
    for start, method, cycle in steps:
        if start is None or start <= at:
            chosen = (method, cycle)
    return chosen


def cycles(steps, start, end):
    """[(cycle start, cycle end, method, cycle)] of every cycle overlapping [start, end)."""
    found = []
    at = start
    while at < end:
        method, cycle = in_force(steps, at)
        first, last = cycle_bounds(at, cycle)
        found.append((first, last, method, cycle))
        at = last
    return found


# -- the usage report --------------------------------------------------------------------


def bytes_by_bucket(rows, column="client_bytes_out"):
    """{bucket: summed `column`} of traffic rows of any regions and ISPs."""
    found = {}
    for row in rows:
        found[row["bucket"]] = found.get(row["bucket"], 0) + row[column]
    return found


def plan_lookback(settings, start):
    """Where the daily traffic must be read from so the plans' earlier consumption is known."""
    return min([start] + [plan.valid_from for plan in settings.plans if plan.valid_from < start])


def usage(domain, settings, steps, start, end, daily, fine, now):
    """
    One report row per cycle of `domain` overlapping [start, end): traffic
    (bytes sent to clients), peak bandwidth, plan deductions, the billable
    quantity and its amount. `daily` ({UTC day: bytes}) must reach back to
    plan_lookback(); `fine` ({5-minute bucket: bytes}) must cover the cycles.
    Plans are consumed day by day, by traffic sent on days billed by traffic.
    """
    spans = cycles(steps, start, end)
    if not spans:
        return []
    used, taken = {}, {}  # plan key -> bytes; (day, plan key) -> bytes
    for day in sorted(d for d in daily if d < spans[-1][1]):
        if in_force(steps, day)[0] != "traffic" or not daily[day]:
            continue
        deductions, _, used = deduct(settings.plans, used, daily[day], day)
        for plan, amount in deductions:
            taken[(day, plan.key)] = amount
    rows = []
    for first, last, method, cycle in spans:
        traffic = sum(b for day, b in daily.items() if first <= day < last)
        deductions = {}
        for (day, key), amount in taken.items():
            if first <= day < last:
                deductions[key] = deductions.get(key, 0) + amount
        deducted = sum(deductions.values())
        peak = bandwidth_of(max((b for at, b in fine.items() if first <= at < last), default=0))
        if method == "traffic":
            quantity = Decimal(traffic - deducted) / GB
        else:
            quantity = billed_bandwidth(fine, first, last, cycle)
        amount = tiered_amount(quantity, settings.tiers).quantize(CENT, ROUND_HALF_UP) if settings.tiers else None
        rows.append({
            "domain": domain, "cycle": cycle, "method": method,
            "start": iso_time(first), "end": iso_time(last), "complete": last <= now,
            "traffic_bytes": traffic, "traffic_gb": _number(Decimal(traffic) / GB),
            "peak_bandwidth_mbps": _number(peak),
            "plan_deductions": [{"plan": key, "gb": _number(Decimal(b) / GB)}
                                for key, b in sorted(deductions.items())],
            "plan_deducted_gb": _number(Decimal(deducted) / GB),
            "billable_quantity": _number(quantity), "unit": UNITS[method],
            "amount": None if amount is None else float(amount),
        })
    return rows


def _number(value):
    """A Decimal as a JSON number, to 9 decimal places (a byte in GB)."""
    return float(value.quantize(Decimal("1e-9"), ROUND_HALF_UP))


CSV_COLUMNS = ("domain", "cycle", "method", "start", "end", "complete", "traffic_bytes", "traffic_gb",
               "peak_bandwidth_mbps", "plan_deductions", "plan_deducted_gb", "billable_quantity", "unit",
               "amount")


def csv_rows(rows):
    """The report as CSV lines (header first); plan deductions as `PLAN=GB` joined with `;`."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = dict(row, complete="true" if row["complete"] else "false",
                     amount="" if row["amount"] is None else f"{row['amount']:.2f}",
                     plan_deductions=";".join(f"{d['plan']}={d['gb']:g}" for d in row["plan_deductions"]))
        writer.writerow([cells[c] for c in CSV_COLUMNS])
    return out.getvalue()
