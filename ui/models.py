"""The prediction models the app uses: the newest stored version of each kind in the registry (app-state database),
and explicit training with progress (never silently while a user watches)."""

from __future__ import annotations

from datetime import date

import streamlit as st
from sqlalchemy import Engine

from analytics import predictions
from analytics.access import TRAIN_MODELS, require
from analytics.errors import MemberLensError
from analytics.i18n import N_, _, format_day
from analytics.prediction_audiences import PinnedModel, store_scores
from analytics.storage.appstate import resolve_state_url
from analytics.storage.model_registry import MODEL_KINDS, STALE_AFTER_DAYS, StoredModel, latest_model, save_model
from ui.app_state import app_state, record
from ui.context import current_principal


@st.cache_resource(ttl=60, show_spinner=False)
def _latest(url: str, kind: str) -> StoredModel | None:
    """The newest stored version of ``kind`` (read at most once a minute per server: models are large)."""
    state = app_state()
    return None if state is None else latest_model(state, kind)


def forget_models() -> None:
    """Read the registry again on the next run (after training, or "Refresh data")."""
    _latest.clear()


def stored_models() -> dict[str, StoredModel]:
    """The newest version of each kind that has one (empty without an app-state database)."""
    if app_state() is None:
        return {}
    found = {}
    for kind in MODEL_KINDS:
        try:
            stored = _latest(resolve_state_url(), kind)
        except MemberLensError as problem:
            st.warning(problem.message, icon=":material/warning:")
            continue
        if stored is not None:
            found[kind] = stored
    return found


def scoring_models(stored: dict[str, StoredModel]) -> predictions.Models:
    return predictions.Models.from_stored({kind: s.model for kind, s in stored.items()})


def pinned(stored: dict[str, StoredModel]) -> dict[str, PinnedModel]:
    """The models a typed prediction condition pins, by kind."""
    return {kind: PinnedModel.from_stored(s) for kind, s in stored.items()}


#: Models as sentences name them ("Training the churn model", "No CLV model yet").
KIND_NAMES = {"churn": N_("churn model"), "propensity": N_("propensity model"), "clv": N_("CLV model")}


def kind_name(kind: str) -> str:
    return _(KIND_NAMES[kind]) if kind in KIND_NAMES else f"{kind} model"


def kind_label(kind: str) -> str:
    """A model kind as a reader names it: ``churn`` -> ``Churn risk`` (``流失风险``), ``clv`` -> ``CLV``."""
    return _(predictions.KINDS[kind].label) if kind in predictions.KINDS else "CLV"


def age_note(stored: StoredModel) -> tuple[str, bool]:
    """``("churn v3 (gbdt), trained 2 days ago for 15 Nov 2026", stale)``."""
    days = stored.age_days()
    when = (_("today") if days < 1 else _("{n} day ago") if days < 1.5 else _("{n} days ago")).format(n=f"{days:.0f}")
    return (_("{model} ({algorithm}), trained {when} by {author} for {day}").format(
        model=stored.label, algorithm=stored.algorithm, when=when, author=stored.author,
        day=format_day(stored.as_of)), days > STALE_AFTER_DAYS)


def train_now(engine: Engine, kinds: tuple[str, ...], as_of: date) -> None:
    """Train new versions of ``kinds`` for ``as_of`` with a progress display, store them, and rerun."""
    principal = current_principal()
    require(principal, TRAIN_MODELS)
    state = app_state()
    if state is None:
        return
    with st.status(_("Training the models…"), expanded=True) as status:
        for kind in kinds:
            status.write(_("Training the {model}: features in the warehouse, two candidates, out-of-time test…")
                         .format(model=kind_name(kind)))
            try:
                trained = (predictions.train_clv(engine, as_of) if kind == "clv"
                           else predictions.train_classifier(engine, kind, as_of))
            except MemberLensError as problem:
                status.update(label=_("The {model} could not be trained").format(model=kind_name(kind)),
                              state="error")
                st.error(problem.message, icon=":material/query_stats:")
                return
            record(principal, "train_model", {"page": "predictions", "model": kind, "as_of": as_of.isoformat()})
            stored = save_model(state, kind, trained["card"].get("algorithm", "bgnbd+gammagamma"), as_of, trained,
                                principal.identity)
            status.write(_("Keeping the {model}'s scores for Campaign targeting…").format(model=kind_name(kind)))
            store_scores(engine, PinnedModel.from_stored(stored), as_of)
        status.update(label=_("Models trained and stored"), state="complete", expanded=False)
    forget_models()
    st.rerun()
