"""Loyalty points: what was issued, redeemed and expired, what is still owed, by tier, and who holds points that
are about to expire.

Definitions (one place; the app shows them as help, :data:`POINTS_HELP`), all from ``points_ledger``:

* **Earned**: points credited for orders (reason ``earn``); **bonus**: points granted otherwise (``bonus``:
  sign-up, birthday ...); **issued** = earned + bonus. **Redeemed** and **expired**: points debited for those
  reasons (shown as positive numbers). Each per day, ISO week or calendar month of the range.
* **Liability**: points outstanding (every ledger row up to then summed), at the end of each period; its **value**
  = liability / points per currency unit (100 by default, :data:`analytics.programme.POINTS_PER_CURRENCY_UNIT`;
  the page lets it be changed).
* **Redemption rate** = redeemed / issued and **breakage rate** = expired / issued, within the range. Points
  redeemed or expired in a range were mostly issued before it, so these are flows of the same period compared,
  not the fate of the range's own points.
* **By tier**: the same figures per tier the member held when the ledger row was written
  (:func:`analytics.programme_tiers.tier_when`), with the members who redeemed.
* **Expiring**: points that expire on 31 December of the range's last year (first in, first out: the rule of the
  ``points_expiring`` tag, :func:`analytics.tags.expiring_points`), counted when that day lies within 30, 60 or 90
  days of the range's last day; the members holding them are an audience (:class:`ExpiringPointsAudience`).

Filters: the tier filter keeps members whose current tier is chosen; the ledger has no sales channel, so the
channel filter does not apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import ColumnElement, Double, Select, case, cast, false, func, select

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError, SpecError
from analytics.filters import Filters, members_in_tiers
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, format_day, language
from analytics.programme import POINTS_PER_CURRENCY_UNIT
from analytics.programme_tiers import TIER_ORDER, periods, tier_when
from analytics.sqlparts import Grain, date_trunc, sum_if
from analytics.storage.contract import points_ledger
from analytics.storage.db import Bind, read_frame
from analytics.tags import expiring_points

#: The horizons of "expiring within N days" the page offers.
EXPIRY_HORIZONS: tuple[int, ...] = (30, 60, 90)
MAX_POINTS_PER_UNIT = 1_000_000
FLOW_COLUMNS = ["period_start", "earned", "bonus", "issued", "redeemed", "expired", "net", "liability"]
POINTS_HELP: dict[str, str] = {
    "issued": N_("Points credited: earned on orders plus bonus points (sign-up, birthday ...)."),
    "redeemed": N_("Points spent by members (debits with reason redeem)."),
    "expired": N_("Points that lapsed unspent (debits with reason expire)."),
    "liability": N_("Points outstanding at the end of the period: every ledger row up to then, summed."),
    "value": N_("Liability / points per currency unit: what the outstanding points are worth if all were redeemed."),
    "redemption_rate": N_("Redeemed / issued in the date range (flows of the same period: most points spent in it "
                          "were issued earlier)."),
    "breakage_rate": N_("Expired / issued in the date range: the share of points that lapse instead of being spent."),
    "expiring": N_("Points that expire on 31 December of the range's last year, when that day lies within the "
                   "horizon of the range's last day; points are spent oldest first."),
}


def _day(day: date) -> str:
    """A day in a sentence: as it always read in English (``05 Nov 2026``), else in the reader's language."""
    return f"{day:%d %b %Y}" if language() == DEFAULT_LANGUAGE else format_day(day)


def check_points_per_unit(points_per_unit: int) -> int:
    if isinstance(points_per_unit, bool) or not isinstance(points_per_unit, int) or not (
            1 <= points_per_unit <= MAX_POINTS_PER_UNIT):
        raise InputError(_("Points per currency unit must be a whole number from 1 to {most}, not {value}.").format(
            most=f"{MAX_POINTS_PER_UNIT:,}", value=repr(points_per_unit)))
    return points_per_unit


def _scope(filters: Filters) -> list[ColumnElement[bool]]:
    lg = points_ledger.c
    return [lg.member_id.in_(members_in_tiers(filters.tiers))] if filters.tiers else []


