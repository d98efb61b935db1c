"""Shopping demand over the days of the demo's trading window.

A day's weight says how busy the shop is that day relative to an average day. It combines a
growth trend, the weekly rhythm (weekends busier), Chinese e-commerce peaks (11.11 with its
pre-sale, 6.18, Double 12, 3.8 Women's Day, 5.20, monthly member days), and the Spring Festival
(a busy New Year-goods fortnight before it, then a logistics pause around it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

#: Lunar New Year's Day (Spring Festival) by Gregorian year.
SPRING_FESTIVAL: dict[int, date] = {
    2019: date(2019, 2, 5), 2020: date(2020, 1, 25), 2021: date(2021, 2, 12),
    2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10),
    2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
    2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
}

#: Day of week multipliers, Monday first.
WEEKDAY_FACTOR = np.array([0.94, 0.95, 0.97, 1.0, 1.05, 1.13, 1.16])

#: Annual growth of the shop's demand (the trend a KPI chart should show).
ANNUAL_GROWTH = 0.22

#: Share of a day's orders by hour for a typical member: quiet nights, a lunch bump, an evening peak.
BASE_HOURS = np.array(
    [1.2, 0.6, 0.3, 0.2, 0.2, 0.3, 0.8, 1.8, 3.0, 4.2, 4.8, 5.0,
     5.6, 5.2, 4.6, 4.5, 4.6, 4.8, 5.2, 6.2, 7.6, 8.4, 7.8, 4.9]
)
#: Night owls shift their shopping past midnight.
NIGHT_OWL_HOURS = np.array(
    [6.5, 5.5, 4.0, 2.2, 1.0, 0.5, 0.4, 0.6, 1.0, 1.8, 2.4, 2.8,
     3.4, 3.2, 2.8, 2.8, 3.0, 3.4, 4.0, 5.0, 6.4, 7.8, 9.2, 9.0]
)


def peak_multiplier(day: date) -> float:
    """How much busier than usual a calendar day is because of a shopping festival."""
    m, d = day.month, day.day
    factor = 1.0
    if m == 11 and d == 11:
        factor = 6.0
    elif (m == 10 and d >= 24) or (m == 11 and d < 11):
        factor = 1.55  # 11.11 pre-sale
    elif m == 11 and d in (12, 13):
        factor = 1.4
    elif m == 6 and d == 18:
        factor = 4.0
    elif m == 6 and 1 <= d < 18:
        factor = 1.35
    elif m == 12 and d == 12:
        factor = 2.6
    elif m == 3 and d == 8:
        factor = 2.0
    elif m == 5 and d == 20:
        factor = 1.5
    elif d == 18:
        factor = 1.3  # monthly member day
    festival = SPRING_FESTIVAL.get(day.year if m < 6 else day.year + 1)
    if festival is not None:
        offset = (day - festival).days
        if -6 <= offset <= 6:
            factor *= 0.45  # couriers stop around the holiday
        elif -24 <= offset < -6:
            factor *= 1.3  # New Year goods festival
    return factor


def is_promotion_day(day: date) -> bool:
    """Days with shop-wide full-reduction promotions (every 300 off 30): the big festivals."""
    m, d = day.month, day.day
    return ((m == 10 and d >= 31) or (m == 11 and d <= 13) or (m == 6 and 1 <= d <= 18)
            or (m == 12 and d == 12) or (m == 3 and d == 8))


@dataclass(frozen=True)
class DemandCalendar:
    """Daily demand weights over ``days`` days ending on ``end`` (inclusive)."""

    start: date
    days: int
    weight: np.ndarray  # float64[days], mean 1
    promotion: np.ndarray  # bool[days]

    @classmethod
    def build(cls, end: date, days: int) -> DemandCalendar:
        start = end - timedelta(days=days - 1)
        dates = [start + timedelta(days=i) for i in range(days)]
        t = np.arange(days) / 365.0
        weekday = WEEKDAY_FACTOR[[dd.weekday() for dd in dates]]
        peaks = np.array([peak_multiplier(dd) for dd in dates])
        weight = np.exp(ANNUAL_GROWTH * t) * weekday * peaks
        promotion = np.array([is_promotion_day(dd) for dd in dates])
        return cls(start, days, weight / weight.mean(), promotion)

    def cumulative(self, sharpness: float = 1.0) -> np.ndarray:
        """Cumulative weight (length days+1, from 0) with peaks sharpened by ``sharpness``.

        Bargain hunters have sharpness above one: they concentrate their buying on festival days.
        """
        w = self.weight**sharpness
        w = w / w.mean()
        return np.concatenate([[0.0], np.cumsum(w)])

    def day_of(self, day: date) -> int:
        return (day - self.start).days
