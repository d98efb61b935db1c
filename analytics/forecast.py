"""Campaign forecast: what a planned campaign of one type on one channel should bring, learned from the past
campaigns of the same type and channel (their treatment arms against their holdout controls).

Definitions (one place; the app shows them as help):

* **History**: every campaign of the chosen type and channel (started before the chosen day, when one is
  given). Only campaigns whose treatment and control arms both have members are **used**; the others are
  listed but carry no information about the effect of sending.
* **Too little history**: fewer than 3 used campaigns, or fewer than 1,000 control members over all of them.
  Then there is no forecast at all, only a plain statement of what is missing: no figure is made up.
* **Uplift** of a campaign = treatment conversion rate - control conversion rate (conversion as in the
  experiment read-out: the member's campaign row names a converted order), with sampling variance
  pT(1 - pT)/nT + pC(1 - pC)/nC. When a campaign has an arm with no conversions or converting
  completely, its variance uses (conversions + 0.5)/(members + 1) for both rates instead, so that it is
  never taken as exact (the uplift itself stays the raw difference).
* **Expected uplift**: the campaigns' uplifts pooled with the **DerSimonian–Laird random-effects** estimate,
  because campaigns genuinely differ: each campaign weighs 1/(its variance + tau²), where **tau²** is the
  estimated between-campaign variance of the true uplift (0 when the campaigns agree within their noise).
  Its 95% interval is the estimate ± 1.96 standard errors (normal). It describes the average campaign of
  this kind; a single new campaign can land further from it when tau² is large.
* **Response rate** = conversions / members over the used campaigns' treatment arms (simple pooling, no
  random effects); the **control rate** likewise over their control arms. Their difference, the **simple
  uplift**, is shown for comparison only: it mixes campaigns with different holdout shares.
* **Expected conversions** = members to send to × response rate. **Incremental conversions** = members to
  send to × expected uplift, and their 95% interval = members × the uplift's interval.
* **Revenue per conversion** = net amount of the treatment arms' converted orders / their conversions.
* **Coupon cost** = expected conversions × redemption share × coupon value: every converting treated member
  may use the coupon, not only the ones the campaign won. **Message cost** = members × cost per message.
* **Incremental margin** = incremental conversions × revenue per conversion × margin.
* **Expected ROI** = (incremental margin - coupon cost - message cost) / (coupon cost + message cost); not
  defined when nothing is spent. Its interval comes from the uplift's interval alone (ROI rises with the
  uplift); the uncertainty of the response rate and of revenue per conversion is not in it.

Per-campaign sums come from one SQL aggregation; the pooling is plain Python.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

import pandas as pd
from sqlalchemy import Double, cast, func, select

from analytics.errors import InputError
from analytics.i18n import N_, _, code_label, language
from analytics.preload import heavy_imports
from analytics.sqlparts import count_if, sum_if
from analytics.storage.contract import campaign_members, campaigns, orders
from analytics.storage.db import Bind, read_frame

ALPHA = 0.05
MIN_CAMPAIGNS = 3
MIN_CONTROL_MEMBERS = 1_000

HISTORY_COLUMNS: tuple[str, ...] = (
    "campaign_id", "name", "start_at", "treatment_members", "treatment_conversions", "treatment_revenue",
    "control_members", "control_conversions", "control_revenue", "coupon_value",
)
_COUNTS = ("treatment_members", "treatment_conversions", "control_members", "control_conversions")
_AMOUNTS = ("treatment_revenue", "control_revenue", "coupon_value")


class ForecastError(InputError):
    """Inputs a forecast cannot be made from; the message says which and why."""


@dataclass(frozen=True)
class Pooled:
    """A random-effects (DerSimonian–Laird) pooled estimate."""

    estimate: float
    se: float
    ci: tuple[float, float]
    tau2: float
    campaigns: int


@dataclass(frozen=True)
class Forecast:
    """A campaign forecast (see the module docstring). Every forecast figure is None without enough history."""

    # the history it is learned from
    campaigns_used: int
    campaign_ids: tuple[str, ...]
    treatment_members: int
    control_members: int
    # the plan
    treatment_size: int
    # the forecast
    response_rate: float | None
    control_rate: float | None
    simple_uplift: float | None
    uplift: float | None
    uplift_se: float | None
    uplift_ci: tuple[float, float] | None
    tau2: float | None
    expected_conversions: float | None
    incremental_conversions: float | None
    incremental_ci: tuple[float, float] | None
    revenue_per_conversion: float | None
    coupon_cost: float | None
    message_cost: float | None
    incremental_margin: float | None
    roi: float | None
    roi_ci: tuple[float, float] | None
    enough_history: bool
    message: str


def _start_before(before: date) -> datetime:
    return before if isinstance(before, datetime) else datetime.combine(before, time())


def campaign_history(bind: Bind, campaign_type: str, channel: str, before: date | None = None) -> pd.DataFrame:
    """One row per campaign of ``campaign_type`` on ``channel`` (started before ``before`` when given), oldest
    first, with both arms' totals: ``campaign_id, name, start_at, treatment_members, treatment_conversions,
    treatment_revenue, control_members, control_conversions, control_revenue, coupon_value``. Campaigns without
    members have zeros. Revenue = net amount of the converted orders, as in the experiment read-out."""
    c, cm, o = campaigns.c, campaign_members.c, orders.c
    revenue = cast(func.coalesce(o.net_amount, 0), Double)
    columns = []
    for arm in ("treatment", "control"):
        in_arm = cm.arm == arm
        columns += [count_if(in_arm).label(f"{arm}_members"),
                    count_if(in_arm & cm.converted_order_id.is_not(None)).label(f"{arm}_conversions"),
                    func.coalesce(sum_if(in_arm, revenue), 0.0).label(f"{arm}_revenue")]
    query = (select(c.campaign_id, c.name, c.start_at, *columns,
                    cast(func.coalesce(c.coupon_value, 0), Double).label("coupon_value"))
             .select_from(campaigns.outerjoin(campaign_members, cm.campaign_id == c.campaign_id)
                          .outerjoin(orders, o.order_id == cm.converted_order_id))
             .where(c.type == campaign_type, c.channel == channel)
             .group_by(c.campaign_id, c.name, c.start_at, c.coupon_value)
             .order_by(c.start_at, c.campaign_id))
    if before is not None:
        query = query.where(c.start_at < _start_before(before))
    frame = read_frame(bind, query)
    frame = frame.astype({**dict.fromkeys(_COUNTS, "int64"), **dict.fromkeys(_AMOUNTS, "float64")})
    frame["start_at"] = pd.to_datetime(frame["start_at"])
    return frame.reset_index(drop=True)


def forecast_types(bind: Bind) -> pd.DataFrame:
    """The campaign types and channels in the warehouse, for choosing what to forecast: ``type, channel,
    campaigns, campaigns_with_control`` (both arms have members) ``, control_members``, by type and channel."""
    c, cm = campaigns.c, campaign_members.c
    per_campaign = (select(c.campaign_id, c.type, c.channel,
                           count_if(cm.arm == "treatment").label("treated"),
                           count_if(cm.arm == "control").label("control"))
                    .select_from(campaigns.outerjoin(campaign_members, cm.campaign_id == c.campaign_id))
                    .where(c.type.is_not(None), c.channel.is_not(None))
                    .group_by(c.campaign_id, c.type, c.channel).subquery("per_campaign"))
    p = per_campaign.c
    both = (p.treated > 0) & (p.control > 0)
    frame = read_frame(bind, select(p.type, p.channel, func.count().label("campaigns"),
                                    count_if(both).label("campaigns_with_control"),
                                    func.coalesce(sum_if(both, p.control), 0).label("control_members"))
                       .group_by(p.type, p.channel).order_by(p.type, p.channel))
    return frame.astype({"campaigns": "int64", "campaigns_with_control": "int64", "control_members": "int64"})


def campaign_effects(history: pd.DataFrame) -> pd.DataFrame:
    """The used campaigns of a history (both arms have members) with their ``uplift`` and its ``variance``
    (see the module docstring)."""
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ForecastError(_("The campaign history lacks the columns {columns}.").format(columns=", ".join(missing)))
    used = history[(history["treatment_members"] > 0) & (history["control_members"] > 0)].copy()
    n_t, x_t = used["treatment_members"].astype(float), used["treatment_conversions"].astype(float)
    n_c, x_c = used["control_members"].astype(float), used["control_conversions"].astype(float)
    used["uplift"] = x_t / n_t - x_c / n_c
    zero_cell = (x_t == 0) | (x_t == n_t) | (x_c == 0) | (x_c == n_c)
    p_t = (x_t + 0.5 * zero_cell) / (n_t + zero_cell)
    p_c = (x_c + 0.5 * zero_cell) / (n_c + zero_cell)
    used["variance"] = p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c
    return used.reset_index(drop=True)


def random_effects(effects: Sequence[float], variances: Sequence[float], alpha: float = ALPHA) -> Pooled:
    """DerSimonian–Laird random-effects pooling of ``effects`` with sampling ``variances`` (all > 0): the
    estimate, its standard error, its normal (1 - ``alpha``) interval and tau², the between-study variance."""
    with heavy_imports():
        from scipy import stats  # imported when used: about 1 s, kept off the app's first page
    d, v = [float(x) for x in effects], [float(x) for x in variances]
    if not d or len(d) != len(v):
        raise ForecastError(_("Random-effects pooling needs one variance per effect, and at least one effect."))
    if not all(x > 0 and math.isfinite(x) for x in v) or not all(math.isfinite(x) for x in d):
        raise ForecastError(_("Random-effects pooling needs finite effects and positive, finite variances."))
    w = [1 / x for x in v]
    sum_w = sum(w)
    fixed = sum(wi * di for wi, di in zip(w, d, strict=True)) / sum_w
    q = sum(wi * (di - fixed) ** 2 for wi, di in zip(w, d, strict=True))
    scale = sum_w - sum(wi * wi for wi in w) / sum_w
    tau2 = max(0.0, (q - (len(d) - 1)) / scale) if scale > 0 else 0.0
    w_re = [1 / (x + tau2) for x in v]
    estimate = sum(wi * di for wi, di in zip(w_re, d, strict=True)) / sum(w_re)
    se = math.sqrt(1 / sum(w_re))
    z = float(stats.norm.ppf(1 - alpha / 2))
    return Pooled(estimate, se, (estimate - z * se, estimate + z * se), tau2, len(d))


def _validate(treatment_size: int, coupon_value: float, message_cost: float, margin: float,
              redemption_share: float) -> None:
    if isinstance(treatment_size, bool) or not isinstance(treatment_size, numbers.Integral) or treatment_size < 0:
        raise ForecastError(_("The number of members to send to must be a whole number of 0 or more, not {value}.")
                            .format(value=repr(treatment_size)))
    for complaint, value in ((N_("The coupon value must be 0 or more, not {value}."), coupon_value),
                             (N_("The cost per message must be 0 or more, not {value}."), message_cost)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ForecastError(_(complaint).format(value=repr(value)))
    for complaint, value in ((N_("The margin must be a share between 0 and 1, not {value}."), margin),
                             (N_("The redemption share must be a share between 0 and 1, not {value}."),
                              redemption_share)):
        if not (isinstance(value, numbers.Real) and 0 <= value <= 1):
            raise ForecastError(_(complaint).format(value=repr(value)))


def _kind(campaign_type: str | None, channel: str | None, count: int) -> str:
    """``past email coupon campaigns`` (singular for one), in the run's language (in English the codes are written
    as they are; in other languages as their labels)."""
    if language() == "en":
        words = " ".join(w for w in (channel, (campaign_type or "").replace("_", " ")) if w)
    else:
        words = "".join(code_label(w) for w in (channel, campaign_type) if w)
    if not words:
        return _("past campaign") if count == 1 else _("past campaigns")
    return (_("past {what} campaign") if count == 1 else _("past {what} campaigns")).format(what=words)


def _shortfall(used: int, control: int, campaign_type: str | None, channel: str | None) -> str | None:
    """What is missing for a forecast, as one sentence; None when the history suffices."""
    kind = _kind(campaign_type, channel, used)
    if used == 0:
        return _("No {kind} with a control group (0 found, {needed} needed): no forecast.").format(
            kind=kind, needed=MIN_CAMPAIGNS)
    few_members = _("only {control} control members ({needed} needed)").format(
        control=f"{control:,}", needed=f"{MIN_CONTROL_MEMBERS:,}")
    if used < MIN_CAMPAIGNS:
        if control < MIN_CONTROL_MEMBERS:
            return _("Only {used} {kind} with a control group ({needed} needed), with {few_members}: no forecast."
                     ).format(used=used, kind=kind, needed=MIN_CAMPAIGNS, few_members=few_members)
        return _("Only {used} {kind} with a control group ({needed} needed): no forecast.").format(
            used=used, kind=kind, needed=MIN_CAMPAIGNS)
    if control < MIN_CONTROL_MEMBERS:
        return _("The {used} {kind} with a control group had {few_members}: no forecast.").format(
            used=used, kind=kind, few_members=few_members)
    return None


def _roi(margin: float, cost: float) -> float:
    return (margin - cost) / cost if cost > 0 else math.nan


def forecast(history: pd.DataFrame, treatment_size: int, coupon_value: float, message_cost: float, margin: float,
             redemption_share: float = 1.0, *, campaign_type: str | None = None,
             channel: str | None = None) -> Forecast:
    """Forecast a campaign sent to ``treatment_size`` members from a :func:`campaign_history` (see the module
    docstring). ``coupon_value`` and ``message_cost`` are per converting member and per message, ``margin`` and
    ``redemption_share`` shares between 0 and 1; ``campaign_type`` and ``channel`` only name the history in the
    message. Raises :class:`ForecastError` for impossible inputs."""
    _validate(treatment_size, coupon_value, message_cost, margin, redemption_share)
    used = campaign_effects(history)
    n_t, n_c = int(used["treatment_members"].sum()), int(used["control_members"].sum())
    x_t, x_c = int(used["treatment_conversions"].sum()), int(used["control_conversions"].sum())
    summary = dict(campaigns_used=len(used), campaign_ids=tuple(str(c) for c in used["campaign_id"]),
                   treatment_members=n_t, control_members=n_c, treatment_size=int(treatment_size))
    missing = _shortfall(len(used), n_c, campaign_type, channel)
    if missing is not None:
        return Forecast(**summary, response_rate=None, control_rate=None, simple_uplift=None, uplift=None,
                        uplift_se=None, uplift_ci=None, tau2=None, expected_conversions=None,
                        incremental_conversions=None, incremental_ci=None, revenue_per_conversion=None,
                        coupon_cost=None, message_cost=None, incremental_margin=None, roi=None, roi_ci=None,
                        enough_history=False, message=missing)
    pooled = random_effects(used["uplift"], used["variance"])
    response, control = x_t / n_t, x_c / n_c
    revenue = float(used["treatment_revenue"].sum())
    per_conversion = revenue / x_t if x_t else math.nan
    expected = treatment_size * response
    incremental = treatment_size * pooled.estimate
    incremental_ci = (treatment_size * pooled.ci[0], treatment_size * pooled.ci[1])
    coupons = expected * redemption_share * coupon_value
    messages = treatment_size * message_cost
    value = per_conversion * margin
    cost = coupons + messages
    roi = _roi(incremental * value, cost)
    roi_ci = (_roi(incremental_ci[0] * value, cost), _roi(incremental_ci[1] * value, cost))
    kind = _kind(campaign_type, channel, len(used))
    figures = {"used": len(used), "kind": kind, "treated": f"{n_t:,}", "control": f"{n_c:,}",
               "size": f"{treatment_size:,}", "incremental": f"{incremental:,.0f}", "low": f"{incremental_ci[0]:,.0f}",
               "high": f"{incremental_ci[1]:,.0f}", "expected": f"{expected:,.0f}"}
    if math.isfinite(roi):
        message = _("From {used} {kind} ({treated} treated and {control} control members): sending to {size} members "
                    "should bring about {incremental} extra conversions (95% interval {low} to {high}) among about "
                    "{expected} expected conversions, for an expected ROI of {roi} ({roi_low} to {roi_high})."
                    ).format(**figures, roi=f"{roi:.0%}", roi_low=f"{roi_ci[0]:.0%}", roi_high=f"{roi_ci[1]:.0%}")
    else:
        message = _("From {used} {kind} ({treated} treated and {control} control members): sending to {size} members "
                    "should bring about {incremental} extra conversions (95% interval {low} to {high}) among about "
                    "{expected} expected conversions.").format(**figures)
    return Forecast(**summary, response_rate=response, control_rate=control, simple_uplift=response - control,
                    uplift=pooled.estimate, uplift_se=pooled.se, uplift_ci=pooled.ci, tau2=pooled.tau2,
                    expected_conversions=expected, incremental_conversions=incremental, incremental_ci=incremental_ci,
                    revenue_per_conversion=per_conversion, coupon_cost=coupons, message_cost=messages,
                    incremental_margin=incremental * value, roi=roi, roi_ci=roi_ci, enough_history=True,
                    message=message)


def forecast_campaign(bind: Bind, campaign_type: str, channel: str, treatment_size: int, coupon_value: float,
                      message_cost: float, margin: float, redemption_share: float = 1.0,
                      before: date | None = None) -> Forecast:
    """:func:`forecast` from the warehouse's history of ``campaign_type`` campaigns on ``channel`` (started
    before ``before`` when given)."""
    _validate(treatment_size, coupon_value, message_cost, margin, redemption_share)
    history = campaign_history(bind, campaign_type, channel, before)
    return forecast(history, treatment_size, coupon_value, message_cost, margin, redemption_share,
                    campaign_type=campaign_type, channel=channel)