def _reason_sums(reason: Any, delta: Any) -> list[Any]:
    return [func.coalesce(sum_if(reason == "earn", delta), 0).label("earned"),
            func.coalesce(sum_if(reason == "bonus", delta), 0).label("bonus"),
            func.coalesce(-sum_if(reason == "redeem", delta), 0).label("redeemed"),
            func.coalesce(-sum_if(reason == "expire", delta), 0).label("expired"),
            func.coalesce(func.sum(delta), 0).label("net")]


def points_flows(bind: Bind, filters: Filters, grain: Grain = "month",
                 points_per_unit: int = POINTS_PER_CURRENCY_UNIT) -> pd.DataFrame:
    """Per period of the range: ``period_start, earned, bonus, issued, redeemed, expired, net, liability,
    liability_value``; every period present. One statement groups the ledger by period (rows before the range into
    one opening group), the running balance is summed here over those rows."""
    check_points_per_unit(points_per_unit)
    grid = periods(filters, grain)
    lg = points_ledger.c
    in_range = lg.occurred_at >= filters.start_ts
    tagged = (select(case((in_range, date_trunc(grain, lg.occurred_at))).label("period_start"), lg.reason, lg.delta)
              .where(lg.occurred_at < filters.end_ts, *_scope(filters)).subquery("ledger_periods"))
    t = tagged.c
    frame = read_frame(bind, select(t.period_start, *_reason_sums(t.reason, t.delta)).group_by(t.period_start))
    numbers = ["earned", "bonus", "redeemed", "expired", "net"]
    frame[numbers] = frame[numbers].astype("int64")
    opening = int(frame.loc[frame["period_start"].isna(), "net"].sum())
    inside = frame[frame["period_start"].notna()].copy()
    inside["period_start"] = pd.to_datetime(inside["period_start"]).dt.normalize()
    out = inside.set_index("period_start")[numbers].reindex(grid, fill_value=0).astype("int64")
    out.index.name = "period_start"
    out = out.reset_index()
    out.insert(3, "issued", out["earned"] + out["bonus"])
    out["liability"] = opening + out["net"].cumsum()
    out["liability_value"] = out["liability"] / points_per_unit
    return out


@dataclass(frozen=True)
class PointsSummary:
    """The range's points in a few figures (see the module docstring)."""

    earned: int
    bonus: int
    redeemed: int
    expired: int
    opening: int  # liability at the start of the range
    liability: int  # at its end
    points_per_unit: int

    @property
    def issued(self) -> int:
        return self.earned + self.bonus

    @property
    def redemption_rate(self) -> float:
        return self.redeemed / self.issued if self.issued else math.nan

    @property
    def breakage_rate(self) -> float:
        return self.expired / self.issued if self.issued else math.nan

    @property
    def liability_value(self) -> float:
        return self.liability / self.points_per_unit


def summarise_points(flows: pd.DataFrame, points_per_unit: int = POINTS_PER_CURRENCY_UNIT) -> PointsSummary:
    """The totals of :func:`points_flows` rows."""
    if flows.empty:
        return PointsSummary(0, 0, 0, 0, 0, 0, points_per_unit)
    first, last = flows.iloc[0], flows.iloc[-1]
    return PointsSummary(int(flows["earned"].sum()), int(flows["bonus"].sum()), int(flows["redeemed"].sum()),
                         int(flows["expired"].sum()), int(first["liability"] - first["net"]), int(last["liability"]),
                         points_per_unit)


