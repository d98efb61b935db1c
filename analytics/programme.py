"""The membership programme's rules: tier thresholds and the value of points.

These are business rules, not warehouse facts, so they live in one place that the demo generator
(which must produce tiers and points consistent with them) and the KPI definitions (which value the
points liability) both read. A shop with other rules changes them here.

**The tier evaluation rule** (what :mod:`analytics.synthetic.loyalty` applies and what the threshold what-if of
:mod:`analytics.programme_whatif` computes in SQL):

* Tiers are evaluated at 00:00 on the **first day of every calendar month**. The tier in force on a day is the
  one of the latest evaluation on or before it, i.e. of the first day of that day's month
  (:func:`evaluation_day`).
* An evaluation counts each member's **gross amount** (``orders.gross_amount``, before discounts) of their
  **completed** orders placed in the **twelve calendar months before** the evaluation day, ``[evaluation day -
  12 months, evaluation day)`` (:func:`evaluation_months`). Cancelled and returned orders and guest orders never
  count; months without orders in the warehouse count as zero.
* The member's tier becomes the **highest tier whose threshold** (:data:`TIER_THRESHOLDS`) that spend **reaches**
  (spend >= threshold; exact decimal comparison). Tiers go down as well as up; the lowest tier's threshold is 0,
  so every member has a tier, a member without spend the lowest.
* A member who joined after the evaluation day holds the lowest tier until the next evaluation (they have no
  spend before it). Every change is a ``tier_changes`` row dated at the evaluation (00:00 of the 1st).

Nuance for reproducing the stored tiers: the demo starts mid-month and performs no evaluation on the first day
of its first month; the rule above gives the lowest tier there too (no orders before the data starts), so
applying it with today's thresholds on any day reproduces the ``tier_changes`` history and, on the data's last
day, ``members.tier`` exactly.
"""

from __future__ import annotations

import os
from datetime import date

from analytics.storage.contract import TIERS

CURRENCY_ENV = "MEMBERLENS_CURRENCY"
_SYMBOLS = {"CNY": "¥", "JPY": "¥", "GBP": "£", "USD": "$", "EUR": "€", "HKD": "HK$", "KRW": "₩", "INR": "₹"}


def _currency() -> str:
    code = os.environ.get(CURRENCY_ENV, "").strip().upper()
    return code if code.isalpha() and len(code) == 3 else "CNY"


#: The shop currency of every monetary column in the warehouse (ISO 4217; ``MEMBERLENS_CURRENCY``,
#: default CNY: the demo shop's), and how the UI writes it. An imported shop sets its own, e.g. GBP.
CURRENCY: str = _currency()
CURRENCY_SYMBOL: str = _SYMBOLS.get(CURRENCY, f"{CURRENCY} ")

#: Gross spend on completed orders in the previous twelve calendar months needed for each tier.
#: Tiers are re-evaluated on the first day of every month, so they go down as well as up.
TIER_THRESHOLDS: dict[str, float] = {"basic": 0.0, "silver": 1_000.0, "gold": 5_000.0, "diamond": 20_000.0}
#: Calendar months of spend an evaluation counts (see the rule in the module docstring).
EVALUATION_MONTHS: int = 12


def evaluation_day(day: date) -> date:
    """The day of the tier evaluation in force on ``day``: the first day of its month."""
    return date(day.year, day.month, 1)


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` calendar months after ``day``'s month (negative: before)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def evaluation_months(day: date, months: int = 12) -> tuple[date, date]:
    """The months counted by the evaluation in force on ``day``: the ``months`` calendar months before
    :func:`evaluation_day`, as ``[first day, evaluation day)``."""
    evaluated = evaluation_day(day)
    return add_months(evaluated, -months), evaluated


def next_evaluation_months(day: date) -> tuple[date, date]:
    """The months the next tier evaluation after ``day`` counts: on the first day of the following month,
    the twelve calendar months ending with ``day``'s month, as ``[first day, first day after)``."""
    months = day.year * 12 + day.month - 1  # months since year 0 of day's month
    first = months - 11
    return date(first // 12, first % 12 + 1, 1), date((months + 1) // 12, (months + 1) % 12 + 1, 1)


#: Points earned per unit of gross order value, by the member's tier when the order was placed.
POINTS_EARN_RATE: dict[str, float] = {"basic": 1.0, "silver": 1.2, "gold": 1.5, "diamond": 2.0}

#: Points are redeemed at this rate: 100 points are worth one unit of the shop currency.
POINTS_PER_CURRENCY_UNIT: int = 100

#: Points expire at the end of the calendar year after the year in which they were earned.
POINTS_EXPIRY_YEARS: int = 1

assert tuple(TIER_THRESHOLDS) == TIERS, "tier thresholds must follow the contract's tier order"
