"""Executive KPIs: one definition of each, computed in the warehouse, for a period, per value of a
breakdown and per day, week or month.

Every KPI below is defined once, in :data:`KPIS`; the definition text is what the app shows as
help and what README points to. All aggregation runs as SQL (SQLAlchemy Core, portable between
DuckDB, PostgreSQL and Spark SQL); Python receives a handful of aggregate rows and arranges them
(pivots the two periods, takes differences and shares).

**One period at a time, one definition.** Each family of KPIs (orders, registrations, sessions,
points) has one statement builder that computes its KPIs for *one* period, grouped by a dimension
value (the card is the same statement with one constant value for everything). The card, every
breakdown row and every point of a per-period trend come from that builder, so a breakdown row
whose value covers everything would equal the card, and a trend's bucket is the card computed over
that bucket. The two periods compared are two such statements under ``UNION ALL``: each scans only
its own range (faster than one scan of both with conditional sums, measured on 1M members), and any
two periods can be compared (the previous period, or the same period a year earlier).

Periods are whole days: ``start`` and ``end`` are inclusive dates, compared as
``start 00:00 <= timestamp < (end + 1 day) 00:00`` in the shop's local time. The comparison is the
period of equal length that ends the day before ``start`` (``previous``) or the same dates one
year earlier (``year_ago``).

Filters: the channel filter keeps orders of the chosen sales channels; the tier filter keeps
members whose *current* tier is one of those chosen (guests and anonymous visitors drop out). KPIs
that have no sales channel (new members, session conversion, points liability) ignore the channel
filter and say so in their definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    FromClause,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
    union_all,
)

from analytics.campaign_results import DEFAULT_MARGIN, campaign_totals, realised_roi, results_from_totals, roi_trend
from analytics.errors import InputError
from analytics.filters import (
    COMPARISONS,
    Comparison,
    Filters,
    completed_order_conditions,
    member_conditions,
    member_table_conditions,
)
from analytics.i18n import N_, _
from analytics.programme import POINTS_PER_CURRENCY_UNIT
from analytics.sqlparts import GRAINS, Grain, count_if, date_trunc, ratio, sum_if
from analytics.storage.contract import campaigns, events, members, order_items, orders, points_ledger, products
from analytics.storage.db import Bind, connection

Unit = Literal["currency", "count", "ratio", "points"]
Family = Literal["orders", "registrations", "sessions", "points", "campaigns"]
GUEST_LABEL = "guest"
UNKNOWN_LABEL = "unknown"
#: Values of the campaign breakdown for orders without a campaign, and of any breakdown for the values folded
#: together when there are more than :data:`MAX_BREAKDOWN_VALUES`.
NO_CAMPAIGN = "no_campaign"
OTHER_VALUES = "other"
#: Values of the new-vs-returning breakdown.
NEW, RETURNING, NOT_YET_BOUGHT = "new", "returning", "not_yet_bought"
#: How the values a breakdown makes up itself read (the others are warehouse codes or names), marked for the
#: catalog: show with :func:`value_label`.
VALUE_LABELS: dict[str, str] = {GUEST_LABEL: N_("Guest"), UNKNOWN_LABEL: N_("Unknown"), NO_CAMPAIGN: N_("No campaign"),
                                NEW: N_("New"), RETURNING: N_("Returning"), NOT_YET_BOUGHT: N_("Not yet bought")}
#: Most rows a breakdown shows; beyond it the smallest values are folded into :data:`OTHER_VALUES`.
MAX_BREAKDOWN_VALUES = 12
_TOTAL = "(all)"  # the dimension value of a card: one group holding everything

#: How the executive session conversion differs from a funnel's conversion (shown in both places' help; marked for
#: the catalog, translated where shown with ``_()``).
SESSION_CONVERSION_VS_FUNNEL = N_(
    "Not the Funnels page's session conversion: that one counts, among sessions that did the funnel's first step "
    "(by default a product view), those that went on through its steps (add to cart, checkout, purchase) in "
    "order within the conversion window. This KPI divides every session that bought by every session started, "
    "browsing-only sessions included, so it is lower.")
#: The same difference, as the Funnels page says it.
FUNNEL_VS_KPI_CONVERSION = N_(
    "Not the Executive KPIs page's session conversion: that one divides every session with a purchase event by "
    "every session started, browsing-only sessions included (so it is lower). Here the sessions counted are those "
    "that did step 1 in the range, and converted means they went on through every step, in the funnel's order "
    "mode, within the conversion window.")


def _definition_values() -> dict[str, str]:
    """The figures and sentences a KPI's definition text refers to, in the run's language."""
    return {"points": f"{POINTS_PER_CURRENCY_UNIT}", "margin": f"{DEFAULT_MARGIN:.0%}",
            "vs_funnel": _(SESSION_CONVERSION_VS_FUNNEL)}


@dataclass(frozen=True)
class KpiDefinition:
    """One KPI. ``label`` and ``trend`` are English texts marked for the catalog (``N_``): show them with
    ``_(definition.label)`` and :func:`trend_note`. ``about`` is the definition's text as marked, with
    placeholders for figures defined elsewhere (``{points}``, ``{margin}``); :attr:`definition` is that text in the
    run's language with its figures, as the app and the command line show it."""

    key: str
    label: str
    unit: Unit
    about: str
    uses_channel_filter: bool = True
    family: Family = "orders"
    #: The KPI whose volume weighs this one in a mix (orders for the average order value); itself for sums.
    base: str = ""
    #: How each point of the trend is computed (shown under the trend).
    trend: str = ""

    @property
    def definition(self) -> str:
        """What the KPI is, in words, in the run's language."""
        return _(self.about).format(**_definition_values())

    @property
    def is_ratio(self) -> bool:
        return self.unit == "ratio"

    @property
    def additive(self) -> bool:
        """True for sums and counts, whose values over disjoint parts add up (net sales, orders, new members,
        points, and active members over disjoint sets of members); averages and ratios do not."""
        return self.base == self.key

    @property
    def counts_members(self) -> bool:
        """True when the KPI counts distinct members: it adds up only over values that split members."""
        return self.key == "active_members"


