"""Headless entry point: ``python -m analytics SUBCOMMAND`` for analysts who script reports.

Every subcommand shares ``--url`` (default: the configured warehouse, as the app resolves it),
``--start`` / ``--end`` (inclusive dates; default the last 90 days of data) and ``--format
csv|json`` (to stdout). Problems are reported as one clear line on stderr with a non-zero exit
status: 2 for bad arguments, 1 for a warehouse that cannot be used.

A subcommand is a function registered with :func:`subcommand`; later analyses add theirs here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd
from sqlalchemy import Engine

from analytics import audiences, clustering, experiments, funnels, heatmaps, kpis, rfm, rules, tags, targeting
from analytics.access import cli_principal
from analytics.commandline import (
    check_channels,
    choices_list,
    iso_date,
    resolve_dates,
    run_reporting_errors,
    write,
)
from analytics.errors import UsageError
from analytics.filters import COMPARISONS, OPEN_SCOPE, Filters, Scope
from analytics.i18n import N_, _, language_of, ngettext, system_language, using
from analytics.quality import DEFAULT_THRESHOLDS, QualityThresholds, quality_report
from analytics.storage.appstate import log_event, open_state, resolve_state_url
from analytics.storage.contract import TIERS
from analytics.storage.privacy_store import suppression
from analytics.storage.warehouse import open_warehouse, resolve_warehouse_config

#: Subcommands that write their own audit rows (the privacy commands).
_AUDITS_ITSELF = frozenset({"privacy", "recommend"})


@dataclass(frozen=True)
class Context:
    """What every subcommand gets: an open read-only engine (None for commands that need no warehouse), the
    resolved date range, and the scope (members left out: erased ones, and for profiling commands those who
    objected)."""

    engine: Engine | None
    start: date | None
    end: date | None
    args: argparse.Namespace
    scope: Scope = OPEN_SCOPE

    @property
    def filters(self) -> Filters:
        """The date range with the ``--channel`` and ``--tier`` filters and the scope."""
        return Filters(self.start, self.end, tuple(self.args.channel), tuple(self.args.tier), self.scope)


Handler = Callable[[Context], pd.DataFrame]
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}
#: Per subcommand: whether it reads the warehouse, and whether it profiles members (segments, models, targeting:
#: members who objected to profiling are left out).
_NEEDS: dict[str, tuple[bool, bool]] = {}


def subcommand(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None] = lambda p: None,
               *, warehouse: bool = True, profiling: bool = False):
    """Register ``handler(ctx) -> DataFrame`` as ``python -m analytics <name>``."""

    def register(handler: Handler) -> Handler:
        _SUBCOMMANDS[name] = (help_text, configure, handler)
        _NEEDS[name] = (warehouse, profiling)
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=_("warehouse SQLAlchemy URL (default: MEMBERLENS_WAREHOUSE_URL, "
                        ".streamlit/secrets.toml, else the embedded demo warehouse)"))
    common.add_argument("--start", type=iso_date, help=_("first day, inclusive (YYYY-MM-DD)"))
    common.add_argument("--end", type=iso_date, help=_("last day, inclusive (YYYY-MM-DD)"))
    common.add_argument("--format", choices=("csv", "json"), default="csv", help=_("output format (default csv)"))
    common.add_argument("--channel", type=choices_list(None), action="extend", default=[],
                        help=_("keep these sales channels (comma-separated or repeated)"))
    common.add_argument("--tier", type=choices_list(TIERS), action="extend", default=[],
                        help=_("keep members of these tiers ({tiers})").format(tiers=", ".join(TIERS)))
    common.add_argument("--lang", default=argparse.SUPPRESS, metavar="LANG",
                        help=_("language of the help and messages: en or zh-CN (default: MEMBERLENS_LANG, else the "
                               "system's LANG); the CSV and JSON output is the same in every language"))
    parser = argparse.ArgumentParser(
        prog="python -m analytics", description=_("MemberLens analyses from the command line."))
    parser.add_argument("--lang", default=argparse.SUPPRESS, metavar="LANG",
                        help=_("language of the help and messages: en or zh-CN (default: MEMBERLENS_LANG, else the "
                               "system's LANG); the CSV and JSON output is the same in every language"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, (help_text, configure, _handler) in _SUBCOMMANDS.items():
        shown = _(help_text)
        configure(sub.add_parser(name, parents=[common], help=shown.replace("%", "%%"), description=shown))
    return parser


def requested_language(argv: Sequence[str] | None) -> str:
    """The language of this run: ``--lang`` wherever it stands on the command line, else the environment's
    (:func:`analytics.i18n.system_language`: ``MEMBERLENS_LANG``, then ``LC_ALL``, ``LC_MESSAGES``, ``LANG``)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--lang")
    known, _rest = early.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    return language_of(known.lang) if known.lang else system_language()


