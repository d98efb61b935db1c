"""``python -m analytics models train|list|show|score`` and ``python -m analytics clv``: predictions from the command
line, meant for cron (train daily or weekly; the app never retrains while a user watches).

Models live in the app-state database's registry (``MEMBERLENS_STATE_URL``, else ``data/app_state.sqlite``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from datetime import date

import pandas as pd

from analytics import predictions
from analytics.cli import Context, subcommand
from analytics.clv_sql import clv_member_frame, clv_parameters_frame
from analytics.commandline import iso_date
from analytics.errors import UsageError
from analytics.i18n import N_, _
from analytics.prediction_audiences import PinnedModel, store_scores
from analytics.storage.appstate import open_state, resolve_state_url
from analytics.storage.model_registry import MODEL_KINDS, StoredModel, latest_model, list_models, load_model, save_model
from analytics.storage.score_store import store_for

ACTIONS = ("train", "list", "show", "score")


def _author() -> str:
    try:
        return os.environ.get("MEMBERLENS_USER", "") or getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


def _models_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS,
                        help=_("train a new version, list versions, show a card, score members"))
    parser.add_argument("version", nargs="?",
                        help=_("with show: KIND or KIND:VERSION, e.g. churn:3 (default the latest)"))
    parser.add_argument("--model", choices=MODEL_KINDS, help=_("which model (train, score)"))
    parser.add_argument("--as-of", type=iso_date, help=_("train for this scoring day (default: the newest data day)"))
    parser.add_argument("--members", action="store_true", help=_("with score: one row per member instead of the bands"))


def _card_rows(stored: StoredModel) -> pd.DataFrame:
    card = stored.model["card"]
    if stored.kind == "clv":
        return pd.DataFrame(card["parameters"])
    rows = [{"model": stored.label, "candidate": name, **{k: v for k, v in measures.items()
                                                        if k in ("roc_auc", "pr_auc", "brier", "ece", "precision",
                                                                 "recall", "f1", "accuracy")}}
            for name, measures in card["metrics"].items()]
    return pd.DataFrame(rows)


@subcommand("models", N_(
            "Prediction models (churn, 30-day purchase propensity, CLV): train a new version for a scoring "
            "day (out-of-time test, the better of a logistic regression and boosted trees by PR AUC; BG/NBD and "
            "Gamma-Gamma for CLV), list the stored versions, show a model card's figures, or score every member in "
            "the warehouse. Dates, channels and tiers other than --as-of are ignored."), _models_options)
def _models(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    state = open_state(resolve_state_url())
    if args.action == "list":
        return list_models(state)
    if args.action == "show":
        kind, _colon, number = (args.version or args.model or "").partition(":")
        if kind not in MODEL_KINDS:
            raise UsageError(_("show takes KIND or KIND:VERSION with KIND one of {kinds}").format(
                kinds=", ".join(MODEL_KINDS)))
        if number and not number.isdigit():
            raise UsageError(_("{number} is not a version number").format(number=repr(number)))
        stored = load_model(state, kind, int(number) if number else None)
        print(_("note: {model} ({algorithm}) for {day}, trained by {author} on {trained} UTC").format(
            model=stored.label, algorithm=stored.algorithm, day=stored.as_of, author=stored.author,
            trained=f"{stored.created_at:%Y-%m-%d %H:%M}"), file=sys.stderr)
        return _card_rows(stored)
    if args.model is None:
        raise UsageError(_("{action} needs --model ({kinds})").format(action=args.action,
                                                                      kinds=", ".join(MODEL_KINDS)))
    if args.action == "train":
        trained = (predictions.train_clv(ctx.engine, args.as_of) if args.model == "clv"
                   else predictions.train_classifier(ctx.engine, args.model, args.as_of))
        algorithm = trained["card"].get("algorithm", "bgnbd+gammagamma")
        stored = save_model(state, args.model, algorithm, date.fromisoformat(trained["card"]["as_of"]), trained,
                            _author())
        print((_("note: stored {model} ({algorithm}): {why}") if "why" in trained["card"] else
               _("note: stored {model} ({algorithm})")).format(model=stored.label, algorithm=algorithm,
                                                              why=trained["card"].get("why")), file=sys.stderr)
        _keep_scores(ctx, stored)
        return _card_rows(stored)
    stored = latest_model(state, args.model)
    if stored is None:
        raise UsageError(_("there is no {model} model yet: run {command} first").format(
            model=args.model, command=f"`python -m analytics models train --model {args.model}`"))
    models = predictions.Models.from_stored({args.model: stored.model})
    store = store_for(ctx.engine.dialect)
    state = store.state() if store is not None else ""  # before scoring: see store_scores
    scores = predictions.score_members(ctx.engine, models, stored.as_of)
    print(_("note: {n:,} members scored with {model} as of {day}").format(n=len(scores), model=stored.label,
                                                                          day=stored.as_of), file=sys.stderr)
    _keep_scores(ctx, stored, (state, scores))
    if args.members or args.model == "clv":
        return scores
    column = "churn_risk" if args.model == "churn" else "purchase_propensity"
    bands = predictions.band_of(scores[column])
    table = scores.groupby(bands, sort=False)[column].agg(["size", "mean"]).rename(
        columns={"size": "members", "mean": f"mean_{column}"}).rename_axis("band")
    return table.reindex([band[0] for band in predictions.BANDS]).dropna(how="all").reset_index()


def _keep_scores(ctx: Context, stored: StoredModel, computed: tuple[str, pd.DataFrame] | None = None) -> None:
    """Keep the model's scores in an embedded warehouse's score store, for targeting conditions to read
    (``computed``: as :func:`analytics.prediction_audiences.store_scores` takes it)."""
    started = time.perf_counter()
    kept = store_scores(ctx.engine, PinnedModel.from_stored(stored), stored.as_of, computed)
    if kept is not None:
        print(_("note: scores of {model} on {day} kept for targeting conditions ({seconds} s): {path}").format(
            model=stored.label, day=stored.as_of, seconds=f"{time.perf_counter() - started:.1f}", path=kept),
            file=sys.stderr)


def _clv_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration-end", type=iso_date, help=_("use the completed orders up to this day "
                        "(default: the newest data day)"))
    parser.add_argument("--unit", choices=("week", "day"), default="week", help=_("time unit of the models "
                        "(default week)"))
    parser.add_argument("--params", action="store_true", help=_("print the fitted parameters (model, parameter, value) "
                        "instead of one row per member"))


@subcommand("clv", N_("Customer lifetime value from the completed orders up to a day: BG/NBD and Pareto/NBD for repeat "
            "purchasing, Gamma-Gamma for spend; per member the expected orders in the next 12 months, the "
            "probability of being active, the expected spend and the CLV, or with --params the fitted parameters."),
            _clv_options)
def _clv(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    end = args.calibration_end or ctx.end
    if args.params:
        return clv_parameters_frame(ctx.engine, end, args.unit)
    return clv_member_frame(ctx.engine, end, args.unit, monthly_discount=0.0)

