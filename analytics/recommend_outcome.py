"""The recommender's A/B test: did members who were sent recommendations buy a recommended item more often than the
holdout, whose members would have been sent the same kind of list?

Definitions (one place; the read-out page shows them as help):

* A campaign uses the stored lists of the version recorded when its recommendation export was made with its
  campaign key (:func:`analytics.storage.recommender_registry.link_campaign`): the version's top ``N`` of every
  member, treatment and control alike (control members are in the stored lists too: every member has one).
* **Bought a recommended item**: the member completed an order in the campaign window (``start_at`` to ``end_at``,
  both included) holding at least one product of their own stored top ``N``.
* **Rate** = such members / members of the arm with a stored list. Members who joined after the version was
  trained have no list and are left out of both arms (counted and shown).
* **Lift**, its 95 % interval and the two-sided two-proportion z-test as in :mod:`analytics.experiments`.

How it is computed: the warehouse is read-only and the lists live outside it, so the lists cannot be joined in SQL
(a temporary table would be a write to the warehouse session). Instead one bounded SQL statement returns the
distinct (member, arm, product) purchases of the campaign's members in the window, and one the members per arm;
both are bounded by the campaign's size. The stored lists of those members are read from the version's files and
matched in pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select

from analytics.errors import InputError
from analytics.experiments import ALPHA, Arm, two_proportion_test
from analytics.i18n import N_, _
from analytics.recommend_store import StoredLists
from analytics.storage.contract import campaign_members, campaigns, order_items, orders
from analytics.storage.db import Bind, connection, read_frame
from analytics.storage.recommender_registry import CampaignLink

#: At most this many campaign members and (member, product) purchases are read.
MAX_CAMPAIGN_MEMBERS = 5_000_000
MAX_PURCHASE_ROWS = 20_000_000
HELP = {
    "recommended_bought": N_("Members of the arm with a stored list who completed an order in the campaign window "
                             "holding at least one product of their own stored top N, / members of the arm with a "
                             "stored list. Control members have stored lists too: what they would have been sent."),
    "lift": N_("Treatment minus control rate, in percentage points, with its 95% interval (two-proportion "
               "z-test)."),
}


class OutcomeError(InputError):
    """A campaign whose recommendation outcome cannot be read (no window, no members, too many rows)."""


@dataclass(frozen=True)
class RecommendationOutcome:
    """Per arm, members with a stored list (``members``) and those who bought a recommended item
    (``conversions``); members without a list per arm; lift, interval and p-value."""

    campaign_id: str
    version: int
    list_length: int
    start: datetime
    end: datetime
    treatment: Arm
    control: Arm
    without_list: dict[str, int]
    lift: float
    lift_ci: tuple[float, float]
    p_value: float

    @property
    def verdict(self) -> str:
        t, c = self.treatment, self.control
        if t.members == 0 or c.members == 0:
            return _("No read-out of recommended items: an arm has no member with a stored list of v{version}.").format(
                version=self.version)
        words = {"n": self.list_length, "version": self.version, "treatment": f"{t.rate:.2%}",
                 "control": f"{c.rate:.2%}", "p": f"{self.p_value:.2g}"}
        if self.p_value < ALPHA:
            return (_("Members sent recommendations bought one of their top {n} recommended items (v{version}) more "
                      "often than the holdout: {treatment} against {control} ({points} points, p = {p}).")
                    if self.lift > 0 else
                    _("Members sent recommendations bought one of their top {n} recommended items (v{version}) less "
                      "often than the holdout: {treatment} against {control} ({points} points, p = {p}).")
                    ).format(points=f"{self.lift * 100:+.2f}", **words)
        return _("No clear effect of the recommendations: {treatment} of treatment and {control} of control bought "
                 "one of their top {n} recommended items (v{version}) (p = {p}, not significant at the 95% "
                 "level).").format(**words)


def campaign_window(bind: Bind, campaign_id: str) -> tuple[datetime, datetime]:
    c = campaigns.c
    with connection(bind) as conn:
        row = conn.execute(select(c.start_at, c.end_at).where(c.campaign_id == campaign_id)).first()
    if row is None:
        raise OutcomeError(f"There is no campaign {campaign_id!r} in the warehouse.")
    if row.start_at is None or row.end_at is None:
        raise OutcomeError(f"Campaign {campaign_id} has no start or end, so its window is unknown.")
    return row.start_at, row.end_at


def campaign_arms(bind: Bind, campaign_id: str) -> pd.DataFrame:
    """``member_id, arm`` of the campaign's members (bounded)."""
    cm = campaign_members.c
    frame = read_frame(bind, select(cm.member_id, cm.arm).where(cm.campaign_id == campaign_id)
                       .order_by(cm.member_id).limit(MAX_CAMPAIGN_MEMBERS + 1))
    if len(frame) > MAX_CAMPAIGN_MEMBERS:
        raise OutcomeError(f"Campaign {campaign_id} has more than {MAX_CAMPAIGN_MEMBERS:,} members.")
    return frame


