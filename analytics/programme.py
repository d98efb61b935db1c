"""The membership programme's rules: tier thresholds and the value of points.

These are business rules, not warehouse facts, so they live in one place that the demo generator
(which must produce tiers and points consistent with them) and the KPI definitions (which value the
points liability) both read. A shop with other rules changes them here.
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