#: The words for a trend's buckets (``{grain}`` in the trend texts), and the same capitalised (axis, control).
GRAIN_NAMES: dict[str, str] = {"day": N_("day"), "week": N_("week"), "month": N_("month")}
GRAIN_TITLES: dict[str, str] = {"day": N_("Day"), "week": N_("Week"), "month": N_("Month")}

KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition("net_sales", N_("Net sales (GMV)"), "currency",
                  N_("Sum of the net amount (after discounts, coupons and points) of completed orders placed "
                     "in the period, by members and guests. Cancelled and returned orders are excluded."),
                  base="net_sales", trend=N_("Each point is the KPI computed over that {grain} alone, with the card's "
                                             "definition. The points add up to the card.")),
    KpiDefinition("orders", N_("Orders"), "count", N_("Number of completed orders placed in the period."),
                  base="orders", trend=N_("Each point is the KPI computed over that {grain} alone, with the card's "
                                          "definition. The points add up to the card.")),
    KpiDefinition("aov", N_("Average order value"), "currency",
                  N_("Net sales ÷ orders: the average net amount of a completed order in the period."), base="orders",
                  trend=N_("Each point is the KPI computed over that {grain} alone, with the card's definition (net "
                           "sales ÷ orders of that {grain}); the dotted line is the card's value over the whole "
                           "range.")),
    KpiDefinition("active_members", N_("Active members"), "count",
                  N_("Members with at least one completed order in the period."), base="active_members",
                  trend=N_("Each point is the KPI computed over that {grain} alone, with the card's definition "
                           "(members who ordered in that {grain}): a member active in several {grain}s counts in "
                           "each, so the points add up to more than the card.")),
    KpiDefinition("new_members", N_("New members"), "count",
                  N_("Members who registered in the period. Not affected by the channel filter."),
                  uses_channel_filter=False, family="registrations", base="new_members",
                  trend=N_("Each point is the KPI computed over that {grain} alone, with the card's definition. The "
                           "points add up to the card.")),
    KpiDefinition("repurchase_rate", N_("Repurchase rate"), "ratio",
                  N_("Share of active members who placed two or more completed orders in the period."),
                  base="active_members",
                  trend=N_("Each point is the card's measure over a trailing window as long as the selected range "
                           "({days} days) ending on that {grain}'s last day (the range's last day for the last "
                           "point), so the last point is the card. Repurchase within a single {grain} would be far "
                           "lower: few members order twice in a few days.")),
    KpiDefinition("member_sales_share", N_("Member sales share"), "ratio",
                  N_("Net sales from members' orders ÷ all net sales; the rest comes from guest orders."),
                  base="net_sales",
                  trend=N_("Each point is the KPI computed over that {grain} alone, with the card's definition; the "
                           "dotted line is the card's value over the whole range.")),
    KpiDefinition("session_conversion", N_("Session conversion"), "ratio",
                  N_("Sessions with a purchase ÷ sessions started: distinct sessions with a purchase event in "
                     "the period ÷ session_start events in the period (anonymous sessions included unless a "
                     "tier is chosen). Not affected by the channel filter: the clickstream carries no sales "
                     "channel. {vs_funnel}"),
                  uses_channel_filter=False, family="sessions", base="sessions",
                  trend=N_("Each point is the KPI computed over that {grain} alone, with the card's definition "
                           "(sessions of that {grain}); the dotted line is the card's value over the whole range.")),
    KpiDefinition("points_liability", N_("Points liability"), "points",
                  N_("Points outstanding at the end of the period: everything earned or granted minus what "
                     "was redeemed or expired, from the points ledger ({points} points = 1 "
                     "unit of currency). Not affected by the channel filter."),
                  uses_channel_filter=False, family="points", base="points_liability",
                  trend=N_("Each point is the balance outstanding at the end of that {grain} (the range's last day "
                           "for the last point).")),
    KpiDefinition("points_liability_value", N_("Points liability (money)"), "currency",
                  N_("Points liability at the end of the period in money, at {points} points per "
                     "unit of currency: what the outstanding points would cost if all were redeemed. Not affected by "
                     "the channel filter."),
                  uses_channel_filter=False, family="points", base="points_liability",
                  trend=N_("Each point is the balance outstanding at the end of that {grain}, in money.")),
    KpiDefinition("campaign_roi", N_("Campaign ROI (realised)"), "ratio",
                  N_("Realised return of the campaigns that started in the period, treatment against holdout "
                     "control: (incremental revenue × {margin} margin − coupon cost) ÷ coupon cost, where "
                     "incremental revenue = treatment members × (revenue per treated member − revenue per control "
                     "member) and coupon cost = coupon value × coupons redeemed (see Campaign results). Message costs "
                     "are not in the warehouse and not counted; empty when no coupon was redeemed. Not affected by "
                     "the channel or tier filters (a campaign's channel is its message channel)."),
                  uses_channel_filter=False, family="campaigns", base="campaign_roi",
                  trend=N_("Each point is the realised ROI of the campaigns that started in that {grain}.")),
)
KPI_BY_KEY: dict[str, KpiDefinition] = {k.key: k for k in KPIS}
_FAMILY_KPIS: dict[str, tuple[str, ...]] = {
    "orders": ("net_sales", "orders", "aov", "active_members", "repurchase_rate", "member_sales_share"),
    "registrations": ("new_members",),
    "sessions": ("session_conversion", "sessions"),
    "points": ("points_liability", "points_liability_value"),
}
_PER_MEMBER = {"active_members", "repurchase_rate"}  # order KPIs that need a pass per member


# --- breakdown dimensions ---------------------------------------------------------------------

