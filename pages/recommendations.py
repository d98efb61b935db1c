"""Recommendations: each member's top products with a reason in words, next to what they bought; the algorithms
evaluated out of time against the popularity baseline; how every member is served."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.access import ACTIONS, TRAIN_MODELS, allowed
from analytics.errors import MemberLensError
from analytics.i18n import _, format_day
from analytics.recommend_eval import compare_with_baseline, comparison_sentence
from analytics.recommend_lists import (
    MAX_N,
    PATH_LABELS,
    PATHS,
    UNKNOWN_CATEGORY,
    ListSettings,
    default_rebuy_categories,
)
from analytics.recommend_metrics import METRICS
from analytics.recommend_store import find_members, member_list, path_shares, recent_purchases, settings_from_json
from analytics.recommenders import ALGORITHMS, DEFAULT_ALGORITHM
from analytics.storage.recommender_registry import StoredRecommender, list_recommenders
from ui.app_state import app_state
from ui.context import page_inputs
from ui.format import change_pct, count, label, plain_text, share
from ui.recommendations import (
    age_note,
    cached_evaluation,
    cached_maker,
    cached_purchases,
    current_version,
    train_now,
)

ctx = page_inputs("recommendations")
PATH_HELP = {
    "personal": _("Members whose whole list comes from their own purchase history."),
    "personal + popular": _("Members with some personal picks, the rest of the list filled with their segment's "
                            "popular products."),
    "segment popular": _("Cold start: members without purchase history, served the products popular in their "
                         "segment (tier, region, acquisition channel, backing off to broader segments)."),
    "popular overall": _("Cold start: members without history whose segments are too small, served the shop's "
                         "best sellers."),
}


def path_label(path: str) -> str:
    return _(PATH_LABELS.get(path, path))


def algorithm_label(algorithm: str) -> str:
    return _(ALGORITHMS[algorithm][0]) if algorithm in ALGORITHMS else algorithm


def category_label(category: str) -> str:
    """A category as stored, but the pseudo-category of products without one in the reader's language."""
    return _(UNKNOWN_CATEGORY) if category == UNKNOWN_CATEGORY else category
SHOWN_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "catalogue_coverage", "member_coverage",
                 "diversity", "novelty", "self_information", "head_share")

st.title(_("Recommendations"))
st.caption(_("Every member's top products, each with the reason in words. Lists come from the latest stored "
             "recommender; training is a batch job ({command} from cron, or the button below), never done while you "
             "watch. Campaign targeting exports them per audience.").format(
    command="`python -m analytics recommend train`"))


def train_form(key: str, expanded: bool) -> StoredRecommender | None:
    """The training form; the version it stored when its button was pressed."""
    with st.expander(_("Train a new version"), icon=":material/model_training:", expanded=expanded):
        algorithm = st.selectbox(_("Algorithm"), list(ALGORITHMS), index=list(ALGORITHMS).index(DEFAULT_ALGORITHM),
                                 format_func=algorithm_label, key=f"{key}_algorithm",
                                 help=_("The hybrid is the default: the best precision, recall and NDCG out of time "
                                        "on the demo and on {dataset} (see the Evaluation tab).").format(
                                     dataset="Online Retail"))
        n = st.number_input(_("Items stored per member"), 1, MAX_N, 10, key=f"{key}_n")
        may_train = allowed(ctx.principal, TRAIN_MODELS)
        if st.button(_("Train and store"), icon=":material/play_arrow:", key=f"{key}_train", disabled=not may_train,
                     help=_("Fits on every purchase, makes every member's list with the default settings and stores "
                            "them as a new version; older versions are kept.") if may_train else
                          _("Your role may not {action}.").format(action=_(ACTIONS[TRAIN_MODELS]))):
            return train_now(ctx.engine, algorithm, ListSettings(n=int(n)))
    return None