def window_purchases(bind: Bind, campaign_id: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Distinct ``member_id, product_id`` bought by the campaign's members in completed orders from ``start`` to
    ``end`` (both included): one statement, bounded."""
    cm, o, oi = campaign_members.c, orders.c, order_items.c
    query = (select(o.member_id, oi.product_id).distinct()
             .select_from(campaign_members.join(orders, o.member_id == cm.member_id)
                          .join(order_items, oi.order_id == o.order_id))
             .where(cm.campaign_id == campaign_id, o.status == "completed", o.ordered_at >= start,
                    o.ordered_at <= end)
             .limit(MAX_PURCHASE_ROWS + 1))
    frame = read_frame(bind, query)
    if len(frame) > MAX_PURCHASE_ROWS:
        raise OutcomeError(f"Campaign {campaign_id}'s members bought more than {MAX_PURCHASE_ROWS:,} products in its "
                           "window.")
    return frame


def recommendation_outcome(bind: Bind, link: CampaignLink, lists: StoredLists) -> RecommendationOutcome:
    """The recommended-item outcome of the campaign ``link`` names, per arm (see the module docstring)."""
    if lists.stored.version != link.version:
        raise OutcomeError(f"Campaign {link.campaign_id} used v{link.version}, not {lists.stored.label}.")
    start, end = campaign_window(bind, link.campaign_id)
    with connection(bind) as conn:
        arms = campaign_arms(conn, link.campaign_id)
        bought = window_purchases(conn, link.campaign_id, start, end)
    if arms.empty:
        raise OutcomeError(f"Campaign {link.campaign_id} has no members in the warehouse yet.")
    has_list = lists.member_codes(arms["member_id"].to_numpy(dtype=object)) >= 0
    listed = arms[has_list]
    recommended = lists.pairs(listed["member_id"].to_numpy(dtype=object), link.list_length)
    hits = bought.merge(recommended, on=["member_id", "product_id"], how="inner")["member_id"].unique()
    converted = listed["member_id"].isin(hits)
    per_arm = {}
    for arm in ("treatment", "control"):
        in_arm = (listed["arm"] == arm).to_numpy()
        per_arm[arm] = Arm(int(in_arm.sum()), int(converted[in_arm].sum()), 0.0, 0.0)
    without = {arm: int(((arms["arm"] == arm).to_numpy() & ~has_list).sum()) for arm in ("treatment", "control")}
    t, c = per_arm["treatment"], per_arm["control"]
    if t.members and c.members:
        lift, ci, p = two_proportion_test(t, c)
    else:
        lift, ci, p = math.nan, (math.nan, math.nan), math.nan
    return RecommendationOutcome(link.campaign_id, link.version, link.list_length, start, end, t, c, without,
                                 float(lift), (float(ci[0]), float(ci[1])), float(p))


def outcome_table(result: RecommendationOutcome) -> pd.DataFrame:
    """The outcome as rows like :func:`analytics.experiments.read_out_table`'s: ``metric, treatment, control,
    difference, ci_low, ci_high, p_value``."""
    t, c = result.treatment, result.control
    return pd.DataFrame(dtype=object, data=[
        {"metric": "members_with_list", "treatment": t.members, "control": c.members,
         "difference": t.members - c.members, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan},
        {"metric": "recommended_item_bought", "treatment": t.rate, "control": c.rate, "difference": result.lift,
         "ci_low": result.lift_ci[0], "ci_high": result.lift_ci[1], "p_value": result.p_value},
    ]).astype({"ci_low": "float64", "ci_high": "float64", "p_value": "float64"})