_ALL_FAMILIES = frozenset({"orders", "registrations", "sessions", "points"})


@dataclass(frozen=True)
class Dimension:
    """What a KPI can be broken down by. ``families`` are the KPI families it applies to (a clickstream event has
    no sales channel); ``partitions`` is False when a row can count in several values (an order with items of
    two categories); ``per_period`` when a member's value depends on the period (new in one, returning in the
    next); ``coded`` when values are codes a page writes as labels (``mini_program``), not names."""

    key: str
    label: str  # marked for the catalog: shown as _(dimension.label)
    description: str  # marked for the catalog: shown as _(dimension.description)
    families: frozenset[str]
    partitions: bool = True
    per_period: bool = False
    coded: bool = True
    of_members: bool = False  # a member has one value (tier, region): distinct members add up across values

    def applies_to(self, kpi: str) -> bool:
        return KPI_BY_KEY[kpi].family in self.families

    def adds_up(self, kpi: str) -> bool:
        """Whether ``kpi``'s values over this breakdown's values add up to the total (so shares of the total
        and contributions to its change make sense)."""
        definition = KPI_BY_KEY[kpi]
        return definition.additive and self.partitions and (self.of_members or not definition.counts_members)


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("channel", N_("Sales channel"), N_("The sales channel of each order. Registrations, sessions and "
                                                 "points have no sales channel."), frozenset({"orders"})),
    Dimension("tier", N_("Member tier"), N_("The member's current tier; guest orders and anonymous sessions have no "
                                            "member and appear as guest."), _ALL_FAMILIES, of_members=True),
    Dimension("region", N_("Region"), N_("The member's region; guest orders and anonymous sessions appear as guest."),
              _ALL_FAMILIES, coded=False, of_members=True),
    Dimension("category", N_("Category"), N_("The product categories of each order's items: an order with items of "
                                             "several categories counts once in each (with its whole amount), so the "
                                             "rows add up to more than the total."),
              frozenset({"orders"}), partitions=False, coded=False),
    Dimension("customer_type", N_("New vs returning"), N_(
        "New: the member's first completed order ever (in any channel) falls in the period; returning: it was before "
        "the period; not yet bought: none by the end of the period (sessions, registrations, points). Each period is "
        "classified on its own, so a member new last period is returning now. Guests appear as guest."),
              _ALL_FAMILIES, per_period=True, of_members=True),
    Dimension("campaign", N_("Campaign"), N_("The campaign each order is attributed to (orders.campaign_id), by name; "
                                             "orders without one appear as no campaign. Registrations, sessions and "
                                             "points have no campaign."),
              frozenset({"orders"}), coded=False),
)
DIMENSION_BY_KEY: dict[str, Dimension] = {d.key: d for d in DIMENSIONS}
BREAKDOWNS: tuple[str, ...] = tuple(DIMENSION_BY_KEY)


def value_label(value: str) -> str | None:
    """A value the breakdowns make up themselves (guest, unknown, no campaign, new, returning, not yet bought) in
    the run's language; None for any other value."""
    known = VALUE_LABELS.get(value)
    return _(known) if known else None


def dimensions_for(kpi: str) -> tuple[str, ...]:
    """The breakdowns that apply to ``kpi``, in :data:`DIMENSIONS` order."""
    _check_kpi(kpi)
    return tuple(d.key for d in DIMENSIONS if d.applies_to(kpi))


@dataclass(frozen=True)
class _Grouping:
    """How one statement groups its rows: by a breakdown (``keep`` folds other values), by a time bucket
    (``grain``), or not at all (the card)."""

    dimension: Dimension | None = None
    keep: tuple[str, ...] | None = None
    grain: Grain | None = None


_CARD = _Grouping()


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class KpiValue:
    definition: KpiDefinition
    current: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        """Absolute change (percentage points ×0.01 for ratios)."""
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def change_pct(self) -> float | None:
        """Relative change against the comparison period; None when the comparison value is zero."""
        if self.change is None or not self.previous:
            return None
        return self.change / abs(self.previous)


@dataclass(frozen=True)
class KpiSummary:
    filters: Filters
    values: tuple[KpiValue, ...]
    comparison: Comparison = "previous"

    def __getitem__(self, key: str) -> KpiValue:
        return next(v for v in self.values if v.definition.key == key)

    @property
    def compared(self) -> Filters:
        """The period the values are compared with."""
        return self.filters.compared(self.comparison)

    @property
    def is_empty(self) -> bool:
        """True when nothing happened in the period: no orders, sessions or registrations."""
        return not any(self[k].current for k in ("orders", "new_members")) and not self._sessions

    @property
    def _sessions(self) -> bool:
        return self["session_conversion"].current is not None

    def to_frame(self) -> pd.DataFrame:
        prev = self.compared
        return pd.DataFrame(
            [{
                "kpi": v.definition.key, "label": v.definition.label, "unit": v.definition.unit,
                "current": v.current, "previous": v.previous, "change": v.change, "change_pct": v.change_pct,
                "start": self.filters.start, "end": self.filters.end,
                "previous_start": prev.start, "previous_end": prev.end,
            } for v in self.values]
        )


@dataclass(frozen=True)
class KpiBreakdown:
    """One KPI per value of a breakdown, for the period and the comparison period.

    ``rows``: ``value`` (the code: a channel, tier, region, category, campaign id, ``new`` ...), ``name`` (a
    campaign's name; else empty), ``current``, ``previous``, ``change`` (absolute; a ratio's in points ×0.01),
    ``change_pct`` (relative), ``base_current`` and ``base_previous`` (the volume that weighs the value: the KPI
    itself for sums, orders for the average order value, active members for repurchase, sessions for conversion,
    net sales for the member share), ``share`` (of the total's base: a value's part of the whole) and
    ``contribution`` (a value's change ÷ the total's comparison value, for sums over values that partition the
    whole: they add up to the total's relative change). Largest ``base_current`` first, ``other`` last.
    ``total`` is the same KPI computed over everything: the card.
    """

    kpi: KpiDefinition
    dimension: Dimension
    filters: Filters
    comparison: Comparison
    rows: pd.DataFrame
    total: KpiValue
    folded: int = 0  # values folded into ``other``
    names: Mapping[str, str] = field(default_factory=dict)


