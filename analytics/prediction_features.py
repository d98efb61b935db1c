"""Predictions, part one: what each member looked like on a cutoff day, and what they did afterwards.

Definitions (one place; the Predictions page shows them as help):

* **Who is scored** on a cutoff day ``c``: members registered by the end of ``c`` with at least one completed
  order up to it (an order history).
* **Features** describe a member as of the end of ``c``, from one SQL statement over the orders, the members,
  their tier history, points ledger and sessions; nothing after ``c`` is read (so a model tested on a later
  cutoff never sees its future). Every feature is defined for every scored member (no missing values), so the
  models compile to plain SQL arithmetic. See :data:`FEATURES` for each one's definition.
* **Labels** look at the horizon after ``c``: **churn** = no completed order in ``(c, c + 90 days]`` (the horizon
  is configurable); **purchase propensity** = a completed order in ``(c, c + 30 days]``.

The statement reads orders once (aggregated by member), the ledger and the tier changes up to ``c`` once each,
and the ``session_start`` events of the 90 days before ``c`` (events are stored by type and time, so only those
blocks are read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Double, Integer, Select, and_, case, cast, func, literal, or_, select

from analytics.errors import InputError
from analytics.i18n import N_
from analytics.sqlparts import count_if, ratio, sum_if
from analytics.storage.contract import TIERS, events, members, orders, points_ledger, tier_changes
from analytics.storage.db import Bind, read_frame_columnar

#: Churn: no completed order in this many days after the cutoff (the default horizon).
CHURN_HORIZON_DAYS = 90
#: Purchase propensity: a completed order within this many days after the cutoff.
PROPENSITY_HORIZON_DAYS = 30
#: The gap assumed for a member with a single order (the median gap of repeat buyers on the demo is ~60 days;
#: a year says "no habit yet" without making one-order members look like regulars).
SINGLE_ORDER_GAP_DAYS = 365.0


@dataclass(frozen=True)
class FeatureDef:
    name: str
    label: str
    help: str


FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("recency_days", N_("Days since the last order"),
               N_("Days from the last completed order to the cutoff.")),
    FeatureDef("tenure_days", N_("Days as a member"), N_("Days from registration to the cutoff.")),
    FeatureDef("orders_all", N_("Orders, all time"), N_("Completed orders up to the cutoff.")),
    FeatureDef("orders_365", N_("Orders, last 365 days"),
               N_("Completed orders in the 365 days ending on the cutoff.")),
    FeatureDef("orders_90", N_("Orders, last 90 days"), N_("Completed orders in the 90 days ending on the cutoff.")),
    FeatureDef("orders_30", N_("Orders, last 30 days"), N_("Completed orders in the 30 days ending on the cutoff.")),
    FeatureDef("net_365", N_("Net sales, last 365 days"),
               N_("Net sales of completed orders in the 365 days ending on the cutoff.")),
    FeatureDef("aov_all", N_("Average order value"), N_("Net sales / completed orders, all time.")),
    FeatureDef("gap_days", N_("Usual days between orders"),  # 365: SINGLE_ORDER_GAP_DAYS
               N_("Days from the first to the last order / (orders - 1); 365 for a member with one order.")),
    FeatureDef("overdue", N_("Overdue ratio"), N_("Days since the last order / usual days between orders: above 1, "
                                                  "the next order is later than usual.")),
    FeatureDef("discount_share", N_("Discount share"),
               N_("Discounts / gross value of completed orders, last 365 days (0 without orders).")),
    FeatureDef("app_share", N_("App share"), N_("Share of the last 365 days' completed orders placed in the app.")),
    FeatureDef("tier_rank", N_("Tier"),
               N_("Tier on the cutoff (from the tier history): 0 basic, 1 silver, 2 gold, 3 diamond.")),
    FeatureDef("points_balance", N_("Points balance"),
               N_("Points held at the end of the cutoff (the ledger's sum).")),
    FeatureDef("sessions_90", N_("Sessions, last 90 days"),
               N_("App and web sessions started in the 90 days ending on the cutoff (engagement).")),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_BY_NAME: dict[str, FeatureDef] = {f.name: f for f in FEATURES}


def _end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time())


def _days_between(later, earlier) -> object:
    """Days (with fractions) from ``earlier`` to ``later`` (columns, or a timestamp bound as a parameter), as a
    double."""
    later = literal(later) if isinstance(later, datetime) else later
    seconds = cast(func.extract("epoch", later), Double) - cast(func.extract("epoch", earlier), Double)
    return seconds / 86_400.0  # the difference of two epochs: an interval's epoch is not portable (Spark)


def feature_select(cutoff: date, within: Any = None) -> Select:
    """One row per scored member on ``cutoff``: ``member_id`` and every feature of :data:`FEATURES` (doubles).
    ``within``: a one-column ``member_id`` CTE to compute only those members' features (every table is read for
    them alone)."""
    return _feature_statement([cutoff], within=within)


def _feature_statement(cutoffs: Sequence[date], horizon_days: int | None = None, within: Any = None) -> Select:
    """One row per member scored on at least one of ``cutoffs``. With one cutoff and no horizon: ``member_id`` and
    the features (what :func:`feature_select` gives). Otherwise, for each cutoff ``k`` (its position): ``scored_k``
    (1 when the member is scored on it), each feature as ``{name}_k`` and, with a horizon, ``ordered_k``: orders,
    the points ledger and the sessions are each read and grouped by member once for all the cutoffs."""
    plain = len(cutoffs) == 1 and horizon_days is None
    ends = [_end(c) for c in cutoffs]
    stops = [_end(c + timedelta(days=horizon_days)) for c in cutoffs] if horizon_days is not None else ends
    o = orders.c
    done = and_(o.status == "completed", o.member_id.is_not(None), o.ordered_at < max(stops))

    def kept(column):  # the members to compute, when not all
        return [] if within is None else [column.in_(select(within.c.member_id))]

    done = and_(done, *kept(o.member_id))

    def name(feature: str, k: int) -> str:
        return feature if plain else f"{feature}_{k}"

    def money(column):
        return cast(column, Double)  # doubles add up faster than decimals, and every feature is a double anyway

    aggregates = []
    for k, end in enumerate(ends):
        before = None if plain else o.ordered_at < end

        def when(condition, before=before):
            return condition if before is None else and_(before, condition) if condition is not None else before

        def since(days: int, end=end):
            return o.ordered_at >= end - timedelta(days=days)

        everything = when(None)
        aggregates += [
            (func.count() if everything is None else count_if(everything)).label(name("orders_all", k)),
            func.min(o.ordered_at if everything is None else case((everything, o.ordered_at))).label(
                name("first_at", k)),
            func.max(o.ordered_at if everything is None else case((everything, o.ordered_at))).label(
                name("last_at", k)),
            func.sum(money(o.net_amount) if everything is None else case((everything, money(o.net_amount)))).label(
                name("net_all", k)),
            count_if(when(since(365))).label(name("orders_365", k)),
            count_if(when(since(90))).label(name("orders_90", k)),
            count_if(when(since(30))).label(name("orders_30", k)),
            func.coalesce(sum_if(when(since(365)), money(o.net_amount)), 0).label(name("net_365", k)),
            func.coalesce(sum_if(when(since(365)), money(o.discount_amount)), 0).label(name("discount_365", k)),
            func.coalesce(sum_if(when(since(365)), money(o.gross_amount)), 0).label(name("gross_365", k)),
            count_if(when(and_(since(365), o.channel == "app"))).label(name("app_365", k)),
        ]
        if horizon_days is not None:
            aggregates.append(count_if(and_(o.ordered_at >= end, o.ordered_at < stops[k])).label(f"ordered_{k}"))
    per = select(o.member_id, *aggregates).where(done).group_by(o.member_id).subquery("per")
    lc = points_ledger.c
    points = (select(lc.member_id, *(func.sum(lc.delta if plain else case((lc.occurred_at < end, lc.delta)))
                                     .label(name("balance", k)) for k, end in enumerate(ends)))
              .where(lc.occurred_at < max(ends), *kept(lc.member_id)).group_by(lc.member_id).subquery("points"))
    m = members.c
    source = members.join(per, per.c.member_id == m.member_id).outerjoin(points, points.c.member_id == m.member_id)
    columns: list = [m.member_id]
    scored = []
    for k, end in enumerate(ends):
        tc = tier_changes.c
        ranked = (select(tc.member_id, tc.to_tier,
                         func.row_number().over(partition_by=tc.member_id,
                                                order_by=tc.changed_at.desc()).label("n"))
                  .where(tc.changed_at < end, *kept(tc.member_id)).subquery(f"ranked_{k}"))
        tiers = (select(ranked.c.member_id, ranked.c.to_tier.label("tier")).where(ranked.c.n == 1)
                 .subquery(f"tiers_{k}"))
        ec = events.c
        sessions = (select(ec.member_id, func.count().label("sessions"))
                    .where(ec.event_type == "session_start", ec.member_id.is_not(None), ec.occurred_at < end,
                           ec.occurred_at >= end - timedelta(days=90), *kept(ec.member_id))
                    .group_by(ec.member_id).subquery(f"sessions_{k}"))
        source = (source.outerjoin(tiers, tiers.c.member_id == m.member_id)
                  .outerjoin(sessions, sessions.c.member_id == m.member_id))
        p = {c: per.c[name(c, k)] for c in ("orders_all", "first_at", "last_at", "net_all", "orders_365",
                                            "orders_90", "orders_30", "net_365", "discount_365", "gross_365",
                                            "app_365")}
        recency = _days_between(end, p["last_at"])
        span = _days_between(p["last_at"], p["first_at"])
        gap = case((p["orders_all"] > 1, span / cast(p["orders_all"] - 1, Double)),
                   else_=literal(SINGLE_ORDER_GAP_DAYS, Double))
        tier_rank = case(*((tiers.c.tier == t, i) for i, t in enumerate(TIERS)), else_=0)
        features = {
            "recency_days": recency,
            "tenure_days": _days_between(end, m.registered_at),
            "orders_all": cast(p["orders_all"], Double),
            "orders_365": cast(p["orders_365"], Double),
            "orders_90": cast(p["orders_90"], Double),
            "orders_30": cast(p["orders_30"], Double),
            "net_365": cast(p["net_365"], Double),
            "aov_all": ratio(p["net_all"], p["orders_all"]),
            "gap_days": gap,
            "overdue": recency / func.greatest(gap, 1.0),
            "discount_share": case((p["gross_365"] > 0, cast(p["discount_365"], Double)
                                    / cast(p["gross_365"], Double)), else_=0.0),
            "app_share": case((p["orders_365"] > 0, cast(p["app_365"], Double) / cast(p["orders_365"], Double)),
                              else_=0.0),
            "tier_rank": cast(tier_rank, Double),
            "points_balance": cast(func.coalesce(points.c[name("balance", k)], 0), Double),
            "sessions_90": cast(func.coalesce(sessions.c.sessions, 0), Double),
        }
        in_k = and_(m.registered_at < end, p["orders_all"] > 0)
        scored.append(in_k)
        if not plain:
            columns.append(case((in_k, 1), else_=0).label(f"scored_{k}"))
            if horizon_days is not None:
                columns.append(case((per.c[f"ordered_{k}"] > 0, 1), else_=0).label(f"ordered_{k}"))
        columns += [features[f].label(name(f, k)) for f in FEATURE_NAMES]
    return select(*columns).select_from(source).where(or_(*scored) if len(scored) > 1 else scored[0])


def label_select(cutoff: date, horizon_days: int) -> Select:
    """``member_id``, ``ordered`` (1 when the member placed a completed order in ``(cutoff, cutoff + horizon]``)."""
    if not 1 <= horizon_days <= 366:
        raise InputError(f"The horizon is 1 to 366 days, not {horizon_days}.")
    start, stop = _end(cutoff), _end(cutoff + timedelta(days=horizon_days))
    o = orders.c
    return (select(o.member_id, literal(1, Integer).label("ordered"))
            .where(o.status == "completed", o.member_id.is_not(None), o.ordered_at >= start, o.ordered_at < stop)
            .group_by(o.member_id))


def features_and_labels(bind: Bind, cutoff: date, horizon_days: int | None = None) -> pd.DataFrame:
    """The feature rows on ``cutoff``, ordered by member id, with ``ordered`` (0 / 1: a completed order in the
    horizon after it) when ``horizon_days`` is given."""
    return features_and_labels_at(bind, [cutoff], horizon_days)[0]


def features_and_labels_at(bind: Bind, cutoffs: Sequence[date], horizon_days: int | None = None
                           ) -> list[pd.DataFrame]:
    """:func:`features_and_labels` for each of ``cutoffs``, one SQL statement each.

    (One statement can take several cutoffs, each one's aggregates as conditional columns, reading the tables once;
    but it holds every cutoff's aggregates at once: at 1M members two cutoffs took 4.6 s and peaked at 2.7 GiB,
    one after the other 3.6 s and 1.4 GiB, and only the latter fits DuckDB in 1GB. On PostgreSQL at 50,000 members
    the two ways took the same time.)"""
    if horizon_days is not None and not 1 <= horizon_days <= 366:
        raise InputError(f"The horizon is 1 to 366 days, not {horizon_days}.")
    if len(cutoffs) > 1:
        return [features_and_labels_at(bind, [cutoff], horizon_days)[0] for cutoff in cutoffs]
    if len(cutoffs) == 1 and horizon_days is None:
        statement = _feature_statement(cutoffs).subquery("features")
        wide = read_frame_columnar(bind, select(statement).order_by(statement.c.member_id))
        frames = [wide]
    else:
        statement = _feature_statement(cutoffs, horizon_days).subquery("features")
        wide = read_frame_columnar(bind, select(statement).order_by(statement.c.member_id))
        frames = []
        for k in range(len(cutoffs)):
            names = [*FEATURE_NAMES, "ordered"] if horizon_days is not None else list(FEATURE_NAMES)
            rows = wide[pd.to_numeric(wide[f"scored_{k}"]) == 1]
            frame = rows[["member_id", *(f"{n}_{k}" for n in names)]]
            frames.append(frame.set_axis(["member_id", *names], axis=1))
    out = []
    for frame in frames:
        frame = frame.copy()
        for name in FEATURE_NAMES:
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
        if horizon_days is not None:
            frame["ordered"] = pd.to_numeric(frame["ordered"]).astype("int64")
        out.append(frame.reset_index(drop=True))
    return out