#: argparse's own texts (usage, option groups, its error messages), translated with the rest while a command runs
#: (argparse looks them up through its module's ``_``, see :func:`_argparse_translated`).
ARGPARSE_TEXTS = (
    N_("usage: "), N_("positional arguments"), N_("options"), N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"), N_("argument %(argument_name)s: %(message)s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"), N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"), N_("expected one argument"), N_("expected at least one argument"),
    N_("expected at most one argument"), N_("invalid %(type)s value: %(value)r"),
    N_("one of the arguments %s is required"), N_("not allowed with argument %s"),
    N_("ambiguous option: %(option)s could match %(matches)s"), N_("can't open '%(filename)s': %(error)s"),
)


@contextmanager
def _argparse_translated() -> Iterator[None]:
    """argparse's own texts in the run's language while a command runs (English: unchanged)."""
    saved = argparse._, argparse.ngettext
    argparse._, argparse.ngettext = _, ngettext
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command in the language asked for (``--lang``, ``MEMBERLENS_LANG`` or ``LANG``): its help and messages
    are translated, its CSV or JSON output is not."""
    with using(requested_language(argv)), _argparse_translated():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message
        return int(exc.code or 0)

    def body() -> int:
        needs_warehouse, profiling = _NEEDS.get(args.command, (True, False))
        if not needs_warehouse:
            write(_SUBCOMMANDS[args.command][2](Context(None, None, None, args)), args.format)
            return 0
        state = open_state(resolve_state_url())  # the suppression list, and the audit log of member exports
        try:
            scope = Scope(excluded=suppression(state).excluded(profiling))
            engine = open_warehouse(args.url or resolve_warehouse_config().url)
            try:
                check_channels(engine, args.channel)
                start, end = resolve_dates(engine, args.start, args.end)
                frame = _SUBCOMMANDS[args.command][2](Context(engine, start, end, args, scope))
                if "member_id" in frame.columns and args.command not in _AUDITS_ITSELF:
                    # member rows leave MemberLens here: written to the audit log first, or not at all
                    log_event(state, cli_principal().identity, "export_members",
                              {"page": "cli", "command": args.command, "rows": len(frame), "masked": False,
                               "member_ids": "real"})
                write(frame, args.format)
            finally:
                engine.dispose()
        finally:
            state.dispose()
        return 0

    return run_reporting_errors(body)


# --- subcommands ----------------------------------------------------------------------------------

def _kpi_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compare", choices=tuple(COMPARISONS), default="previous",
                        help=_("compare with the previous period of equal length (default) or the same dates a year "
                             "earlier (year_ago)"))
    parser.add_argument("--by", choices=kpis.BREAKDOWNS,
                        help=_("break one KPI down instead: one row per channel, tier, region, category, "
                             "new vs returning (customer_type) or campaign"))
    parser.add_argument("--kpi", choices=tuple(kpis.KPI_BY_KEY), default="net_sales",
                        help=_("the KPI --by breaks down (default net_sales)"))


@subcommand("kpis", N_("Every executive KPI for the period, with the previous period of equal length (or, with "
            "--compare year_ago, the same dates a year earlier); with --by, one KPI per value of a breakdown."),
            _kpi_options)
def _kpis(ctx: Context) -> pd.DataFrame:
    if ctx.args.by:
        breakdown = kpis.kpi_breakdown(ctx.engine, ctx.filters, ctx.args.by, ctx.args.kpi, ctx.args.compare)
        compared = ctx.filters.compared(ctx.args.compare)
        print(_("{kpi} by {dimension}: total {current} against {previous} ({start} – {end})").format(
            kpi=_(breakdown.kpi.label), dimension=_(breakdown.dimension.label).lower(),
            current=breakdown.total.current, previous=breakdown.total.previous, start=compared.start,
            end=compared.end), file=sys.stderr)
        return breakdown.rows
    summary = kpis.kpi_summary(ctx.engine, ctx.filters, ctx.args.compare)
    if summary.is_empty:
        print(_("note: no orders, sessions or registrations between {start} and {end}").format(
            start=ctx.start, end=ctx.end), file=sys.stderr)
    return summary.to_frame()


def _quality_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--today", type=iso_date, help=_(
        "the day freshness is measured against and after which timestamps count as in the future (default: the local "
        "date; set it for a reproducible report)"))
    parser.add_argument("--fresh-days", type=int, default=DEFAULT_THRESHOLDS.fresh_days,
                        help=_("newest row at most this many days old passes (default %(default)s)"))
    parser.add_argument("--stale-days", type=int, default=DEFAULT_THRESHOLDS.stale_days,
                        help=_("newest row older than this fails; in between warns (default %(default)s)"))


@subcommand("quality", N_("Data-quality checks of the whole warehouse (complete, accurate, timely), one row per check "
            "with its status (pass, warn, fail). Dates, channels and tiers are ignored: the checks cover every row "
            "(on a warehouse without orders, pass any --start and --end)."), _quality_options)
def _quality(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    thresholds = QualityThresholds(fresh_days=args.fresh_days, stale_days=args.stale_days)
    report = quality_report(ctx.engine, args.today, thresholds)
    print(_("quality as of {today}: {summary}").format(today=report.today, summary=report.summary()), file=sys.stderr)
    return report.checks


def _rules_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", choices=rules.LEVELS, default="product", help=_("items to mine (default product)"))
    parser.add_argument("--min-support", type=float, default=0.01, help=_("share of baskets, e.g. 0.01 (default)"))
    parser.add_argument("--min-confidence", type=float, default=0.3, help=_("share, e.g. 0.3 (default)"))
    parser.add_argument("--min-lift", type=float, default=0.0, help=_("keep rules with at least this lift"))
    parser.add_argument("--max-len", type=int, default=4, help=_("most items in a rule (default 4)"))
    parser.add_argument("--algorithm", choices=rules.ALGORITHMS, default="fpgrowth")
    parser.add_argument("--time-limit", type=float, help=_("stop mining after this many seconds"))


@subcommand("rules", N_("Association rules of the baskets of completed orders in the period (one item in the "
            "consequent): support, confidence, lift, leverage, conviction and Zhang's metric."), _rules_options)
def _rules(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    spec = rules.RuleSpec(level=args.level, min_support=args.min_support, min_confidence=args.min_confidence,
                          min_lift=args.min_lift, max_len=args.max_len, algorithm=args.algorithm)
    baskets = rules.load_baskets(ctx.engine, ctx.filters,
                                 spec.level)
    result = rules.mine_rules(baskets, spec, time_limit=args.time_limit)
    print((_("note: {rules:,} rules from {baskets:,} baskets between {start} and {end} (the most recent baskets "
             "only)") if baskets.truncated else
           _("note: {rules:,} rules from {baskets:,} baskets between {start} and {end}")).format(
        rules=len(result.rules), baskets=baskets.count, start=ctx.start, end=ctx.end), file=sys.stderr)
    return result.rules[rules.RULE_COLUMNS[:8]]


def _retention_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", choices=heatmaps.COHORTS, default="first_purchase",
                        help=_("group members by their first completed purchase (default) or registration"))
    parser.add_argument("--period", choices=heatmaps.PERIODS, default="month", help=_("month (default) or week"))
    parser.add_argument("--max-periods", type=int, default=12, help=_("periods after the cohort's (default 12)"))


@subcommand("retention", N_("Cohort retention: per cohort (members whose first purchase or registration falls in a "
                            "week or month of the period) its size and, per later period, the members active then."),
            _retention_options)
def _retention(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    if not 0 <= args.max_periods <= 120:
        raise UsageError(_("--max-periods must lie between 0 and 120"))
    return heatmaps.cohort_retention(ctx.engine, ctx.filters, args.cohort, args.period, max_periods=args.max_periods)


def _funnel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", required=True,
                        help=_("2-8 event types, comma-separated; filters after a colon, e.g. "
                             "'product_view:category=Pet Food;device=app,add_to_cart,purchase'"))
    parser.add_argument("--window", default="7d",
                        help=_("conversion window from step 1: 30m, 12h, 7d ... (default 7d)"))
    parser.add_argument("--mode", choices=funnels.MODES, default="ordered",
                        help=_("ordered (default), strict (no other event between steps) or any (any order)"))
    parser.add_argument("--unit", choices=funnels.UNITS, default="member",
                        help=_("count members (default) or sessions"))
    parser.add_argument("--breakdown", choices=funnels.DIMENSIONS, help=_("one row per step and value of this "
                        "dimension, taken from the entry (first touch)"))


FUNNEL_COLUMNS = ["step", "units", "overall_conversion", "step_conversion", "median_seconds_to_convert",
                  "p90_seconds_to_convert"]


@subcommand("funnel", N_("Conversion funnel: per step, the units (members or sessions) whose best attempt starting "
            "in the period reached it, conversion from step 1 and from the previous step, and the median time "
            "to convert from the previous step."), _funnel_options)
def _funnel(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    spec = funnels.FunnelSpec(funnels.parse_steps(args.steps), funnels.parse_window(args.window), args.mode,
                              args.unit)
    report = funnels.funnel_report(ctx.engine, spec, ctx.filters, args.breakdown)
    if args.breakdown is None:
        table = report.total.assign(step=report.total["label"])
        return table[FUNNEL_COLUMNS]
    table = report.by_dimension.assign(step=report.by_dimension["label"])
    return table.rename(columns={"dim": args.breakdown})[[args.breakdown, *FUNNEL_COLUMNS]]


@subcommand("rfm", N_("RFM per member with an order in the period: recency in days (to the period's last day), "
            "frequency (completed orders), monetary (net sales), their 1-5 scores and the named segment."),
            profiling=True)
def _rfm(ctx: Context) -> pd.DataFrame:
    members = rfm.rfm_members(ctx.engine, ctx.filters)
    print(_("note: {n:,} members bought between {start} and {end}").format(n=len(members), start=ctx.start,
                                                                            end=ctx.end), file=sys.stderr)
    return members.drop(columns="fm_score")


def _clusters_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=6, help=_("number of clusters, 2-20 (default 6)"))
    parser.add_argument("--algorithm", choices=tuple(clustering.ALGORITHMS), default="kmeans",
                        help=_("kmeans (default) or gmm (Gaussian mixture)"))
    parser.add_argument("--features", type=choices_list(tuple(clustering.FEATURE_GROUPS)), action="extend",
                        default=[], help=_("feature groups to cluster on (default all: {groups})").format(
                            groups=", ".join(clustering.FEATURE_GROUPS)))
    parser.add_argument("--min-orders", type=int, default=1, help=_("cluster members with at least this many "
                        "completed orders in the period (default 1)"))
    parser.add_argument("--seed", type=int, default=42, help=_("random seed (default 42): same seed, same clusters"))
    parser.add_argument("--profiles", action="store_true", help=_("print one portrait row per cluster instead"))


@subcommand("clusters", N_("Member clusters on behavioural features (RFM, tenure, basket, discounts and points, time "
            "of day, engagement, category and channel mix, age): member_id, cluster (1 = highest average net "
            "sales), cluster_name; or with --profiles the portrait of each cluster."), _clusters_options,
            profiling=True)
def _clusters(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    settings = clustering.ClusterSettings(args.k, args.algorithm, tuple(args.features or clustering.FEATURE_GROUPS),
                                          args.min_orders, args.seed)
    result = clustering.cluster_members(ctx.engine, ctx.filters, settings)
    print(_("note: {n:,} members with at least {orders} completed order(s) between {start} and {end}, in {k} "
            "clusters ({algorithm})").format(n=len(result.members), orders=settings.min_orders, start=ctx.start,
                                             end=ctx.end, k=settings.k,
                                             algorithm=_(clustering.ALGORITHMS[settings.algorithm])),
          file=sys.stderr)
    if args.profiles:
        return result.portraits
    return result.members[["member_id", "cluster", "cluster_name"]]


@subcommand("tags", N_("Rule-based member tags on the period's last day: each tag, its rule, its members and their "
            "share of all members."), profiling=True)
def _tags(ctx: Context) -> pd.DataFrame:
    return tags.tag_coverage(ctx.engine, ctx.filters)


def _audience_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", help=_("audience definition (JSON file, format in docs/audiences.md)"))
    source.add_argument("--saved", metavar="NAME", help=_("an audience saved in the app (app-state database: "
                        "MEMBERLENS_STATE_URL, else data/app_state.sqlite)"))
    parser.add_argument("--version", type=int, help=_("with --saved: that version (default: the latest)"))
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--members", action="store_true", help=_("print the targeted member ids and their arm instead"))
    output.add_argument("--funnel", action="store_true", help=_("print how each top-level condition narrows the "
                        "audience instead: members matching it alone, and it and every condition before it"))


def _saved_audience(name: str, version: int | None) -> targeting.CampaignAudience:
    from analytics.storage.appstate import load_audience, open_state, resolve_state_url

    saved = load_audience(open_state(resolve_state_url()), name, version)
    print(_("note: {name} version {version}, saved by {author} on {saved} UTC ({size} members then)").format(
        name=saved.name, version=saved.version, author=saved.author, saved=f"{saved.created_at:%Y-%m-%d %H:%M}",
        size=saved.size if saved.size is not None else "?"), file=sys.stderr)
    return targeting.from_saved(saved)


@subcommand("audience", N_("A campaign audience from its JSON definition: members matching its rules, targeted (after "
            "the frequency cap and maximum size), treatment and control, and reachable per channel (consent and a "
            "usable contact). The definition carries its own window: --start, --end, --channel and --tier are "
            "ignored."), _audience_options, profiling=True)
def _audience(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    if args.saved is not None:
        audience = _saved_audience(args.saved, args.version)
    else:
        try:
            with open(args.spec, "rb") as handle:
                text = handle.read(audiences.MAX_JSON_BYTES + 1)  # bounded: the rest is never read
        except OSError as exc:
            raise UsageError(_("cannot read --spec {path}: {reason}").format(path=args.spec, reason=exc.strerror)) \
                from None
        audience = audiences.loads(text, allowed=[targeting.KIND])
    # the members the command may return: nobody erased or objecting to profiling
    audience = replace(audience, window=replace(audience.window, scope=ctx.scope))
    from analytics.targeting_values import audience_value_notes

    for note in audience_value_notes(ctx.engine, audience):  # a value nobody has matches nobody: say so
        print(_("note: {note}").format(note=note), file=sys.stderr)
    if args.members:
        return targeting.targeted_members(ctx.engine, audience)
    if args.funnel:
        funnel = targeting.condition_funnel(ctx.engine, audience)
        return pd.DataFrame([{"step": 0, "condition": "all members", "alone": funnel.members,
                              "remaining": funnel.members},
                             *({"step": n, "condition": s.label, "alone": s.alone, "remaining": s.remaining}
                               for n, s in enumerate(funnel.steps, start=1))])
    sizes = targeting.preview(ctx.engine, audience)
    return pd.DataFrame([{"matching": sizes.matching, "targeted": sizes.targeted, "treatment": sizes.treatment,
                          "control": sizes.control, **{f"reachable_{c}": n for c, n in sizes.reachable.items()}}])


def _forecast_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", required=True, dest="campaign_type", help=_("campaign type, e.g. coupon"))
    parser.add_argument("--send-channel", required=True, choices=targeting.CHANNELS, help=_("message channel"))
    parser.add_argument("--size", required=True, type=int, help=_("members to send to (treatment)"))
    parser.add_argument("--coupon", type=float, default=0.0, help=_("coupon value per redemption (default 0)"))
    parser.add_argument("--message-cost", type=float, default=0.0, help=_("cost per message (default 0)"))
    parser.add_argument("--margin", type=float, default=0.3, help=_("margin on incremental sales, 0-1 (default 0.3)"))


@subcommand("forecast", N_("Forecast of a campaign from past campaigns of the same type and channel (their treatment "
            "against their control): response rate, incremental conversions with a 95% interval, coupon cost and "
            "ROI. Says so, and prints nothing else, when there is too little history. Dates are ignored."),
            _forecast_options)
def _forecast(ctx: Context) -> pd.DataFrame:
    from analytics import forecast

    args = ctx.args
    result = forecast.forecast_campaign(ctx.engine, args.campaign_type, args.send_channel, args.size, args.coupon,
                                        args.message_cost, args.margin)
    print(_("note: {note}").format(note=result.message), file=sys.stderr)
    if not result.enough_history:
        return pd.DataFrame(columns=["measure", "value", "ci_low", "ci_high"])
    return pd.DataFrame([
        {"measure": "response_rate", "value": result.response_rate, "ci_low": None, "ci_high": None},
        {"measure": "uplift", "value": result.uplift, "ci_low": result.uplift_ci[0], "ci_high": result.uplift_ci[1]},
        {"measure": "incremental_conversions", "value": result.incremental_conversions,
         "ci_low": result.incremental_ci[0], "ci_high": result.incremental_ci[1]},
        {"measure": "coupon_cost", "value": result.coupon_cost, "ci_low": None, "ci_high": None},
        {"measure": "message_cost", "value": result.message_cost, "ci_low": None, "ci_high": None},
        {"measure": "roi", "value": result.roi, "ci_low": result.roi_ci[0], "ci_high": result.roi_ci[1]},
    ])


def _experiment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", required=True, help=_("campaign id, e.g. CMP0001"))


@subcommand("experiment", N_("Read-out of a past campaign, treatment against its holdout control: members (with the "
            "sample-ratio-mismatch p-value), conversion rate and revenue per member per arm, their difference with a "
            "95% interval and p-value (two-proportion z-test; Welch's t-test). The verdict goes to stderr. Dates, "
            "channels and tiers are ignored."), _experiment_options)
def _experiment(ctx: Context) -> pd.DataFrame:
    result = experiments.read_out(ctx.engine, ctx.args.campaign)
    print(_("verdict: {verdict}").format(verdict=result.verdict), file=sys.stderr)
    return experiments.read_out_table(result)


# Subcommands defined in their own modules register themselves (@subcommand) on import.
import analytics.cli_access  # noqa: E402, F401
from analytics import (  # noqa: E402, F401
    cli_models,
    cli_programme,
    cli_recommend,
)