# --- SQL building blocks --------------------------------------------------------------------


def _first_orders() -> FromClause:
    """Each member's first completed order ever (any channel): what makes them new or returning."""
    o = orders.c
    return (select(o.member_id, func.min(o.ordered_at).label("first_at"))
            .where(o.status == "completed", o.member_id.is_not(None))
            .group_by(o.member_id).subquery("first_orders"))


def _order_categories(period: Filters) -> FromClause:
    """The distinct (order, product category) pairs of the period's completed orders."""
    o, i = orders.c, order_items.c
    in_period = select(o.order_id).where(*completed_order_conditions(period, period.start_ts, period.end_ts))
    return (select(i.order_id, func.coalesce(products.c.category, UNKNOWN_LABEL).label("category"))
            .select_from(order_items.outerjoin(products, products.c.product_id == i.product_id))
            .where(i.order_id.in_(in_period)).distinct().subquery("order_categories"))


def _grouped_by(grouping: _Grouping, period: Filters, source: FromClause,
                row: Mapping[str, ColumnElement]) -> tuple[FromClause, ColumnElement]:
    """``source`` with the joins ``grouping`` needs, and each row's group: the dimension's value, the start of
    its time bucket, or one constant for the card. ``row`` names the fact's columns (``member_id``, ``at`` and,
    for orders, ``order_id``, ``channel``, ``campaign_id``)."""
    if grouping.grain is not None:
        return source, date_trunc(grouping.grain, row["at"])
    dimension = grouping.dimension
    if dimension is None:
        return source, literal_column(f"'{_TOTAL}'")
    member = row["member_id"]
    key = dimension.key
    if key == "channel":
        value: ColumnElement = func.coalesce(row["channel"], UNKNOWN_LABEL)
    elif key == "campaign":
        value = func.coalesce(row["campaign_id"], NO_CAMPAIGN)
    elif key in ("tier", "region"):
        m = members.alias("dim_members")
        source = source.outerjoin(m, m.c.member_id == member)
        value = case((member.is_(None), GUEST_LABEL), else_=func.coalesce(m.c[key], UNKNOWN_LABEL))
    elif key == "customer_type":
        first = _first_orders()
        source = source.outerjoin(first, first.c.member_id == member)
        value = case((member.is_(None), GUEST_LABEL),
                     (or_(first.c.first_at.is_(None), first.c.first_at >= period.end_ts), NOT_YET_BOUGHT),
                     (first.c.first_at >= period.start_ts, NEW), else_=RETURNING)
    else:  # category
        lines = _order_categories(period)
        source = source.outerjoin(lines, lines.c.order_id == row["order_id"])
        value = func.coalesce(lines.c.category, UNKNOWN_LABEL)
    if grouping.keep is not None:
        value = case((value.in_(grouping.keep), value), else_=OTHER_VALUES)
    return source, value


def _order_values(period: Filters, grouping: _Grouping, per_member: bool = True) -> Select:
    """Order KPIs of one period per group: ``dim``, ``net_sales``, ``orders``, ``aov``, ``active_members``,
    ``repurchase_rate``, ``member_sales_share`` (the two member KPIs NULL without ``per_member``).

    Guests' orders have no member: they count in sales and orders, never as members. With ``per_member``
    the orders are first grouped per (group, member), which active members and repurchase need.
    """
    o = orders.c
    source, dim = _grouped_by(grouping, period, orders, {"member_id": o.member_id, "at": o.ordered_at,
                                                         "order_id": o.order_id, "channel": o.channel,
                                                         "campaign_id": o.campaign_id})
    facts = (select(dim.label("dim"), o.member_id, o.net_amount).select_from(source)
             .where(*completed_order_conditions(period, period.start_ts, period.end_ts)).subquery("facts"))
    f = facts.c
    if per_member:
        per = (select(f.dim, f.member_id, func.count().label("n"), func.sum(f.net_amount).label("net"))
               .group_by(f.dim, f.member_id).subquery("per_member"))
        p = per.c
        is_member = p.member_id.is_not(None)
        net, n, member_net = func.sum(p.net), func.sum(p.n), func.coalesce(sum_if(is_member, p.net), 0)
        active, repeaters = count_if(is_member), count_if(and_(is_member, p.n >= 2))
        dim_column, table = p.dim, per
    else:
        is_member = f.member_id.is_not(None)
        net, n, member_net = func.sum(f.net_amount), func.count(), func.coalesce(sum_if(is_member, f.net_amount), 0)
        active = repeaters = None
        dim_column, table = f.dim, facts
    return select(
        dim_column.label("dim"),
        cast(net, Double).label("net_sales"),
        cast(n, BigInteger).label("orders"),
        ratio(net, n).label("aov"),
        (cast(active, BigInteger) if active is not None else cast(literal_column("NULL"), BigInteger)
         ).label("active_members"),
        (ratio(repeaters, active) if active is not None else cast(literal_column("NULL"), Double)
         ).label("repurchase_rate"),
        ratio(member_net, net).label("member_sales_share"),
    ).select_from(table).group_by(dim_column)


def _registration_values(period: Filters, grouping: _Grouping) -> Select:
    """New members of one period per group: ``dim``, ``new_members``."""
    m = members.c
    source, dim = _grouped_by(grouping, period, members, {"member_id": m.member_id, "at": m.registered_at})
    conditions = [m.registered_at >= period.start_ts, m.registered_at < period.end_ts]
    conditions += member_table_conditions(period)  # tiers, and the user's scope
    facts = select(dim.label("dim")).select_from(source).where(*conditions).subquery("registrations")
    return select(facts.c.dim, cast(func.count(), BigInteger).label("new_members")).group_by(facts.c.dim)


