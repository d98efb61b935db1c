"""Experiment read-out of a past campaign (treatment against its holdout control) and sample-size planning.

Definitions (one place; the app shows them as help):

* **Members** per arm: rows of ``campaign_members`` for the campaign. **Converted**: the row names a
  converted order. **Conversion rate** = converted / members. **Revenue per member** = net amount of the
  converted orders / members (0 for a member who did not convert).
* **Lift** = treatment rate - control rate (percentage points), with a 95% interval from the unpooled
  standard error; **relative lift** = treatment rate / control rate - 1. Its p-value is the two-sided
  **two-proportion z-test** (pooled standard error).
* **Revenue per member difference** with a 95% interval and the two-sided **Welch t-test** (unequal
  variances, Welch-Satterthwaite degrees of freedom), from per-arm counts, sums and sums of squares.
* **Sample-ratio mismatch**: a chi-square test of the arm sizes against the campaign's planned holdout
  share; p < 0.001 means the split itself went wrong and the read-out cannot be trusted.
* **Sample size** per arm for a two-sided test of two proportions (normal approximation).

Per-arm sums come from one SQL aggregation; only those few numbers reach Python (scipy for the
distributions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Double, cast, func, select

from analytics.errors import InputError
from analytics.filters import OPEN_SCOPE, Scope, scope_conditions
from analytics.i18n import N_, _
from analytics.preload import heavy_imports
from analytics.sqlparts import count_if
from analytics.storage.contract import campaign_members, campaigns, members, orders
from analytics.storage.db import Bind, connection, read_frame

ALPHA = 0.05
SRM_ALPHA = 0.001
#: The metrics' help, in English (translated where shown: ``_(METRIC_HELP[name])``).
METRIC_HELP: dict[str, str] = {
    "conversion_rate": N_("Members whose campaign row names a converted order / members of the arm."),
    "revenue_per_member": N_("Net amount of the arm's converted orders / members of the arm."),
    "lift": N_("Treatment minus control conversion rate, in percentage points, with its 95% interval."),
    "p_value": N_("Two-sided: two-proportion z-test for rates, Welch's t-test for revenue per member."),
    "srm": N_("Sample-ratio mismatch: arm sizes against the planned holdout (chi-square); p < 0.001 = broken "
              "split."),
}


class ExperimentError(InputError):
    """A campaign that cannot be read out; the message says why."""


@dataclass(frozen=True)
class Arm:
    members: int
    conversions: int
    revenue: float
    revenue_sq: float  # sum of squared per-member revenue (for the variance)

    @property
    def rate(self) -> float:
        return self.conversions / self.members if self.members else math.nan

    @property
    def revenue_per_member(self) -> float:
        return self.revenue / self.members if self.members else math.nan

    @property
    def revenue_variance(self) -> float:
        """Sample variance of revenue per member."""
        if self.members < 2:
            return math.nan
        return max(self.revenue_sq - self.members * self.revenue_per_member ** 2, 0.0) / (self.members - 1)


@dataclass(frozen=True)
class ReadOut:
    campaign_id: str
    name: str
    type: str
    channel: str
    planned_holdout: float
    treatment: Arm
    control: Arm
    lift: float
    lift_ci: tuple[float, float]
    relative_lift: float
    rate_p_value: float
    revenue_diff: float
    revenue_ci: tuple[float, float]
    revenue_p_value: float
    srm_p_value: float

    @property
    def verdict(self) -> str:
        """The read-out in one plain sentence, in the run's language."""
        if self.srm_p_value < SRM_ALPHA:
            share = self.control.members / (self.control.members + self.treatment.members)
            return _("Do not trust this result: control is {share} of the members against {planned} planned "
                     "(sample-ratio mismatch, p = {p}).").format(share=f"{share:.1%}",
                                                                 planned=f"{self.planned_holdout:.0%}",
                                                                 p=f"{self.srm_p_value:.1g}")
        if self.control.members == 0 or self.treatment.members == 0:
            return _("No read-out: one arm is empty.")
        if self.rate_p_value < ALPHA:
            effect = (_("The campaign raised conversion by {points} points ({treatment} against {control}, p = {p}): "
                        "a real effect at the 95% level.") if self.lift > 0 else
                      _("The campaign lowered conversion by {points} points ({treatment} against {control}, p = {p}): "
                        "a real effect at the 95% level."))
            return effect.format(points=f"{abs(self.lift) * 100:.2f}", treatment=f"{self.treatment.rate:.2%}",
                                 control=f"{self.control.rate:.2%}", p=f"{self.rate_p_value:.2g}")
        return _("No clear effect on conversion: {treatment} against {control} (p = {p}); the 95% interval of the "
                 "lift, {low} to {high} points, includes no change.").format(
            treatment=f"{self.treatment.rate:.2%}", control=f"{self.control.rate:.2%}", p=f"{self.rate_p_value:.2g}",
            low=f"{self.lift_ci[0] * 100:+.2f}", high=f"{self.lift_ci[1] * 100:+.2f}")


