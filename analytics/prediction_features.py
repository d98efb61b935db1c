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

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import Double, Integer, Select, and_, case, cast, func, literal, select

from analytics.errors import InputError
from analytics.i18n import N_
from analytics.sqlparts import count_if, sum_if
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


def feature_select(cutoff: date) -> Select:
    """One row per scored member on ``cutoff``: ``member_id`` and every feature of :data:`FEATURES` (doubles)."""
    end = _end(cutoff)
    o = orders.c
    done = and_(o.status == "completed", o.member_id.is_not(None), o.ordered_at < end)

    def since(days: int):
        return o.ordered_at >= end - timedelta(days=days)

    per = (select(o.member_id,
                  func.count().label("orders_all"), func.min(o.ordered_at).label("first_at"),
                  func.max(o.ordered_at).label("last_at"), func.sum(o.net_amount).label("net_all"),
                  count_if(since(365)).label("orders_365"), count_if(since(90)).label("orders_90"),
                  count_if(since(30)).label("orders_30"),
                  func.coalesce(sum_if(since(365), o.net_amount), 0).label("net_365"),
                  func.coalesce(sum_if(since(365), o.discount_amount), 0).label("discount_365"),
                  func.coalesce(sum_if(since(365), o.gross_amount), 0).label("gross_365"),
                  count_if(and_(since(365), o.channel == "app")).label("app_365"))
           .where(done).group_by(o.member_id).subquery("per"))
    tc = tier_changes.c
    ranked = (select(tc.member_id, tc.to_tier,
                     func.row_number().over(partition_by=tc.member_id,
                                            order_by=tc.changed_at.desc()).label("n"))
              .where(tc.changed_at < end).subquery("ranked"))
    tiers = select(ranked.c.member_id, ranked.c.to_tier.label("tier")).where(ranked.c.n == 1).subquery("tiers")
    lc = points_ledger.c
    points = (select(lc.member_id, func.sum(lc.delta).label("balance")).where(lc.occurred_at < end)
              .group_by(lc.member_id).subquery("points"))
    ec = events.c
    sessions = (select(ec.member_id, func.count().label("sessions"))
                .where(ec.event_type == "session_start", ec.member_id.is_not(None), ec.occurred_at < end,
                       ec.occurred_at >= end - timedelta(days=90))
                .group_by(ec.member_id).subquery("sessions"))
    m = members.c
    recency = _days_between(end, per.c.last_at)
    span = _days_between(per.c.last_at, per.c.first_at)
    gap = case((per.c.orders_all > 1, span / cast(per.c.orders_all - 1, Double)),
               else_=literal(SINGLE_ORDER_GAP_DAYS, Double))
    tier_rank = case(*((tiers.c.tier == t, i) for i, t in enumerate(TIERS)), else_=0)
    columns = [
        m.member_id,
        recency.label("recency_days"),
        _days_between(end, m.registered_at).label("tenure_days"),
        cast(per.c.orders_all, Double).label("orders_all"),
        cast(per.c.orders_365, Double).label("orders_365"),
        cast(per.c.orders_90, Double).label("orders_90"),
        cast(per.c.orders_30, Double).label("orders_30"),
        cast(per.c.net_365, Double).label("net_365"),
        (cast(per.c.net_all, Double) / cast(per.c.orders_all, Double)).label("aov_all"),
        gap.label("gap_days"),
        (recency / func.greatest(gap, 1.0)).label("overdue"),
        case((per.c.gross_365 > 0, cast(per.c.discount_365, Double) / cast(per.c.gross_365, Double)),
             else_=0.0).label("discount_share"),
        case((per.c.orders_365 > 0, cast(per.c.app_365, Double) / cast(per.c.orders_365, Double)),
             else_=0.0).label("app_share"),
        cast(tier_rank, Double).label("tier_rank"),
        cast(func.coalesce(points.c.balance, 0), Double).label("points_balance"),
        cast(func.coalesce(sessions.c.sessions, 0), Double).label("sessions_90"),
    ]
    return (select(*columns)
            .select_from(members.join(per, per.c.member_id == m.member_id)
                         .outerjoin(tiers, tiers.c.member_id == m.member_id)
                         .outerjoin(points, points.c.member_id == m.member_id)
                         .outerjoin(sessions, sessions.c.member_id == m.member_id))
            .where(m.registered_at < end))


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
    features = feature_select(cutoff).subquery("features")
    if horizon_days is None:
        query = select(features).order_by(features.c.member_id)
    else:
        labels = label_select(cutoff, horizon_days).subquery("labels")
        query = (select(features, func.coalesce(labels.c.ordered, 0).label("ordered"))
                 .select_from(features.outerjoin(labels, labels.c.member_id == features.c.member_id))
                 .order_by(features.c.member_id))
    frame = read_frame_columnar(bind, query)
    for name in FEATURE_NAMES:
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    if horizon_days is not None:
        frame["ordered"] = pd.to_numeric(frame["ordered"]).astype("int64")
    return frame.reset_index(drop=True)