def _session_values(period: Filters, grouping: _Grouping) -> Select:
    """Sessions started (``session_start`` events) and the conversion rate (distinct sessions with a
    ``purchase`` event ÷ sessions started) of one period per group: ``dim``, ``sessions``,
    ``session_conversion``. Each side reads only its own event type, which the events table's sort key
    keeps together."""

    def counted(event_type: str, distinct_sessions: bool, name: str) -> FromClause:
        e = events.c
        conditions = [e.event_type == event_type, e.occurred_at >= period.start_ts, e.occurred_at < period.end_ts]
        conditions += member_conditions(period, e.member_id)
        source, dim = _grouped_by(grouping, period, events, {"member_id": e.member_id, "at": e.occurred_at})
        facts = select(dim.label("dim"), e.session_id).select_from(source).where(*conditions).subquery(f"{name}_e")
        count = func.count(facts.c.session_id.distinct()) if distinct_sessions else func.count()
        return select(facts.c.dim, cast(count, BigInteger).label("n")).group_by(facts.c.dim).subquery(name)

    started, converted = counted("session_start", False, "started"), counted("purchase", True, "converted")
    return select(
        started.c.dim,
        started.c.n.label("sessions"),
        ratio(func.coalesce(converted.c.n, 0), started.c.n).label("session_conversion"),
    ).select_from(started.outerjoin(converted, converted.c.dim == started.c.dim))


def _points_values(period: Filters, grouping: _Grouping) -> Select:
    """Points outstanding at the end of one period per group: ``dim``, ``points_liability``."""
    lg = points_ledger.c
    conditions = [lg.occurred_at < period.end_ts]
    conditions += member_conditions(period, lg.member_id)
    source, dim = _grouped_by(grouping, period, points_ledger, {"member_id": lg.member_id, "at": lg.occurred_at})
    facts = select(dim.label("dim"), lg.delta).select_from(source).where(*conditions).subquery("ledger")
    return select(facts.c.dim, cast(func.coalesce(func.sum(facts.c.delta), 0), BigInteger).label("points_liability")
                  ).group_by(facts.c.dim)


def _points_both(current: Filters, compared: Filters, grouping: _Grouping) -> Select:
    """Points outstanding at the end of both periods in one scan of the ledger (``points_cur``,
    ``points_prev``), for groups that do not depend on the period."""
    lg = points_ledger.c
    conditions = [lg.occurred_at < max(current.end_ts, compared.end_ts)]
    conditions += member_conditions(current, lg.member_id)
    source, dim = _grouped_by(grouping, current, points_ledger, {"member_id": lg.member_id, "at": lg.occurred_at})
    facts = (select(dim.label("dim"), lg.occurred_at, lg.delta).select_from(source).where(*conditions)
             .subquery("ledger"))
    f = facts.c
    return select(
        f.dim,
        cast(func.coalesce(sum_if(f.occurred_at < current.end_ts, f.delta), 0), BigInteger).label("points_cur"),
        cast(func.coalesce(sum_if(f.occurred_at < compared.end_ts, f.delta), 0), BigInteger).label("points_prev"),
    ).group_by(f.dim)


_BUILDERS: dict[str, Callable[..., Select]] = {
    "orders": _order_values, "registrations": _registration_values, "sessions": _session_values,
    "points": _points_values,
}


def _both_periods(family: str, current: Filters, compared: Filters, grouping: _Grouping, **options: Any) -> Select:
    """The family's statement for the period and the comparison period, ``UNION ALL``, with a ``period`` column
    (``cur`` or ``prev``)."""
    build = _BUILDERS[family]
    parts = []
    for tag, period in (("cur", current), ("prev", compared)):
        statement = build(period, grouping, **options)
        parts.append(statement.add_columns(literal_column(f"'{tag}'").label("period")))
    return union_all(*parts)


