"""Recommendations as pages use them: the stored version in use, the purchases and list makers kept in memory
(``st.cache_resource``: shared, not copied), training on request, the campaign download and the experiment outcome.

Training never happens while a user merely watches: a page trains only when its button is pressed; cron runs
``python -m analytics recommend train``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from analytics.access import TRAIN_MODELS, require
from analytics.audiences import Audience
from analytics.errors import MemberLensError
from analytics.i18n import _, format_day
from analytics.recommend_data import RecommendData, load_data
from analytics.recommend_eval import Evaluation, evaluate
from analytics.recommend_lists import ListMaker, ListSettings
from analytics.recommend_models import Recommender
from analytics.recommend_outcome import HELP, RecommendationOutcome, recommendation_outcome
from analytics.recommend_store import (
    StoredLists,
    linked_export,
    load_model,
    member_index,
    train_version,
)
from analytics.recommenders import ALGORITHMS
from analytics.storage.recommender_registry import (
    CampaignLink,
    StoredRecommender,
    campaign_link,
    latest_recommender,
    load_recommender,
)
from ui.app_state import app_state, record
from ui.cached import cached, shared
from ui.context import current_principal
from ui.format import change_pp, count, share


def current_version() -> StoredRecommender | None:
    """The latest stored version (None without one, or without an app-state database, after saying why)."""
    state = app_state()
    if state is None:
        return None
    try:
        return latest_recommender(state)
    except MemberLensError as problem:
        st.warning(problem.message, icon=":material/warning:")
        return None


def age_note(stored: StoredRecommender) -> str:
    """'v3 (Hybrid …), trained 2 days ago by ana on purchases up to 15 Nov 2026'."""
    days = stored.age_days()
    when = (_("today") if days < 1 else _("{n} day ago") if days < 1.5 else _("{n} days ago")).format(n=f"{days:.0f}")
    return _("{version} ({algorithm}), trained {when} by {author} on purchases up to {day}").format(
        version=stored.label, algorithm=_(ALGORITHMS.get(stored.algorithm, (stored.algorithm,))[0]), when=when,
        author=stored.author, day=format_day(stored.as_of))


def _version_key(stored: StoredRecommender) -> tuple[int, str, str]:
    return stored.version, str(stored.folder), stored.files["model.npz"]["sha256"]


@shared("Reading every member's purchases from the warehouse…", max_entries=1)
def cached_purchases(engine: Engine) -> tuple[RecommendData, pd.Index]:
    """Every member's purchases (CSR, codes only) and the id index: shared by every session, read once per ten
    minutes."""
    data = load_data(engine)
    return data, member_index(data)


@shared("Loading the recommender…", max_entries=2)
def _cached_model(key: tuple[int, str, str]) -> Recommender:
    state = app_state()
    assert state is not None
    stored = load_recommender(state, key[0])
    if _version_key(stored) != key:
        raise MemberLensError(_("The stored recommender changed while it was loaded."), _("Reload the page."))
    return load_model(stored)


def cached_model(stored: StoredRecommender) -> Recommender:
    return _cached_model(_version_key(stored))


@shared("Preparing the lists…", max_entries=4)
def _cached_maker(engine: Engine, key: tuple[int, str, str], settings: ListSettings) -> ListMaker:
    data, _ = cached_purchases(engine)
    return ListMaker(_cached_model(key), data, settings)


def cached_maker(engine: Engine, stored: StoredRecommender, settings: ListSettings) -> ListMaker:
    """A list maker of the version's model over the warehouse's current purchases, under ``settings``: one per
    version and settings, kept while used, so one member's list costs only its own scoring."""
    return _cached_maker(engine, _version_key(stored), settings)


@shared("Reading the stored lists…", max_entries=2)
def _cached_lists(key: tuple[int, str, str]) -> StoredLists:
    state = app_state()
    assert state is not None
    return StoredLists(load_recommender(state, key[0]))


def cached_lists(stored: StoredRecommender) -> StoredLists:
    return _cached_lists(_version_key(stored))


@cached("Evaluating the algorithms out of time: each is fitted on the history and tested on the last days…",
        max_entries=8)
def cached_evaluation(engine: Engine, horizon_days: int, k: int, algorithms: tuple[str, ...],
                      settings: ListSettings) -> Evaluation:
    return evaluate(engine, None, horizon_days, k, algorithms, settings)


@cached("Reading the campaign's purchases of recommended items…", max_entries=16)
def cached_outcome(engine: Engine, link: CampaignLink) -> RecommendationOutcome:
    state = app_state()
    assert state is not None
    return recommendation_outcome(engine, link, _cached_lists(_version_key(load_recommender(state, link.version))))


def train_now(engine: Engine, algorithm: str, settings: ListSettings) -> StoredRecommender | None:
    """Train ``algorithm`` on all purchases and store every member's list as a new version, with a progress
    display; the new version (None when it could not be trained: the page says why)."""
    principal = current_principal()
    require(principal, TRAIN_MODELS)
    state = app_state()
    if state is None:
        return None
    with st.status(_("Training the recommender…"), expanded=True) as status:
        status.write(_("Reading the purchases, fitting, making every member's list and storing them…"))
        try:
            record(principal, "train_recommender", {"page": "recommendations", "algorithm": algorithm,
                                                    "list_length": settings.n})
            stored = train_version(engine, state, principal.identity, algorithm, None, settings)
        except MemberLensError as problem:
            status.update(label=_("The recommender could not be trained"), state="error")
            st.error(problem.message, icon=":material/recommend:")
            return None
        status.update(label=_("Stored {version}").format(version=stored.label), state="complete", expanded=False)
    return stored