def points_by_tier(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Per tier held when the ledger row was written: ``tier, earned, bonus, issued, redeemed, expired,
    redeemers`` (members with a redemption) ``, redemption_rate, breakage_rate``."""
    lg = points_ledger.c
    rows = (select(lg.member_id, lg.occurred_at.label("at"), lg.reason, lg.delta)
            .where(lg.occurred_at >= filters.start_ts, lg.occurred_at < filters.end_ts, *_scope(filters))
            .subquery("range_ledger"))
    joined, tier = tier_when(rows, filters.start_ts, filters.end_ts)
    tagged = select(tier.label("tier"), rows.c.member_id, rows.c.reason, rows.c.delta).select_from(joined).subquery()
    t = tagged.c
    redeemer = case((t.reason == "redeem", t.member_id))
    frame = read_frame(bind, select(t.tier, *_reason_sums(t.reason, t.delta),
                                    func.count(redeemer.distinct()).label("redeemers")).group_by(t.tier))
    numbers = ["earned", "bonus", "redeemed", "expired", "net", "redeemers"]
    frame[numbers] = frame[numbers].astype("int64")
    frame.insert(3, "issued", frame["earned"] + frame["bonus"])
    issued = frame["issued"].where(frame["issued"] > 0)
    frame["redemption_rate"] = frame["redeemed"] / issued
    frame["breakage_rate"] = frame["expired"] / issued
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    frame = frame.sort_values("tier", key=lambda s: s.map(lambda x: order.get(x, 99)), kind="stable")
    return frame.drop(columns="net").reset_index(drop=True)


# ---- points about to expire ----------------------------------------------------------------------------------------

def expiry_day(end: date) -> date:
    """When the points :func:`analytics.tags.expiring_points` counts expire: 31 December of ``end``'s year."""
    return date(end.year, 12, 31)


def check_horizon(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
        raise InputError(_("The expiry horizon is a whole number of days from 1 to 365, not {days}.").format(
            days=repr(days)))
    return days


def expiring_members(filters: Filters, days: int, min_points: int = 1) -> Select:
    """``member_id, points`` of members with at least ``min_points`` expiring within ``days`` of the range's last
    day (none when the next expiry lies further away)."""
    check_horizon(days)
    due = expiring_points(filters.end, min_points, _scope(filters))
    if (expiry_day(filters.end) - filters.end).days > days:
        return due.where(false())
    return due


def expiring_summary(bind: Bind, filters: Filters, points_per_unit: int = POINTS_PER_CURRENCY_UNIT,
                     horizons: tuple[int, ...] = EXPIRY_HORIZONS) -> pd.DataFrame:
    """Per horizon: ``days, expires_on, members, points, value`` (points / points per currency unit). One
    statement: the points due at the next expiry per member, counted once."""
    check_points_per_unit(points_per_unit)
    due = expiring_points(filters.end, 1, _scope(filters)).subquery("points_due")
    row = read_frame(bind, select(func.count().label("members"),
                                  cast(func.coalesce(func.sum(due.c.points), 0), Double).label("points"))).iloc[0]
    gap = (expiry_day(filters.end) - filters.end).days
    rows = [{"days": h, "expires_on": expiry_day(filters.end), "members": int(row["members"]) if gap <= h else 0,
             "points": int(row["points"]) if gap <= h else 0} for h in (check_horizon(h) for h in horizons)]
    frame = pd.DataFrame(rows, columns=["days", "expires_on", "members", "points"])
    frame["value"] = frame["points"] / points_per_unit
    return frame


@audience_kind
@dataclass(frozen=True)
class ExpiringPointsAudience(Audience):
    """Members holding at least ``min_points`` points that expire within ``days`` of the window's last day."""

    kind: ClassVar[str] = "points_expiring"
    label: ClassVar[str] = N_("expiring points")
    keys: ClassVar[frozenset[str]] = frozenset({"start", "end", "tiers", "days", "min_points"})

    window: Filters
    days: int
    min_points: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", replace(self.window, channels=()))  # the ledger has no sales channel
        check_horizon(self.days)
        if isinstance(self.min_points, bool) or not isinstance(self.min_points, int) or not (
                1 <= self.min_points <= 1_000_000_000):
            raise SpecError(_("min_points must be a whole number from 1 to 1,000,000,000, not {value}.").format(
                value=repr(self.min_points)))

    def member_ids(self) -> Select:
        due = expiring_members(self.window, self.days, self.min_points).subquery("expiring")
        return select(due.c.member_id)

    def describe(self) -> str:
        text = (_("Members with at least {points} point expiring on {expiry}, within {days} days of {day}")
                if self.min_points == 1 else
                _("Members with at least {points} points expiring on {expiry}, within {days} days of {day}"))
        return text.format(points=f"{self.min_points:,}", expiry=_day(expiry_day(self.window.end)), days=self.days,
                           day=_day(self.window.end))

    def body(self) -> dict[str, Any]:
        return {**audiences.window_body(self.window, channels=False), "days": self.days,
                "min_points": self.min_points}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> ExpiringPointsAudience:
        return cls(audiences.window(data, channels=False), audiences.whole(data, "days", 1, 365),
                   audiences.whole(data, "min_points", 1, 1_000_000_000) if "min_points" in data else 1)

