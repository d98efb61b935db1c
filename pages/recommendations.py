"""Recommendations: each member's top products with a reason in words, next to what they bought; the algorithms
evaluated out of time against the popularity baseline; how every member is served."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.access import ACTIONS, TRAIN_MODELS, allowed
from analytics.errors import MemberLensError
from analytics.recommend_eval import compare_with_baseline, comparison_sentence
from analytics.recommend_lists import MAX_N, PATHS, UNKNOWN_CATEGORY, ListSettings, default_rebuy_categories
from analytics.recommend_metrics import METRICS
from analytics.recommend_store import find_members, member_list, path_shares, recent_purchases, settings_from_json
from analytics.recommenders import ALGORITHMS, DEFAULT_ALGORITHM
from analytics.storage.recommender_registry import StoredRecommender, list_recommenders
from ui.app_state import app_state
from ui.context import page_inputs
from ui.format import change_pct, count, plain_text, share
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
    "personal": "Members whose whole list comes from their own purchase history.",
    "personal + popular": "Members with some personal picks, the rest of the list filled with their segment's "
                          "popular products.",
    "segment popular": "Cold start: members without purchase history, served the products popular in their "
                       "segment (tier, region, acquisition channel, backing off to broader segments).",
    "popular overall": "Cold start: members without history whose segments are too small, served the shop's "
                       "best sellers.",
}
SHOWN_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "catalogue_coverage", "member_coverage",
                 "diversity", "novelty", "self_information", "head_share")

st.title("Recommendations")
st.caption("Every member's top products, each with the reason in words. Lists come from the latest stored "
           "recommender; training is a batch job (`python -m analytics recommend train` from cron, or the button "
           "below), never done while you watch. Campaign targeting exports them per audience.")


def train_form(key: str, expanded: bool) -> StoredRecommender | None:
    """The training form; the version it stored when its button was pressed."""
    with st.expander("Train a new version", icon=":material/model_training:", expanded=expanded):
        algorithm = st.selectbox("Algorithm", list(ALGORITHMS), index=list(ALGORITHMS).index(DEFAULT_ALGORITHM),
                                 format_func=lambda a: ALGORITHMS[a][0], key=f"{key}_algorithm",
                                 help="The hybrid is the default: the best precision, recall and NDCG out of time on "
                                      "the demo and on Online Retail (see the Evaluation tab).")
        n = st.number_input("Items stored per member", 1, MAX_N, 10, key=f"{key}_n")
        may_train = allowed(ctx.principal, TRAIN_MODELS)
        if st.button("Train and store", icon=":material/play_arrow:", key=f"{key}_train", disabled=not may_train,
                     help="Fits on every purchase, makes every member's list with the default settings and stores "
                          "them as a new version; older versions are kept." if may_train else
                          f"Your role may not {ACTIONS[TRAIN_MODELS]}."):
            return train_now(ctx.engine, algorithm, ListSettings(n=int(n)))
    return None


stored = current_version()
if stored is None:
    if app_state() is not None:
        st.info("No recommender has been trained yet. Train one here (about ten seconds on the 50,000-member demo), "
                "or run `python -m analytics recommend train`.", icon=":material/recommend:")
        stored = train_form("rec_first", True)
    if stored is None:
        st.stop()

(st.warning if stored.stale else st.caption)(f"Using {age_note(stored)}"
                                             + (": older than a week, train a new version." if stored.stale else "."))
members = int(stored.summary["members"])
cards = st.columns(len(PATHS))
for column, (path, part) in zip(cards, path_shares(stored).items(), strict=True):
    column.metric(f"Served: {path}", share(part), border=True,
                  help=PATH_HELP[path] + f" Share of the {count(members)} members of {stored.label}.")
st.caption(f"Every one of the {count(members)} members registered by {stored.as_of:%d %b %Y} has a list of "
           f"{stored.list_length} (member coverage 100 %).")

member_tab, evaluation_tab, versions_tab = st.tabs(["For a member", "Evaluation", "Versions"], key="rec_tab",
                                                   on_change="rerun")
data, index = cached_purchases(ctx.engine)
categories = [*data.products.categories, UNKNOWN_CATEGORY]
kept = settings_from_json(stored.settings)


def list_settings() -> ListSettings:
    """The settings widgets (defaults: the version's own settings)."""
    with st.expander("List settings", icon=":material/tune:"):
        cols = st.columns(4)
        n = cols[0].slider("Items", 1, 50, min(kept.n, 50), key="rec_n")
        exclude_bought = cols[1].toggle("Leave out products already bought", kept.exclude_bought,
                                        key="rec_exclude_bought",
                                        help="Except the categories bought again (below).")
        cap = cols[2].number_input("At most per category (0 = no cap)", 0, int(n),
                                   min(kept.max_per_category or 0, int(n)), key="rec_cap",
                                   help="Diversity: a list holds at most this many products of one category.")
        rebuy_default = kept.rebuy_categories if kept.rebuy_categories is not None else \
            default_rebuy_categories(data.products.categories)
        rebuy = cols[3].multiselect("Bought again", categories, [c for c in rebuy_default if c in categories],
                                    key="rec_rebuy", disabled=not exclude_bought,
                                    help="Consumables: products of these categories are recommended again though "
                                         "bought. Default: groceries, food, beauty, pets, baby … and products "
                                         "without a category.")
        excluded = st.multiselect("Never recommend these categories", categories,
                                  [c for c in kept.exclude_categories if c in categories], key="rec_excluded")
    return ListSettings(n=int(n), exclude_bought=exclude_bought, rebuy_categories=tuple(rebuy),
                        exclude_categories=tuple(excluded), max_per_category=int(cap) or None)


if member_tab.open:
    with member_tab:
        settings = list_settings()
        text = st.text_input("Member id", value=st.query_params.get("member", ""), key="rec_member",
                             placeholder="e.g. M00000007, or the start of an id",
                             help="Finds members whose id is, or starts with, what you type.").strip()
        if not text:
            st.caption("Type a member id (or open `/recommendations?member=ID`) to see their list.")
        else:
            found = find_members(data, text, 21, index)
            member_id = None
            if not found:
                st.info(f"No member id is or starts with “{plain_text(text[:60])}”.", icon=":material/person_search:")
            elif len(found) == 1:
                member_id = found[0]
            else:
                st.caption(f"{'More than 20' if len(found) > 20 else len(found)} members match: pick one.")
                member_id = st.selectbox("Member", found[:20], key="rec_pick")
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
                st.markdown(f"**{plain_text(member_id)}** · {segment['tier'] or 'no'} tier · "
                            f"{segment['region'] or 'unknown region'} · joined via "
                            f"{(segment['acquisition_channel'] or 'unknown').replace('_', ' ')} · served: "
                            f"**{rows['path'].iloc[0]}**", help=PATH_HELP[rows["path"].iloc[0]])
                left, right = st.columns([2, 1])
                left.markdown(f"**Top {settings.n}**")
                left.dataframe(rows[["rank", "product", "reason", "category", "score"]], hide_index=True,
                               key="rec_list", column_config={
                                   "rank": st.column_config.NumberColumn("#", width=40),
                                   "product": st.column_config.TextColumn("Product", width=230),
                                   "reason": st.column_config.TextColumn("Why", width=430),
                                   "category": st.column_config.TextColumn("Category", width=100),
                                   "score": st.column_config.NumberColumn("Score", format="%.4f", help="The model's "
                                                                          "score; popular fills show the share of "
                                                                          "the segment's recent buyers.")})
                bought = recent_purchases(data, code, 10)
                right.markdown("**Bought recently**")
                if bought.empty:
                    right.caption("Nothing yet: this member is served by popular lists (cold start).")
                else:
                    right.dataframe(bought[["product", "last_bought", "orders", "category"]], hide_index=True,
                                    key="rec_bought", column_config={
                                        "product": st.column_config.TextColumn("Product", width=210),
                                        "last_bought": st.column_config.DateColumn("Last bought",
                                                                                   format="D MMM YYYY", width=95),
                                        "orders": st.column_config.NumberColumn("Orders", width=55, help="Completed "
                                                                                "orders holding it."),
                                        "category": "Category"})
                st.caption(f"Made now by {stored.label} over the purchases up to {data.history_end:%d %b %Y}. The "
                           "campaign export uses the lists stored with the version "
                           f"({stored.list_length} per member, made on {stored.as_of:%d %b %Y}).")

if evaluation_tab.open:
    with evaluation_tab:
        cols = st.columns([1, 1, 4])
        k = cols[0].selectbox("k (list length)", [5, 10, 20], index=1, key="rec_eval_k")
        horizon = cols[1].selectbox("Test window (days)", [14, 30, 60, 90], index=1, key="rec_eval_horizon")
        algorithms = cols[2].multiselect("Algorithms", list(ALGORITHMS), list(ALGORITHMS), key="rec_eval_algorithms",
                                         format_func=lambda a: ALGORITHMS[a][0])
        if not algorithms:
            st.info("Choose at least one algorithm.", icon=":material/checklist:")
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
        st.caption(f"Out of time: fitted on purchases up to {result.history_end:%d %b %Y}, tested on what members "
                   f"bought from then to {result.test_end:%d %b %Y} ({count(result.members_with_purchases)} of "
                   f"{count(result.members)} members bought). Every member gets a list; the measures of hits leave "
                   "out members who bought nothing.")
        versus = compare_with_baseline(table, k, stored.algorithm)
        if versus is not None:
            (st.success if versus.beats else st.warning)(f"In use ({stored.label}): {versus.sentence}",
                                                         icon=":material/science:")
            cards = st.columns(3)
            cards[0].metric(f"Recall@{k}, {versus.label.split(' (')[0]}", f"{versus.value:.3f}", border=True,
                            help=METRICS["recall"].help)
            cards[1].metric(f"Recall@{k}, popularity baseline", f"{versus.baseline_value:.3f}", border=True,
                            help=f"The better of the two baselines: {versus.baseline_label.lower()}. "
                                 + METRICS["recall"].help)
            cards[2].metric("Better than the baseline by", change_pct(versus.change) or "–", border=True,
                            help="Relative difference of recall@k: in use / baseline − 1.")
        best = comparison_sentence(table, k)
        if versus is None or best != versus.sentence:
            st.info(f"Best of those evaluated: {best}", icon=":material/leaderboard:")
        shown = table[["label", *SHOWN_METRICS, "fit_seconds", "list_seconds"]]
        st.dataframe(shown, hide_index=True, key="rec_eval_table", column_config={
            "label": st.column_config.TextColumn("Algorithm", width="medium"),
            **{name: st.column_config.NumberColumn(METRICS[name].label.replace("@k", f"@{k}"), format="%.4f",
                                                   help=METRICS[name].help) for name in SHOWN_METRICS},
            "fit_seconds": st.column_config.NumberColumn("Fit (s)", format="%.1f"),
            "list_seconds": st.column_config.NumberColumn("Lists (s)", format="%.1f")})
        with st.expander("The measures", icon=":material/help:"):
            st.markdown("\n".join(f"- **{METRICS[name].label}**: {METRICS[name].help}" for name in SHOWN_METRICS))
        by_path = result.by_path.assign(algorithm=lambda f: f["algorithm"].map(lambda a: ALGORITHMS[a][0]))
        st.markdown(f"**Recall@{k} by how members were served**")
        st.dataframe(by_path, hide_index=True, key="rec_eval_paths", column_config={
            "algorithm": "Algorithm", "path": "Served", "members": st.column_config.NumberColumn(
                "Members", format="localized"),
            "members_with_purchases": st.column_config.NumberColumn("Bought in the window", format="localized"),
            "recall": st.column_config.NumberColumn(f"Recall@{k}", format="%.4f")})

if versions_tab.open:
    with versions_tab:
        state = app_state()
        if state is not None:
            versions = list_recommenders(state)
            versions["algorithm"] = versions["algorithm"].map(lambda a: ALGORITHMS.get(a, (a,))[0])
            st.dataframe(pd.DataFrame(versions), hide_index=True, key="rec_versions", column_config={
                "version": "Version", "algorithm": "Algorithm", "as_of": st.column_config.DateColumn("History to"),
                "list_length": "Items per member", "members": st.column_config.NumberColumn("Members",
                                                                                             format="localized"),
                "total_bytes": st.column_config.NumberColumn("Stored bytes", format="compact"),
                "author": "Trained by", "created_at": st.column_config.DatetimeColumn("Trained (UTC)",
                                                                                      format="YYYY-MM-DD HH:mm")})
        if train_form("rec_more", False) is not None:
            st.success("Stored: reload the page to use the new version.", icon=":material/check:")
