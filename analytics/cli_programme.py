"""The membership programme and campaign results on the command line (kept apart from :mod:`analytics.cli`, which
imports this module at its end so that these subcommands register):

* ``python -m analytics programme tiers``: one row per tier (members on the last day, near the next threshold,
  time to reach, active share, spend per member, retention, sales when held);
* ``python -m analytics programme points [--grain month]``: points issued, redeemed and expired per period, and the
  liability with its value;
* ``python -m analytics programme whatif --thresholds 1000,5000,20000 [--months 12] [--measure gross]
  [--benefit-rates 0,1,2,3]``: members per tier on the last day, today against the edited rule, and benefits cost;
* ``python -m analytics programme value``: members against guests (spend per buyer and more, with the ratio);
* ``python -m analytics campaigns [--type coupon] [--send-channel sms] [--margin 0.3] [--message-cost 0.05]``: every
  campaign that started in the range with its read-out figures, incremental conversions and revenue with their
  95% intervals, costs and realised ROI.
"""

from __future__ import annotations

import argparse
import math
import sys

import pandas as pd

from analytics import campaign_results, member_value, programme_points, programme_tiers, programme_whatif
from analytics.cli import Context, subcommand
from analytics.errors import UsageError
from analytics.i18n import N_, _
from analytics.programme import EVALUATION_MONTHS, POINTS_PER_CURRENCY_UNIT
from analytics.sqlparts import GRAINS
from analytics.storage.contract import CAMPAIGN_CHANNELS, CAMPAIGN_TYPES, TIERS

VIEWS = ("tiers", "points", "whatif", "value")
CAMPAIGN_COLUMNS = [
    "campaign_id", "name", "type", "channel", "start_at", "treatment_members", "control_members", "sent", "open_rate",
    "click_rate", "treatment_rate", "control_rate", "lift", "lift_low", "lift_high", "p_value",
    "incremental_conversions", "incremental_low", "incremental_high", "incremental_revenue", "revenue_low",
    "revenue_high", "coupon_cost", "message_cost", "roi", "roi_low", "roi_high", "treatment_retention",
    "control_retention", "read_out",
]


def _programme_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("view", choices=VIEWS, help=_("tiers, points, whatif or value"))
    parser.add_argument("--thresholds", help=_("whatif: spend needed for {tiers}, comma-separated (default: the "
                                               "programme's)").format(tiers=", ".join(TIERS[1:])))
    parser.add_argument("--months", type=int, default=EVALUATION_MONTHS,
                        help=_("whatif: calendar months of spend an evaluation counts (default %(default)s)"))
    parser.add_argument("--measure", choices=tuple(programme_whatif.MEASURES), default="gross",
                        help=_("whatif: spend measure (default gross)"))
    parser.add_argument("--benefit-rates", help=_("whatif: benefit rate of each tier in percent of spend, {tiers}, "
                                                  "e.g. 0,1,2,3 (default none)").format(tiers=",".join(TIERS)))
    parser.add_argument("--grain", choices=GRAINS, default="month", help=_("points: period (default month)"))
    parser.add_argument("--points-per-unit", type=int, default=POINTS_PER_CURRENCY_UNIT,
                        help=_("points: points per unit of currency (default %(default)s)"))


def _rates(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) / 100 for p in parts]
    except ValueError:
        raise UsageError(_("--benefit-rates takes percentages separated by commas, e.g. 0,1,2,3; got {text}").format(
            text=repr(text))) from None
    if len(values) != len(TIERS):
        raise UsageError(_("--benefit-rates needs {n} values ({tiers}), got {got}").format(
            n=len(TIERS), tiers=", ".join(TIERS), got=len(values)))
    return dict(zip(TIERS, values, strict=True))