stored = current_version()
if stored is None:
    if app_state() is not None:
        st.info(_("No recommender has been trained yet. Train one here (about ten seconds on the 50,000-member "
                  "demo), or run {command}.").format(command="`python -m analytics recommend train`"),
                icon=":material/recommend:")
        stored = train_form("rec_first", True)
    if stored is None:
        st.stop()

if stored.stale:
    st.warning(_("Using {version}: older than a week, train a new version.").format(version=age_note(stored)))
else:
    st.caption(_("Using {version}.").format(version=age_note(stored)))
members = int(stored.summary["members"])
cards = st.columns(len(PATHS))
for column, (path, part) in zip(cards, path_shares(stored).items(), strict=True):
    column.metric(_("Served: {path}").format(path=path_label(path)), share(part), border=True,
                  help=_("{definition} Share of the {members} members of {version}.").format(
                      definition=PATH_HELP[path], members=count(members), version=stored.label))
st.caption(_("Every one of the {members} members registered by {day} has a list of {n} (member coverage 100 %).")
           .format(members=count(members), day=format_day(stored.as_of), n=stored.list_length))

member_tab, evaluation_tab, versions_tab = st.tabs([_("For a member"), _("Evaluation"), _("Versions")], key="rec_tab",
                                                   on_change="rerun")
data, index = cached_purchases(ctx.engine)
categories = [*data.products.categories, UNKNOWN_CATEGORY]
kept = settings_from_json(stored.settings)


def list_settings() -> ListSettings:
    """The settings widgets (defaults: the version's own settings)."""
    with st.expander(_("List settings"), icon=":material/tune:"):
        cols = st.columns(4)
        n = cols[0].slider(_("Items"), 1, 50, min(kept.n, 50), key="rec_n")
        exclude_bought = cols[1].toggle(_("Leave out products already bought"), kept.exclude_bought,
                                        key="rec_exclude_bought",
                                        help=_("Except the categories bought again (below)."))
        cap = cols[2].number_input(_("At most per category (0 = no cap)"), 0, int(n),
                                   min(kept.max_per_category or 0, int(n)), key="rec_cap",
                                   help=_("Diversity: a list holds at most this many products of one category."))
        rebuy_default = kept.rebuy_categories if kept.rebuy_categories is not None else \
            default_rebuy_categories(data.products.categories)
        rebuy = cols[3].multiselect(_("Bought again"), categories, [c for c in rebuy_default if c in categories],
                                    key="rec_rebuy", disabled=not exclude_bought, format_func=category_label,
                                    help=_("Consumables: products of these categories are recommended again though "
                                           "bought. Default: groceries, food, beauty, pets, baby … and products "
                                           "without a category."))
        excluded = st.multiselect(_("Never recommend these categories"), categories,
                                  [c for c in kept.exclude_categories if c in categories], key="rec_excluded",
                                  format_func=category_label)
    return ListSettings(n=int(n), exclude_bought=exclude_bought, rebuy_categories=tuple(rebuy),
                        exclude_categories=tuple(excluded), max_per_category=int(cap) or None)