def campaign_members_in_scope(scope: Scope) -> list:
    """Campaign members the scope allows (the user's regions and channels, nobody left out)."""
    if scope.is_open:
        return []
    return [campaign_members.c.member_id.in_(select(members.c.member_id).where(*scope_conditions(scope)))]


def campaign_list(bind: Bind, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """Campaigns with members in the warehouse (of those ``scope`` allows), newest first: ``campaign_id, name, type,
    channel, start_at, members``."""
    c, cm = campaigns.c, campaign_members.c
    sizes = (select(cm.campaign_id, func.count().label("members")).where(*campaign_members_in_scope(scope))
             .group_by(cm.campaign_id).subquery("sizes"))
    return read_frame(bind, select(c.campaign_id, c.name, c.type, c.channel, c.start_at, sizes.c.members)
                      .join_from(campaigns, sizes, sizes.c.campaign_id == c.campaign_id)
                      .order_by(c.start_at.desc(), c.campaign_id))


def arm_totals(bind: Bind, campaign_id: str, scope: Scope = OPEN_SCOPE) -> dict[str, Arm]:
    """Members, conversions, revenue and its sum of squares per arm (of the members ``scope`` allows), in one SQL
    aggregation."""
    cm, o = campaign_members.c, orders.c
    revenue = cast(func.coalesce(o.net_amount, 0), Double)
    query = (select(cm.arm, func.count().label("members"), count_if(cm.converted_order_id.is_not(None))
                    .label("conversions"), func.coalesce(func.sum(revenue), 0.0).label("revenue"),
                    func.coalesce(func.sum(revenue * revenue), 0.0).label("revenue_sq"))
             .select_from(campaign_members.outerjoin(orders, o.order_id == cm.converted_order_id))
             .where(cm.campaign_id == campaign_id, *campaign_members_in_scope(scope)).group_by(cm.arm))
    frame = read_frame(bind, query)
    arms = {row.arm: Arm(int(row.members), int(row.conversions), float(row.revenue), float(row.revenue_sq))
            for row in frame.itertuples()}
    return {arm: arms.get(arm, Arm(0, 0, 0.0, 0.0)) for arm in ("treatment", "control")}


def rate_lift(t: Arm, c: Arm) -> float:
    """The conversion lift: treatment's rate less control's (a difference of rates, not a ratio)."""
    return t.rate - c.rate


def revenue_difference(t: Arm, c: Arm) -> float:
    """Revenue per member, treatment's less control's."""
    return t.revenue_per_member - c.revenue_per_member


def two_proportion_test(t: Arm, c: Arm) -> tuple[float, tuple[float, float], float]:
    """Lift (difference of rates), its 95% interval (unpooled) and the two-sided z-test p-value (pooled)."""
    with heavy_imports():
        from scipy import stats  # imported when used: about 1 s, kept off the app's first page
    lift = rate_lift(t, c)
    se = math.sqrt(t.rate * (1 - t.rate) / t.members + c.rate * (1 - c.rate) / c.members)
    z_crit = stats.norm.ppf(1 - ALPHA / 2)
    pooled = (t.conversions + c.conversions) / (t.members + c.members)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / t.members + 1 / c.members))
    p = 2 * stats.norm.sf(abs(lift) / se_pooled) if se_pooled > 0 else 1.0
    return lift, (lift - z_crit * se, lift + z_crit * se), float(p)


def welch_test(t: Arm, c: Arm) -> tuple[float, tuple[float, float], float]:
    """Difference of revenue per member, its 95% interval and the two-sided Welch t-test p-value."""
    with heavy_imports():
        from scipy import stats  # imported when used: about 1 s, kept off the app's first page
    diff = revenue_difference(t, c)
    vt, vc = t.revenue_variance / t.members, c.revenue_variance / c.members
    se = math.sqrt(vt + vc)
    if not se > 0:
        return diff, (diff, diff), 1.0
    df = (vt + vc) ** 2 / (vt ** 2 / (t.members - 1) + vc ** 2 / (c.members - 1))
    t_crit = stats.t.ppf(1 - ALPHA / 2, df)
    return diff, (diff - t_crit * se, diff + t_crit * se), float(2 * stats.t.sf(abs(diff) / se, df))