def tier_table(ctx: Context) -> pd.DataFrame:
    """One row per tier: members on the last day and the other tier figures of the Programme page."""
    engine, filters = ctx.engine, ctx.filters
    counts = programme_tiers.tier_counts_over_time(engine, filters, "day")
    last = counts[counts["period_start"] == counts["period_start"].max()][["tier", "members"]]
    gaps = programme_tiers.gap_summary(programme_tiers.upgrade_gap(engine, filters))[
        ["tier", "next_tier", "near", "near_share", "qualifies"]]
    reach = programme_tiers.time_to_tier(engine, filters).rename(columns={"members": "reached_in_range"})
    held = programme_tiers.tier_performance(engine, filters)[
        ["tier", "active_share", "spend_per_member", "retention"]]
    sales = programme_tiers.sales_by_tier(engine, filters)[["tier", "net_sales", "sales_share"]]
    table = last.merge(gaps, on="tier", how="left").merge(reach[["tier", "reached_in_range", "median_days"]],
                                                          on="tier", how="left")
    table = table.merge(held, on="tier", how="left").merge(sales, on="tier", how="left")
    table = table.rename(columns={"members": "members_on_last_day", "median_days": "median_days_to_reach",
                                  "net_sales": "net_sales_when_held"})
    for column in ("near", "qualifies", "reached_in_range"):
        table[column] = table[column].astype("Int64")
    return table.reset_index(drop=True)


@subcommand("programme", N_("The membership programme in the period: tiers (one row per tier), points (per period), "
            "whatif (members per tier on the period's last day under edited thresholds, against today's; benefits "
            "cost with --benefit-rates) or value (members against guests). The tier filter applies to points and "
            "value only."), _programme_options)
def _programme(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    if args.view == "tiers":
        return tier_table(ctx)
    if args.view == "points":
        flows = programme_points.points_flows(ctx.engine, ctx.filters, args.grain, args.points_per_unit)
        summary = programme_points.summarise_points(flows, args.points_per_unit)
        print(_("note: redemption rate {redemption:.1%}, breakage rate {breakage:.1%}, liability {points:,} points = "
                "{value:,.2f} on {day}").format(redemption=summary.redemption_rate, breakage=summary.breakage_rate,
                                                points=summary.liability, value=summary.liability_value,
                                                day=ctx.end), file=sys.stderr)
        return flows
    if args.view == "value":
        comparison = member_value.member_vs_guest(ctx.engine, ctx.filters)
        print(_("note: members spend {ratio:.2f} times as much per buyer as guests (each guest order counts as one "
                "guest buyer)").format(ratio=member_value.value_ratio(comparison)), file=sys.stderr)
        return comparison
    thresholds = (programme_whatif.parse_thresholds(args.thresholds) if args.thresholds
                  else programme_whatif.TierRule.today().thresholds)
    rule = programme_whatif.TierRule(thresholds, args.months, args.measure)
    result = programme_whatif.whatif_tiers(ctx.engine, ctx.end, rule, _rates(args.benefit_rates))
    print(_("note: on {day} (evaluation of {evaluated}) {up:,} of {members:,} members would move up and {down:,} "
            "down; benefits cost {today:,.2f} today, {whatif:,.2f} with {rule}").format(
        day=ctx.end, evaluated=result.evaluated, up=result.moved("up"), members=result.members,
        down=result.moved("down"), today=result.cost_today, whatif=result.cost_whatif, rule=rule.describe()),
          file=sys.stderr)
    return result.tiers


def _campaign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", dest="campaign_type", choices=CAMPAIGN_TYPES, help=_("only campaigns of this type"))
    parser.add_argument("--send-channel", choices=CAMPAIGN_CHANNELS, help=_("only campaigns on this message channel"))
    parser.add_argument("--margin", type=float, default=campaign_results.DEFAULT_MARGIN,
                        help=_("margin on incremental revenue, 0-1 (default %(default)s)"))
    parser.add_argument("--message-cost", type=float, default=0.0, help=_("cost per message sent (default 0)"))


@subcommand("campaigns", N_("Every campaign that started in the period, treatment against its holdout control: sent, "
            "open and click-through rates, conversion per arm, lift with its 95% interval and p-value, incremental "
            "conversions and revenue with 95% intervals, coupon and message cost, realised ROI, retention of "
            "converters; the link to its read-out. The sales-channel and tier filters do not apply."),
            _campaign_options)
def _campaigns(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    results = campaign_results.campaign_results(ctx.engine, ctx.filters, args.campaign_type, args.send_channel,
                                                args.margin, args.message_cost)
    roi = campaign_results.realised_roi(results)
    print(_("note: {n:,} campaigns started between {start} and {end}; realised ROI over them {roi}").format(
        n=len(results), start=ctx.start, end=ctx.end,
        roi=_("not defined (nothing spent)") if math.isnan(roi) else f"{roi:.1%}"), file=sys.stderr)
    return results[CAMPAIGN_COLUMNS]
