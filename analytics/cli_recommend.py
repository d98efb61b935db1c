"""``python -m analytics recommend train|evaluate|for|export|list|outcome``: recommendations from the command line.

Training is a batch job for cron (``recommend train`` daily or weekly); the app and every other action use the
latest stored version (or ``--version``). Versions live in the recommender registry: a row per version in the
app-state database (``MEMBERLENS_STATE_URL``, else ``data/app_state.sqlite``) and the files in the recommender
folder (``MEMBERLENS_RECOMMENDER_DIR``, else ``recommenders/`` beside the SQLite file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from analytics import targeting
from analytics.access import cli_principal
from analytics.cli import Context, subcommand
from analytics.cli_models import _author
from analytics.commandline import iso_date
from analytics.errors import SpecError, UsageError
from analytics.i18n import N_, _
from analytics.recommend_eval import MAX_HORIZON_DAYS, MAX_K, evaluate
from analytics.recommend_lists import MAX_N, ListSettings
from analytics.recommend_outcome import outcome_table, recommendation_outcome
from analytics.recommend_store import (
    LIST_COLUMNS,
    StoredLists,
    export_recommendations,
    linked_export,
    train_version,
)
from analytics.recommenders import ALGORITHMS, DEFAULT_ALGORITHM
from analytics.storage.appstate import log_event, open_state, resolve_state_url
from analytics.storage.recommender_registry import campaign_link, list_recommenders, load_recommender

ACTIONS = ("train", "evaluate", "for", "export", "list", "outcome")
#: Largest audience file read (bytes), as the JSON edge allows.
MAX_SPEC_BYTES = 2_000_000


def _categories(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help=_("train and store a version; evaluate algorithms out of time; "
                        "one member's list; export an audience's lists; list versions; a campaign's outcome"))
    parser.add_argument("--algorithm", default=None,
                        help=_("train: one of {algorithms} (default {default}); evaluate: a comma-separated list "
                               "(default all)").format(algorithms=", ".join(ALGORITHMS), default=DEFAULT_ALGORITHM))
    parser.add_argument("--as-of", type=iso_date, help=_("train: the history's last day (default: the last order "
                        "day); evaluate: the test window's last day"))
    parser.add_argument("--n", type=int, help=_("train: items stored per member (default 10, at most {most}); for "
                                                "and export: items per member (default: all the version "
                                                "stores)").format(most=MAX_N))
    parser.add_argument("--keep-bought", action="store_true",
                        help=_("train: recommend products members already bought (default: only consumables again)"))
    parser.add_argument("--rebuy-categories", type=_categories,
                        help=_("train: categories recommended again though bought (comma-separated; default the "
                             "consumables: groceries, beauty, pets ...; an empty string for none)"))
    parser.add_argument("--exclude-categories", type=_categories, default=(),
                        help=_("train: categories never recommended (comma-separated)"))
    parser.add_argument("--max-per-category", type=int, help=_("train: at most this many items of one category"))
    parser.add_argument("--evaluate", action="store_true",
                        help=_("train: also evaluate every algorithm out of time and keep the figures with the "
                               "version"))
    parser.add_argument("--k", type=int, default=10, help=_("evaluate: list length measured (default 10, at most "
                                                            "{most})").format(most=MAX_K))
    parser.add_argument("--horizon", type=int, default=30,
                        help=_("evaluate: test window in days (default 30, at most {most})").format(
                            most=MAX_HORIZON_DAYS))
    parser.add_argument("--member", help=_("for: the member id"))
    parser.add_argument("--spec", type=Path, help=_("export: a campaign audience definition (JSON, as Campaign "
                        "targeting downloads it)"))
    parser.add_argument("--campaign", help=_("export: the campaign id to record the version for (default: the "
                        "audience's campaign key); outcome: the campaign id"))
    parser.add_argument("--version", type=int, help=_("for, export: the stored version (default the latest)"))


def _list_settings(args: argparse.Namespace) -> ListSettings:
    return ListSettings(n=10 if args.n is None else args.n, exclude_bought=not args.keep_bought,
                        rebuy_categories=args.rebuy_categories, exclude_categories=args.exclude_categories,
                        max_per_category=args.max_per_category)


def _evaluation(ctx: Context, algorithms: tuple[str, ...], settings: ListSettings | None = None):
    args = ctx.args
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise UsageError(_("unknown algorithm {unknown}; choose from {algorithms}").format(
            unknown=", ".join(unknown), algorithms=", ".join(ALGORITHMS)))
    return evaluate(ctx.engine, args.as_of, args.horizon, args.k, algorithms, settings)


def _read_spec(path: Path) -> targeting.CampaignAudience:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise UsageError(_("{path} is larger than {most:,} bytes").format(path=path, most=MAX_SPEC_BYTES))
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(_("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)) from exc
    except ValueError as exc:
        raise SpecError(_("{path} is not valid JSON: {reason}").format(path=path, reason=exc)) from exc
    return targeting.parse_spec(data)


@subcommand("recommend", N_("Product recommendations: train (fit an algorithm on the purchases up to --as-of, make "
            "every member's top N and store them as a new version: a cron job), evaluate (algorithms side by side on "
            "an out-of-time split against the popularity baselines), for (one member's stored list with reasons), "
            "export (the stored top N of every member of a campaign audience, masked and audited; records the "
            "version for the campaign), list (stored versions), outcome (a campaign's 'recommended item bought', "
            "treatment against control). Dates, channels and tiers are ignored."), _options)
def _recommend(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    if args.action == "evaluate":
        chosen = tuple(args.algorithm.split(",")) if args.algorithm else tuple(ALGORITHMS)
        result = _evaluation(ctx, chosen)
        print(_("note: history to {history}, test window to {test}; {buyers:,} of {members:,} members bought in "
                "it").format(history=result.history_end, test=result.test_end,
                             buyers=result.members_with_purchases, members=result.members), file=sys.stderr)
        print(_("verdict: {verdict}").format(verdict=result.sentence), file=sys.stderr)
        return result.table
    state = open_state(resolve_state_url())
    if args.action == "train":
        algorithm = args.algorithm or DEFAULT_ALGORITHM
        if algorithm not in ALGORITHMS:
            raise UsageError(_("unknown algorithm {unknown}; choose one of {algorithms}").format(
                unknown=algorithm, algorithms=", ".join(ALGORITHMS)))
        settings = _list_settings(args)
        evaluation = None
        if args.evaluate:
            result = _evaluation(ctx, tuple(ALGORITHMS), settings)
            evaluation = {"k": result.k, "history_end": result.history_end.isoformat(),
                          "test_end": result.test_end.isoformat(), "sentence": result.sentence,
                          "table": json.loads(result.table.to_json(orient="records"))}
            print(_("verdict: {verdict}").format(verdict=result.sentence), file=sys.stderr)
        stored = train_version(ctx.engine, state, _author(), algorithm, args.as_of, settings, evaluation)
        print(_("note: stored recommender {label} ({algorithm}, history to {day}) in {folder}").format(
            label=stored.label, algorithm=stored.algorithm, day=stored.as_of, folder=stored.folder), file=sys.stderr)
        facts = stored.summary
        return pd.DataFrame([{"version": stored.version, "algorithm": stored.algorithm, "as_of": stored.as_of,
                              "list_length": stored.list_length, "members": facts["members"],
                              **{f"members_{p.replace(' + ', '_').replace(' ', '_')}": c
                                 for p, c in facts["paths"].items()},
                              "load_seconds": facts["load_seconds"], "fit_seconds": facts["fit_seconds"],
                              "list_seconds": facts["list_seconds"], "bytes": stored.total_bytes}])
    if args.action == "list":
        return list_recommenders(state)
    if args.action == "outcome":
        if not args.campaign:
            raise UsageError(_("outcome needs --campaign ID"))
        link = campaign_link(state, args.campaign)
        if link is None:
            raise UsageError(_("no recommendations were recorded for campaign {campaign}: export them with {command} "
                               "and that campaign key first").format(
                campaign=args.campaign, command="`recommend export --spec AUDIENCE.json`"))
        result = recommendation_outcome(ctx.engine, link, StoredLists(load_recommender(state, link.version)))
        print(_("verdict: {verdict}").format(verdict=result.verdict), file=sys.stderr)
        return outcome_table(result)
    stored = load_recommender(state, args.version)
    if args.action == "for":
        if not args.member:
            raise UsageError(_("for needs --member ID"))
        lists = StoredLists(stored, verify=False)
        rows = lists.rows([args.member.strip()], args.n)
        if rows.empty:
            raise UsageError(_("member {member} has no list in {label} (trained on data up to {day}): check the id, "
                               "or train a new version to include newer members").format(
                member=args.member, label=stored.label, day=stored.as_of))
        print(_("note: {label} ({algorithm}), history to {day}").format(label=stored.label, algorithm=stored.algorithm,
                                                                       day=stored.as_of), file=sys.stderr)
        return rows[LIST_COLUMNS]
    if args.spec is None:
        raise UsageError(_("export needs --spec AUDIENCE.json"))
    audience = _read_spec(args.spec)
    campaign = args.campaign if args.campaign is not None else audience.campaign_key
    export, link = linked_export(state, stored, args.n or stored.list_length, campaign.strip() or None)
    if link is not None and (link.version, link.list_length) != (stored.version, args.n or stored.list_length):
        print(_("note: campaign {campaign} was exported with the top {n} of v{version}; exporting those again").format(
            campaign=link.campaign_id, n=link.list_length, version=link.version), file=sys.stderr)
    rows = export_recommendations(ctx.engine, audience, export, cli_principal(), "cli",
                                  lambda who, action, detail, rows: log_event(state, who.identity, action, detail,
                                                                              rows=rows), ctx.scope).frame
    print((_("note: {members:,} members x up to {n} items from {label}, recorded for campaign {campaign}")
           if export.campaign_id else _("note: {members:,} members x up to {n} items from {label}")).format(
        members=rows["member_id"].nunique(), n=export.n, label=export.stored.label, campaign=export.campaign_id),
          file=sys.stderr)
    return rows