def _long_frame(conn: Connection, statement: Select) -> pd.DataFrame:
    result = conn.execute(statement)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _family_frame(conn: Connection, family: str, current: Filters, compared: Filters, grouping: _Grouping,
                  per_member: bool = True) -> pd.DataFrame:
    """One row per (period, group) with the family's KPI columns, as numbers."""
    if family == "points" and not (grouping.dimension is not None and grouping.dimension.per_period):
        wide = _long_frame(conn, _points_both(current, compared, grouping))
        frame = pd.concat([wide[["dim"]].assign(period=tag, points_liability=wide[f"points_{tag}"])
                           for tag in ("cur", "prev")], ignore_index=True)
    else:
        options = {"per_member": per_member} if family == "orders" else {}
        frame = _long_frame(conn, _both_periods(family, current, compared, grouping, **options))
    columns = [c for c in frame.columns if c not in ("dim", "period")]
    frame[columns] = frame[columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    if family == "points":
        frame["points_liability_value"] = frame["points_liability"] / POINTS_PER_CURRENCY_UNIT
    return frame


# --- public API ------------------------------------------------------------------------------

def _check_kpi(kpi: str) -> None:
    if kpi not in KPI_BY_KEY:
        raise InputError(_("Unknown KPI {kpi}; choose one of {choices}.").format(kpi=repr(kpi),
                                                                                 choices=", ".join(KPI_BY_KEY)))


def _check_comparison(comparison: str) -> None:
    if comparison not in COMPARISONS:
        raise InputError(_("Unknown comparison {comparison}; choose previous or year_ago.").format(
            comparison=repr(comparison)))


def kpi_summary(bind: Bind, filters: Filters, comparison: Comparison = "previous") -> KpiSummary:
    """Every executive KPI for the period and the comparison period (``previous``: of equal length, just before;
    ``year_ago``: the same dates a year earlier)."""
    _check_comparison(comparison)
    compared = filters.compared(comparison)
    values: dict[tuple[str, str], float | None] = {}
    with connection(bind) as conn:
        for family in _FAMILY_KPIS:
            frame = _family_frame(conn, family, filters, compared, _CARD)
            for record in frame.to_dict("records"):
                for kpi in _FAMILY_KPIS[family]:
                    values[(kpi, record["period"])] = _number(record[kpi])
        for tag, period in (("cur", filters), ("prev", compared)):
            values[("campaign_roi", tag)] = _campaign_roi(conn, period)
    return KpiSummary(filters, tuple(
        KpiValue(d, _value(values.get((d.key, "cur")), d), _value(values.get((d.key, "prev")), d)) for d in KPIS
    ), comparison)


def _campaign_roi(conn: Connection, period: Filters) -> float | None:
    """Realised ROI of the campaigns that started in ``period`` (default margin, no message cost)."""
    roi = realised_roi(results_from_totals(campaign_totals(conn, period, retention=False), statistics=False))
    return None if np.isnan(roi) else float(roi)


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def _value(value: float | None, definition: KpiDefinition) -> float | None:
    """A KPI's value: sums and counts are zero over an empty period, ratios and averages empty."""
    if value is None:
        return None if definition.unit == "ratio" or definition.key == "aov" else 0.0
    return value


def kpi_breakdown(bind: Bind, filters: Filters, by: str, kpi: str = "net_sales",
                  comparison: Comparison = "previous") -> KpiBreakdown:
    """``kpi`` per value of the breakdown ``by`` (see :data:`DIMENSIONS`), for the period and the comparison
    period, each value computed with the KPI's own definition over that value's orders, registrations,
    sessions or points (see :class:`KpiBreakdown`). At most :data:`MAX_BREAKDOWN_VALUES` rows: beyond that the
    values with the smallest base are folded into ``other``.
    """
    if by not in DIMENSION_BY_KEY:
        raise InputError(_("Unknown breakdown {by}; choose one of {choices}.").format(by=repr(by),
                                                                                      choices=", ".join(BREAKDOWNS)))
    _check_kpi(kpi)
    _check_comparison(comparison)
    definition, dimension = KPI_BY_KEY[kpi], DIMENSION_BY_KEY[by]
    if not dimension.applies_to(kpi):
        usable = ", ".join(_(DIMENSION_BY_KEY[d].label).lower() for d in dimensions_for(kpi))
        if not usable:
            raise InputError(_("{kpi} has no breakdown: it is one figure over the campaigns of the period (see "
                               "Campaign results for each campaign).").format(kpi=_(definition.label)))
        raise InputError(_("{kpi} cannot be broken down by {dimension}: {description} Break it down by {usable}.")
                         .format(kpi=_(definition.label), dimension=_(dimension.label).lower(),
                                 description=_(dimension.description), usable=usable))
    compared = filters.compared(comparison)
    family = definition.family
    per_member = kpi in _PER_MEMBER or definition.base in _PER_MEMBER
    with connection(bind) as conn:
        grouping = _Grouping(dimension)
        frame = _family_frame(conn, family, filters, compared, grouping, per_member)
        values = _pivot(frame, definition)
        folded = 0
        if len(values) > MAX_BREAKDOWN_VALUES:
            keep = _values_to_keep(values)
            folded = len(values) - len(keep)
            frame = _family_frame(conn, family, filters, compared, _Grouping(dimension, keep), per_member)
            values = _pivot(frame, definition)
        totals = _pivot(_family_frame(conn, family, filters, compared, _CARD, per_member), definition)
        names = _campaign_names(conn, [v for v in values["value"] if v not in (NO_CAMPAIGN, OTHER_VALUES)]) \
            if by == "campaign" else {}
    total = totals.iloc[0] if len(totals) else pd.Series({"current": np.nan, "previous": np.nan,
                                                          "base_current": np.nan, "base_previous": np.nan})
    # values with nothing to weigh in either period (guests have orders but no active members) are left out
    rows = _with_changes(values, total, definition, dimension)
    rows.insert(1, "name", [names.get(v, "") for v in rows["value"]])
    total_value = KpiValue(definition, _value(_number(total["current"]), definition),
                           _value(_number(total["previous"]), definition))
    return KpiBreakdown(definition, dimension, filters, comparison, rows, total_value, folded, names)


def _pivot(frame: pd.DataFrame, definition: KpiDefinition) -> pd.DataFrame:
    """The long (period, dim) frame as one row per value: current, previous, base_current, base_previous."""
    columns = {"current": definition.key, "base": definition.base}
    out = pd.DataFrame({"value": pd.Series(sorted(set(frame["dim"].astype(str))), dtype=object)})
    for tag, suffix in (("cur", "current"), ("prev", "previous")):
        part = frame[frame["period"] == tag].set_index(frame.loc[frame["period"] == tag, "dim"].astype(str))
        for name, column in columns.items():
            target = suffix if name == "current" else f"base_{suffix}"
            out[target] = out["value"].map(part[column]).astype("float64")
    return out


def _values_to_keep(values: pd.DataFrame) -> tuple[str, ...]:
    """The values a folded breakdown keeps: guests, unknowns and no campaign always, then the largest by base
    (current, then previous), up to one row short of the maximum (the last row is ``other``)."""
    special = [v for v in values["value"] if v in (GUEST_LABEL, UNKNOWN_LABEL, NO_CAMPAIGN)]
    ranked = values[~values["value"].isin(special)].sort_values(
        ["base_current", "base_previous", "value"], ascending=[False, False, True], na_position="last")
    room = max(MAX_BREAKDOWN_VALUES - 1 - len(special), 1)
    return tuple(special) + tuple(ranked["value"].head(room))


def _with_changes(values: pd.DataFrame, total: pd.Series, definition: KpiDefinition,
                  dimension: Dimension) -> pd.DataFrame:
    """Changes, shares and contributions of each value, largest base first (``other`` last)."""
    out = values.copy()
    sums_or_counts = definition.unit != "ratio" and definition.key != "aov"
    for column in ("current", "previous", "base_current", "base_previous"):
        if sums_or_counts or column.startswith("base"):
            out[column] = out[column].fillna(0.0)  # a value with nothing in one period: zero, not unknown
    out["change"] = out["current"] - out["previous"]
    previous = out["previous"].where(out["previous"] != 0)
    out["change_pct"] = out["change"] / previous.abs()
    base_total = float(total["base_current"]) if pd.notna(total["base_current"]) else np.nan
    out["share"] = out["base_current"] / base_total if base_total else np.nan
    total_previous = float(total["previous"]) if pd.notna(total["previous"]) else np.nan
    if dimension.adds_up(definition.key) and total_previous:
        out["contribution"] = out["change"] / abs(total_previous)
    else:
        out["contribution"] = np.nan
    out = out[(out["base_current"] > 0) | (out["base_previous"] > 0)]  # e.g. guests have no active members
    out["_other"] = out["value"] == OTHER_VALUES
    out = out.sort_values(["_other", "base_current", "base_previous", "value"],
                          ascending=[True, False, False, True], ignore_index=True).drop(columns="_other")
    return out[["value", "current", "previous", "change", "change_pct", "base_current", "base_previous", "share",
                "contribution"]]


def _campaign_names(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    c = campaigns.c
    return {cid: name for cid, name in conn.execute(select(c.campaign_id, c.name).where(c.campaign_id.in_(list(ids))))
            if name}


# --- trends ----------------------------------------------------------------------------------

def kpi_trend(bind: Bind, filters: Filters, kpi: str, grain: Grain = "day") -> pd.DataFrame:
    """One KPI per day, week or month of the period: columns ``period_start``, ``value``, ``days`` (days of the
    range inside the bucket) and ``partial`` (the bucket reaches outside the range, so its value covers only
    part of it; sums look low there).

    Buckets are calendar days, ISO weeks (from Monday) or calendar months. Every bucket is present: counts and
    sums are zero where nothing happened, ratios and averages empty. How each point is computed is the KPI's
    ``trend`` text: the card's definition over the bucket, except repurchase (a trailing window as long as the
    range, see :func:`_trailing_repurchase`) and points liability (the balance at the bucket's end).
    """
    _check_kpi(kpi)
    if grain not in GRAINS:
        raise InputError(_("Unknown grain {grain}; choose day, week or month.").format(grain=repr(grain)))
    grid = _all_buckets(filters, grain)
    with connection(bind) as conn:
        if kpi in ("points_liability", "points_liability_value"):
            scale = 1 if kpi == "points_liability" else POINTS_PER_CURRENCY_UNIT
            values = {k: v / scale for k, v in conn.execute(_liability_trend(filters, grain)).all()}
        elif kpi == "campaign_roi":
            trend = roi_trend(results_from_totals(campaign_totals(conn, filters, retention=False)), filters, grain)
            values = dict(zip(trend["period_start"], trend["roi"], strict=True))
        elif kpi == "repurchase_rate":
            values = _trailing_repurchase(conn, filters, grain, grid)
        else:
            definition = KPI_BY_KEY[kpi]
            options = {"per_member": kpi in _PER_MEMBER} if definition.family == "orders" else {}
            statement = _BUILDERS[definition.family](filters, _Grouping(grain=grain), **options)
            frame = _long_frame(conn, statement)
            values = dict(zip(frame["dim"], frame[kpi], strict=True))
    series = pd.Series({pd.Timestamp(k).normalize(): (float("nan") if v is None else float(v))
                        for k, v in values.items()}, dtype="float64").sort_index()
    if kpi in ("points_liability", "points_liability_value"):
        # the balance in force in a bucket without ledger rows is that of the latest bucket before it
        aligned = series.reindex(series.index.union(grid)).ffill().reindex(grid).fillna(0.0)
    else:
        aligned = series.reindex(grid)
        if KPI_BY_KEY[kpi].unit != "ratio" and kpi != "aov":
            aligned = aligned.fillna(0.0)
    days, full = _bucket_days(filters, grain, grid)
    # a bucket the range covers only in part holds part of a sum and few orders of a ratio; a trailing window
    # and a balance are whole at every point
    whole = ("repurchase_rate", "points_liability", "points_liability_value")
    partial = days < full if kpi not in whole else np.zeros(len(grid), dtype=bool)
    return pd.DataFrame({"period_start": grid, "value": aligned.to_numpy(), "days": days, "partial": partial})


def _bucket_days(filters: Filters, grain: Grain, grid: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Days of the range in each bucket, and days in the whole bucket."""
    starts = grid
    ends = _bucket_ends(grid, grain)  # exclusive
    first, after = pd.Timestamp(filters.start), pd.Timestamp(filters.end) + pd.Timedelta(days=1)
    inside = (np.minimum(ends, after) - np.maximum(starts, first)).days
    return np.asarray(inside, dtype="int64"), np.asarray((ends - starts).days, dtype="int64")


def _bucket_ends(grid: pd.DatetimeIndex, grain: Grain) -> pd.DatetimeIndex:
    if grain == "day":
        return grid + pd.Timedelta(days=1)
    if grain == "week":
        return grid + pd.Timedelta(days=7)
    return grid + pd.offsets.MonthBegin(1)


def _epoch_day(column: ColumnElement, origin: date) -> ColumnElement:
    """Whole days from ``origin`` to the day of ``column``: the difference of two epochs, the one date
    arithmetic DuckDB, PostgreSQL and Spark agree on."""
    seconds = cast(extract("epoch", column), Double) - float(pd.Timestamp(origin).timestamp())
    return cast(func.floor(seconds / 86_400.0), BigInteger)


def _trailing_repurchase(conn: Connection, filters: Filters, grain: Grain,
                         grid: pd.DatetimeIndex) -> dict[pd.Timestamp, float | None]:
    """The repurchase rate over a trailing window of the range's length (N days) ending on each bucket's last
    day (the range's last day at most): the card's measure at every point, so the last point is the card.

    A member has k or more orders in the window ending on day d exactly when, for some i, their i-th and
    (i+k-1)-th orders (by time) fall in [d-N+1, d], i.e. d lies in [day(t[i+k-1]), day(t[i]) + N - 1]. These
    intervals rise with i, so each is cut to start after the previous one ends and they never overlap; the
    warehouse returns, per day, how many pieces start and end (+1 and -1), and a running sum at each bucket end
    counts the members with one or more (active) and two or more (repeaters) orders. One sort of the members'
    orders, no row per member and day.
    """
    n_days = filters.days
    point_days = [min(d, pd.Timestamp(filters.end)) for d in _bucket_ends(grid, grain) - pd.Timedelta(days=1)]
    origin = (point_days[0] - pd.Timedelta(days=n_days - 1)).date()
    window = replace(filters, start=origin)
    o = orders.c
    facts = (select(o.member_id, _epoch_day(o.ordered_at, origin).label("t"), o.ordered_at, o.order_id)
             .where(*completed_order_conditions(window, window.start_ts, window.end_ts), o.member_id.is_not(None))
             .subquery("member_orders"))
    f = facts.c
    order = (f.ordered_at, f.order_id)
    sequenced = select(
        f.t,
        func.lag(f.t).over(partition_by=f.member_id, order_by=order).label("t_prev"),
        func.lead(f.t).over(partition_by=f.member_id, order_by=order).label("t_next"),
    ).subquery("sequenced")
    s = sequenced.c
    ends = s.t + (n_days - 1)
    # k = 1: [t_i, t_i + N - 1] cut to start after t_(i-1) + N - 1
    active_start = case((s.t_prev.is_(None), s.t), (s.t_prev + n_days > s.t, s.t_prev + n_days), else_=s.t)
    # k = 2: [t_(i+1), t_i + N - 1] cut to start after t_(i-1) + N - 1
    repeat_start = case((s.t_prev.is_(None), s.t_next), (s.t_prev + n_days > s.t_next, s.t_prev + n_days),
                        else_=s.t_next)
    pieces = select(active_start.label("a_start"), ends.label("a_end"), repeat_start.label("r_start"),
                    ends.label("r_end")).select_from(sequenced).subquery("pieces")
    p = pieces.c
    deltas = union_all(
        select(p.a_start.label("day"), literal_column("1").label("active"), literal_column("0").label("repeat"))
        .where(p.a_start <= p.a_end),
        select((p.a_end + 1).label("day"), literal_column("-1"), literal_column("0")).where(p.a_start <= p.a_end),
        select(p.r_start.label("day"), literal_column("0"), literal_column("1"))
        .where(p.r_start.is_not(None), p.r_start <= p.r_end),
        select((p.r_end + 1).label("day"), literal_column("0"), literal_column("-1"))
        .where(p.r_start.is_not(None), p.r_start <= p.r_end),
    ).subquery("deltas")
    d = deltas.c
    per_day = select(d.day, func.sum(d.active).label("active"), func.sum(d.repeat).label("repeat")).group_by(d.day)
    changes = _long_frame(conn, per_day)
    changes = changes.astype({"day": "int64", "active": "int64", "repeat": "int64"}).sort_values("day")
    running = changes.set_index("day")[["active", "repeat"]].cumsum()
    values: dict[pd.Timestamp, float | None] = {}
    for bucket, point in zip(grid, point_days, strict=True):
        index = (point - pd.Timestamp(origin)).days
        at = running[running.index <= index]
        active, repeat = (int(at["active"].iloc[-1]), int(at["repeat"].iloc[-1])) if len(at) else (0, 0)
        values[bucket] = repeat / active if active else None
    return values


def _liability_trend(filters: Filters, grain: Grain) -> Select:
    """Outstanding points at the end of each bucket with ledger rows, up to the end of the period:
    a running sum of the ledger by bucket, from the first entry (so earlier buckets give the
    opening balance)."""
    lg = points_ledger.c
    conditions = [lg.occurred_at < filters.end_ts]
    conditions += member_conditions(filters, lg.member_id)
    base = select(date_trunc(grain, lg.occurred_at).label("dim"), lg.delta).where(*conditions).subquery("base")
    per_bucket = select(base.c.dim, func.sum(base.c.delta).label("delta")).group_by(base.c.dim).subquery("per_bucket")
    return select(
        per_bucket.c.dim,
        cast(func.sum(per_bucket.c.delta).over(order_by=per_bucket.c.dim), BigInteger).label("points"),
    )


def _all_buckets(filters: Filters, grain: Grain) -> pd.DatetimeIndex:
    start = pd.Timestamp(filters.start)
    if grain == "week":
        start = start - pd.Timedelta(days=start.weekday())
        return pd.date_range(start, pd.Timestamp(filters.end), freq="7D")
    if grain == "month":
        return pd.date_range(start.replace(day=1), pd.Timestamp(filters.end), freq="MS")
    return pd.date_range(start, pd.Timestamp(filters.end), freq="D")


def trend_note(kpi: str, grain: Grain, filters: Filters) -> str:
    """How each point of ``kpi``'s trend is computed, in words (the KPI's ``trend`` text for this grain)."""
    _check_kpi(kpi)
    return _(KPI_BY_KEY[kpi].trend).format(grain=_(GRAIN_NAMES[grain]), days=filters.days)


def comparison_coverage(filters: Filters, comparison: Comparison, first_day: date) -> int:
    """Days of the comparison period that fall before ``first_day`` (the first day with data): zero when the
    comparison is fully covered by data."""
    compared = filters.compared(comparison)
    return max(0, min((first_day - compared.start).days, compared.days))