if member_tab.open:
    with member_tab:
        settings = list_settings()
        text = st.text_input(_("Member id"), value=st.query_params.get("member", ""), key="rec_member",
                             placeholder=_("e.g. M00000007, or the start of an id"),
                             help=_("Finds members whose id is, or starts with, what you type.")).strip()
        if not text:
            st.caption(_("Type a member id (or open {link}) to see their list.").format(
                link="`/recommendations?member=ID`"))
        else:
            found = find_members(data, text, 21, index)
            member_id = None
            if not found:
                st.info(_("No member id is or starts with “{text}”.").format(text=plain_text(text[:60])),
                        icon=":material/person_search:")
            elif len(found) == 1:
                member_id = found[0]
            else:
                st.caption(_("More than 20 members match: pick one.") if len(found) > 20 else
                           _("{n} members match: pick one.").format(n=len(found)))
                member_id = st.selectbox(_("Member"), found[:20], key="rec_pick")
            if member_id is not None:
                st.query_params["member"] = member_id
                try:
                    maker = cached_maker(ctx.engine, stored, settings)
                    rows = member_list(maker, member_id, index)
                except MemberLensError as problem:
                    st.error(problem.message, icon=":material/tune:")
                    st.stop()
                code = int(index.get_indexer([member_id])[0])
                segment = data.members.segment_values(code)
                path = rows["path"].iloc[0]
                st.markdown(_("**{member}** · {tier} tier · {region} · joined via {channel} · served: **{path}**")
                            .format(member=plain_text(member_id),
                                    tier=label(segment["tier"]) if segment["tier"] else _("no"),
                                    region=segment["region"] or _("unknown region"),
                                    channel=label(segment["acquisition_channel"]) if segment["acquisition_channel"]
                                    else _("unknown"), path=path_label(path)), help=PATH_HELP[path])
                left, right = st.columns([2, 1])
                left.markdown(_("**Top {n}**").format(n=settings.n))
                left.dataframe(rows[["rank", "product", "reason", "category", "score"]]
                               .assign(category=lambda f: f["category"].map(category_label)), hide_index=True,
                               key="rec_list", column_config={
                                   "rank": st.column_config.NumberColumn("#", width=40),
                                   "product": st.column_config.TextColumn(_("Product"), width=230),
                                   "reason": st.column_config.TextColumn(_("Why"), width=430),
                                   "category": st.column_config.TextColumn(_("Category"), width=100),
                                   "score": st.column_config.NumberColumn(_("Score"), format="%.4f", help=_(
                                       "The model's score; popular fills show the share of the segment's recent "
                                       "buyers."))})
                bought = recent_purchases(data, code, 10)
                right.markdown(_("**Bought recently**"))
                if bought.empty:
                    right.caption(_("Nothing yet: this member is served by popular lists (cold start)."))
                else:
                    right.dataframe(bought[["product", "last_bought", "orders", "category"]]
                                    .assign(category=lambda f: f["category"].map(category_label)), hide_index=True,
                                    key="rec_bought", column_config={
                                        "product": st.column_config.TextColumn(_("Product"), width=210),
                                        "last_bought": st.column_config.DateColumn(_("Last bought"),
                                                                                   format="D MMM YYYY", width=95),
                                        "orders": st.column_config.NumberColumn(_("Orders"), width=55, help=_(
                                            "Completed orders holding it.")),
                                        "category": _("Category")})
                st.caption(_("Made now by {version} over the purchases up to {day}. The campaign export uses the "
                             "lists stored with the version ({n} per member, made on {made}).").format(
                    version=stored.label, day=format_day(data.history_end), n=stored.list_length,
                    made=format_day(stored.as_of)))