def srm_p_value(t: Arm, c: Arm, holdout: float) -> float:
    """Chi-square goodness of fit of the arm sizes to the planned holdout share."""
    with heavy_imports():
        from scipy import stats  # imported when used: about 1 s, kept off the app's first page
    n = t.members + c.members
    if n == 0 or not 0 < holdout < 1:
        return 1.0
    return float(stats.chisquare([t.members, c.members], [n * (1 - holdout), n * holdout]).pvalue)


def read_out(bind: Bind, campaign_id: str, scope: Scope = OPEN_SCOPE) -> ReadOut:
    """The read-out of one campaign (see the module docstring), over the campaign's members ``scope`` allows."""
    c = campaigns.c
    with connection(bind) as conn:
        row = conn.execute(select(c.campaign_id, c.name, c.type, c.channel, c.holdout_pct)
                           .where(c.campaign_id == campaign_id)).first()
        if row is None:
            raise ExperimentError(_("There is no campaign {campaign!r}.").format(campaign=campaign_id))
        arms = arm_totals(conn, campaign_id, scope)
    t, ctl = arms["treatment"], arms["control"]
    if t.members == 0 or ctl.members == 0:
        raise ExperimentError(_("Campaign {campaign} has {treatment} treatment and {control} control members: a "
                                "read-out needs both arms.").format(campaign=campaign_id, treatment=f"{t.members:,}",
                                                                    control=f"{ctl.members:,}"))
    return read_out_of(str(row.campaign_id), str(row.name or ""), str(row.type or ""), str(row.channel or ""),
                       float(row.holdout_pct or 0) / 100, t, ctl)


def read_out_of(campaign_id: str, name: str, campaign_type: str, channel: str, holdout: float, t: Arm,
                ctl: Arm) -> ReadOut:
    """The read-out's statistics from the arms' totals (both arms non-empty): what :func:`read_out` shows for one
    campaign, and Campaign results for every campaign of a range from one aggregation."""
    lift, lift_ci, rate_p = two_proportion_test(t, ctl)
    diff, diff_ci, revenue_p = welch_test(t, ctl)
    relative = t.rate / ctl.rate - 1 if ctl.rate > 0 else math.nan
    return ReadOut(campaign_id, name, campaign_type, channel, holdout, t, ctl, lift, lift_ci, relative, rate_p, diff,
                   diff_ci, revenue_p, srm_p_value(t, ctl, holdout))


def read_out_table(result: ReadOut) -> pd.DataFrame:
    """The read-out as rows: ``metric, treatment, control, difference, ci_low, ci_high, p_value``."""
    t, c = result.treatment, result.control
    frame = pd.DataFrame(dtype=object, data=[
        {"metric": "members", "treatment": t.members, "control": c.members, "difference": t.members - c.members,
         "ci_low": math.nan, "ci_high": math.nan, "p_value": result.srm_p_value},
        {"metric": "conversion_rate", "treatment": t.rate, "control": c.rate, "difference": result.lift,
         "ci_low": result.lift_ci[0], "ci_high": result.lift_ci[1], "p_value": result.rate_p_value},
        {"metric": "revenue_per_member", "treatment": t.revenue_per_member, "control": c.revenue_per_member,
         "difference": result.revenue_diff, "ci_low": result.revenue_ci[0], "ci_high": result.revenue_ci[1],
         "p_value": result.revenue_p_value},
    ])
    return frame.astype({"ci_low": "float64", "ci_high": "float64", "p_value": "float64"})  # member counts stay whole


def sample_size_per_arm(baseline: float, mde: float, power: float = 0.8, alpha: float = ALPHA) -> int:
    """Members per arm to detect an absolute change ``mde`` from the ``baseline`` rate with a two-sided test
    at ``alpha`` and the given ``power`` (normal approximation, unpooled variance under the alternative)."""
    with heavy_imports():
        from scipy import stats  # imported when used: about 1 s, kept off the app's first page
    target = baseline + mde
    if not (0 < baseline < 1 and 0 < target < 1 and mde != 0 and 0 < power < 1 and 0 < alpha < 1):
        raise InputError(_("Baseline and baseline + effect must be rates between 0 and 1, the effect not 0, power "
                           "and significance between 0 and 1."))
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    mean = (baseline + target) / 2
    n = (z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(baseline * (1 - baseline) + target * (1 - target))
         ) ** 2 / mde ** 2
    return math.ceil(n)