# --- on other pages -----------------------------------------------------------------------------------------

def recommendation_download(engine: Engine, audience: Audience, *, key: str, actor: str, page: str,
                            campaign_id: str | None) -> None:
    """A download of the stored top N per member of ``audience`` (masked, audited through
    :func:`ui.member_sets.export_members`), recorded for ``campaign_id`` so its read-out can measure it."""
    from ui.member_sets import export_members, slug

    state = app_state()
    stored = current_version() if state is not None else None
    if stored is None:
        st.caption(_("Recommendations per member: none stored yet. Train a recommender on the **Recommendations** "
                     "page (or {command}).").format(command="`python -m analytics recommend train`"))
        return
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    n = left.number_input(_("Items per member"), 1, stored.list_length, stored.list_length, key=f"{key}_n",
                          help=_("{version} stores {n} items per member.").format(version=stored.label,
                                                                                  n=stored.list_length))
    try:
        export, link = linked_export(state, stored, int(n), campaign_id)
    except MemberLensError as problem:
        st.error(problem.message, icon=":material/recommend:")
        return
    right.download_button(_("Top {n} recommendations per member (CSV)").format(n=export.n),
                          lambda: export_members(engine, audience, actor, page, recommendations=export),
                          file_name=f"memberlens_recommendations_{slug(audience.describe())}.csv", mime="text/csv",
                          icon=":material/recommend:", key=f"{key}_csv", on_click="ignore",
                          help=_("One row per member and rank: product and the reason in words; personal data "
                                 "masked; the export is written to the audit log."))
    recorded = _("Recorded for campaign **{campaign}**, so its Experiment read-out measures \"recommended item "
                 "bought\" on these lists.").format(campaign=campaign_id) if campaign_id else \
        _("Give the audience a campaign key to have its read-out measure \"recommended item bought\".")
    if link is not None:
        recorded = _("Campaign **{campaign}** was exported with the top {n} of v{version} on {day}: the download "
                     "repeats exactly those lists.").format(campaign=link.campaign_id, n=link.list_length,
                                                            version=link.version, day=format_day(link.created_at))
    st.caption(_("From the stored lists of {version}. {recorded}").format(version=age_note(export.stored),
                                                                          recorded=recorded))


def outcome_view(engine: Engine, campaign_id: str) -> None:
    """The read-out's "recommended item bought" outcome, or a plain sentence that the campaign had none."""
    st.subheader(_("Recommended item bought"), help=_(HELP["recommended_bought"]))
    state = app_state()
    link = campaign_link(state, campaign_id) if state is not None else None
    if link is None:
        st.info(_("Campaign {campaign} is not a recommendation campaign: no recommendation export was recorded "
                  "with its campaign key, so there is no recommended item to measure. Export recommendations from "
                  "Campaign targeting with the campaign key {campaign} to make one.").format(campaign=campaign_id),
                icon=":material/recommend:")
        return
    try:
        result = cached_outcome(engine, link)
    except MemberLensError as problem:
        st.info(problem.message, icon=":material/recommend:")
        return
    t, c = result.treatment, result.control
    (st.success if result.p_value < 0.05 and result.lift > 0 else st.info)(result.verdict,
                                                                           icon=":material/recommend:")
    cards = st.columns(3)
    cards[0].metric(_("Recommended item bought, treatment"), share(t.rate, 2), border=True,
                    delta=_("{change} vs control").format(change=change_pp(result.lift, 2)), delta_color="normal",
                    help=_(HELP["recommended_bought"]))
    cards[1].metric(_("Recommended item bought, control"), share(c.rate, 2), border=True,
                    help=_(HELP["recommended_bought"]))
    cards[2].metric(_("Lift, recommended item"), change_pp(result.lift, 2) or "–", border=True,
                    delta=_("95%: {low} to {high}").format(low=change_pp(result.lift_ci[0], 2),
                                                          high=change_pp(result.lift_ci[1], 2)),
                    delta_color="off", delta_arrow="off",
                    help=_("{definition} p = {p}.").format(definition=_(HELP["lift"]), p=f"{result.p_value:.3g}"))
    left_out = result.without_list["treatment"] + result.without_list["control"]
    words = {"n": result.list_length, "version": result.version, "start": format_day(result.start.date()),
             "end": format_day(result.end.date()), "treatment": count(t.members), "control": count(c.members)}
    st.caption(_("Top {n} of recommender v{version}, window {start} to {end}; {treatment} treatment and {control} "
                 "control members with a stored list ({left_out} who joined after the version was trained are left "
                 "out).").format(left_out=count(left_out), **words) if left_out else
               _("Top {n} of recommender v{version}, window {start} to {end}; {treatment} treatment and {control} "
                 "control members with a stored list.").format(**words))