if evaluation_tab.open:
    with evaluation_tab:
        cols = st.columns([1, 1, 4])
        k = cols[0].selectbox(_("k (list length)"), [5, 10, 20], index=1, key="rec_eval_k")
        horizon = cols[1].selectbox(_("Test window (days)"), [14, 30, 60, 90], index=1, key="rec_eval_horizon")
        algorithms = cols[2].multiselect(_("Algorithms"), list(ALGORITHMS), list(ALGORITHMS),
                                         key="rec_eval_algorithms", format_func=algorithm_label)
        if not algorithms:
            st.info(_("Choose at least one algorithm."), icon=":material/checklist:")
            st.stop()
        cap = kept.max_per_category
        settings = ListSettings(n=k, exclude_bought=kept.exclude_bought, rebuy_categories=kept.rebuy_categories,
                                exclude_categories=kept.exclude_categories,
                                max_per_category=min(cap, k) if cap else None)
        try:
            result = cached_evaluation(ctx.engine, int(horizon), int(k), tuple(algorithms), settings)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/science:")
            st.stop()
        table = result.table
        st.caption(_("Out of time: fitted on purchases up to {start}, tested on what members bought from then to "
                     "{end} ({buyers} of {members} members bought). Every member gets a list; the measures of hits "
                     "leave out members who bought nothing.").format(
            start=format_day(result.history_end), end=format_day(result.test_end),
            buyers=count(result.members_with_purchases), members=count(result.members)))
        recall = _(METRICS["recall"].label).replace("@k", f"@{k}")
        versus = compare_with_baseline(table, k, stored.algorithm)
        if versus is not None:
            (st.success if versus.beats else st.warning)(
                _("In use ({version}): {sentence}").format(version=stored.label, sentence=versus.sentence),
                icon=":material/science:")
            cards = st.columns(3)
            short = _(versus.label).split(" (")[0].split("（")[0]
            cards[0].metric(_("{measure}, {algorithm}").format(measure=recall, algorithm=short),
                            f"{versus.value:.3f}", border=True, help=_(METRICS["recall"].help))
            cards[1].metric(_("{measure}, popularity baseline").format(measure=recall),
                            f"{versus.baseline_value:.3f}", border=True,
                            help=_("The better of the two baselines: {baseline}. {definition}").format(
                                baseline=_(versus.baseline_label).lower(), definition=_(METRICS["recall"].help)))
            cards[2].metric(_("Better than the baseline by"), change_pct(versus.change) or "–", border=True,
                            help=_("Relative difference of recall@k: in use / baseline − 1."))
        best = comparison_sentence(table, k)
        if versus is None or best != versus.sentence:
            st.info(_("Best of those evaluated: {sentence}").format(sentence=best), icon=":material/leaderboard:")
        shown = table[["label", *SHOWN_METRICS, "fit_seconds", "list_seconds"]].assign(
            label=lambda f: f["label"].map(_))
        st.dataframe(shown, hide_index=True, key="rec_eval_table", column_config={
            "label": st.column_config.TextColumn(_("Algorithm"), width="medium"),
            **{name: st.column_config.NumberColumn(_(METRICS[name].label).replace("@k", f"@{k}"), format="%.4f",
                                                   help=_(METRICS[name].help)) for name in SHOWN_METRICS},
            "fit_seconds": st.column_config.NumberColumn(_("Fit (s)"), format="%.1f"),
            "list_seconds": st.column_config.NumberColumn(_("Lists (s)"), format="%.1f")})
        with st.expander(_("The measures"), icon=":material/help:"):
            st.markdown("\n".join(f"- **{_(METRICS[name].label)}**: {_(METRICS[name].help)}"
                                   for name in SHOWN_METRICS))
        by_path = result.by_path.assign(algorithm=lambda f: f["algorithm"].map(algorithm_label),
                                        path=lambda f: f["path"].map(path_label))
        st.markdown(_("**{measure} by how members were served**").format(measure=recall))
        st.dataframe(by_path, hide_index=True, key="rec_eval_paths", column_config={
            "algorithm": _("Algorithm"), "path": _("Served"), "members": st.column_config.NumberColumn(
                _("Members"), format="localized"),
            "members_with_purchases": st.column_config.NumberColumn(_("Bought in the window"), format="localized"),
            "recall": st.column_config.NumberColumn(recall, format="%.4f")})

if versions_tab.open:
    with versions_tab:
        state = app_state()
        if state is not None:
            versions = list_recommenders(state)
            versions["algorithm"] = versions["algorithm"].map(algorithm_label)
            st.dataframe(pd.DataFrame(versions), hide_index=True, key="rec_versions", column_config={
                "version": _("Version"), "algorithm": _("Algorithm"),
                "as_of": st.column_config.DateColumn(_("History to")),
                "list_length": _("Items per member"), "members": st.column_config.NumberColumn(_("Members"),
                                                                                                format="localized"),
                "total_bytes": st.column_config.NumberColumn(_("Stored bytes"), format="compact"),
                "author": _("Trained by"), "created_at": st.column_config.DatetimeColumn(_("Trained (UTC)"),
                                                                                         format="YYYY-MM-DD HH:mm")})
        if train_form("rec_more", False) is not None:
            st.success(_("Stored: reload the page to use the new version."), icon=":material/check:")
