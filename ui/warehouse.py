"""The app's connection to the warehouse: first-run demo build, cached engine, problem pages.

Everything here runs inside Streamlit; the logic it calls lives in :mod:`analytics.storage.warehouse`.
"""

from __future__ import annotations

import os
import threading
from datetime import date

import duckdb
import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from analytics.errors import MemberLensError, report_bug
from analytics.i18n import N_, _
from analytics.storage.databases import DatabaseConfig
from analytics.storage.warehouse import (
    WarehouseError,
    default_warehouse_path,
    explain_error,
    open_warehouse,
    resolve_warehouse_config,
    stopped_query,
)
from analytics.synthetic import DEFAULT_MEMBERS, MAX_MEMBERS, DemoSpec, generate_warehouse

_build_lock = threading.Lock()
#: Size of the demo built on first run; a smaller one starts faster on a slow machine.
DEMO_MEMBERS_ENV = "MEMBERLENS_DEMO_MEMBERS"

SOURCE_LABELS = {
    "environment": N_("from MEMBERLENS_WAREHOUSE_URL"),
    "secrets": N_("from .streamlit/secrets.toml"),
    "default": N_("embedded warehouse"),
}


def warehouse_config() -> DatabaseConfig:
    return resolve_warehouse_config()


@st.cache_resource(show_spinner=False, on_release=lambda engine: engine.dispose())
def _shared_engine(url: str) -> Engine:
    return open_warehouse(url)


def warehouse_engine(url: str) -> Engine:
    """One read-only engine per warehouse URL for the whole server (sessions share its pool); the spinner, shown
    only while a new connection is opened, in the session's language."""
    with st.spinner(_("Connecting to the warehouse…")):
        return _shared_engine(url)


warehouse_engine.clear = _shared_engine.clear  # type: ignore[attr-defined]


def forget_warehouse() -> None:
    """Drop cached results and connections, so the next run re-reads the warehouse: after a reload
    or a demo rebuild (which replaces the DuckDB file), or after fixing a problem."""
    from ui.cached import cached_baskets, cached_clusters  # the shared (cache_resource) analysis results
    from ui.models import forget_models

    st.cache_data.clear()
    cached_clusters.clear()
    cached_baskets.clear()
    forget_models()
    warehouse_engine.clear()


def needs_demo_build(config: DatabaseConfig) -> bool:
    """True on first run: no warehouse is configured and the embedded one does not exist yet."""
    return config.is_embedded_default and not default_warehouse_path().exists()


def build_demo_warehouse(config: DatabaseConfig) -> None:
    """The first-run page: build the embedded demo warehouse with a progress display, then reload."""
    try:
        spec = DemoSpec(members=demo_members())
        _build(config, spec)
    except Exception as exc:  # noqa: BLE001 - a full disk or a bad setting: say so, no traceback
        show_warehouse_problem(explain_error(exc, config.url), config)


def _build(config: DatabaseConfig, spec: DemoSpec) -> None:
    with _build_lock:  # two browser tabs on first run: the second waits for the first build
        if not needs_demo_build(config):
            st.rerun()
        st.title(_("Welcome to MemberLens"))
        st.write(
            _("No warehouse is configured, so MemberLens is building its embedded demo warehouse: "
              "{members} members of a fictional Chinese online shop over two years of trading. "
              "This happens once; later starts open immediately.").format(members=f"{spec.members:,}")
        )
        with st.status(_("Building the demo warehouse…"), expanded=True) as status:
            bar = st.progress(0.0, text=_("Starting"))

            def progress(fraction: float, message: str) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

            summary = generate_warehouse(config.url, spec, progress=progress)
            bar.progress(1.0, text=_("Training the prediction models on the demo (churn, propensity, lifetime "
                                     "value)"))
            _train_demo_models(config.url)
            bar.progress(1.0, text=_("Sorting the clickstream for funnels and summing purchases for targeting"))
            _keep_rollups(config.url)
            status.update(label=_("Demo warehouse ready in {seconds} s").format(seconds=f"{summary.seconds:.0f}"),
                          state="complete", expanded=False)
        st.rerun()


def _train_demo_models(url: str) -> None:
    """The demo comes with its prediction models, so the Predictions page has something to show; a model that
    cannot be trained (a small demo) is left to the page, which says why."""
    from analytics import predictions
    from analytics.errors import MemberLensError
    from analytics.prediction_audiences import PinnedModel, store_scores
    from analytics.storage.model_registry import save_model
    from ui.app_state import app_state

    state = app_state()
    if state is None:
        return
    engine = open_warehouse(url)
    try:
        for kind in ("churn", "propensity", "clv"):
            try:
                trained = (predictions.train_clv(engine) if kind == "clv"
                           else predictions.train_classifier(engine, kind))
            except MemberLensError:
                continue
            as_of = date.fromisoformat(trained["card"]["as_of"])
            stored = save_model(state, kind, trained["card"].get("algorithm", "bgnbd+gammagamma"), as_of, trained,
                                "demo set-up")
            store_scores(engine, PinnedModel.from_stored(stored), as_of)
    finally:
        engine.dispose()


def _keep_rollups(url: str) -> None:
    """The demo comes with its purchase rollup (:mod:`analytics.purchase_rollup`) and its funnel store
    (:mod:`analytics.funnel_store`), so the first audience and the first funnel read them."""
    from analytics.funnel_store import store_funnel_events
    from analytics.purchase_rollup import store_rollup

    engine = open_warehouse(url)
    try:
        store_rollup(engine)
        store_funnel_events(engine)
    finally:
        engine.dispose()


def demo_members() -> int:
    """Members in the first-run demo: ``MEMBERLENS_DEMO_MEMBERS`` or the generator's default."""
    configured = os.environ.get(DEMO_MEMBERS_ENV, "").strip()
    if not configured:
        return DEFAULT_MEMBERS
    if not configured.isdigit() or not 1 <= int(configured) <= MAX_MEMBERS:
        raise WarehouseError(
            _("{setting} is not a member count between 1 and {most}.").format(
                setting=f"{DEMO_MEMBERS_ENV}={configured!r}", most=f"{MAX_MEMBERS:,}"),
            _("Unset it for the default demo of {members} members, or set a smaller number.").format(
                members=f"{DEFAULT_MEMBERS:,}"))
    return int(configured)


def show_warehouse_problem(error: WarehouseError, config: DatabaseConfig | None) -> None:
    """A full page that says what is wrong with the warehouse and how to fix it (no traceback)."""
    st.title(_("MemberLens cannot use the warehouse"))
    st.error(error.problem, icon=":material/database_off:")
    if error.fix:
        st.markdown(_("**How to fix it:** {fix}").format(fix=error.fix))
    if config is not None:
        st.markdown(_("Warehouse URL ({source}): {url}").format(source=_(SOURCE_LABELS[config.source]),
                                                              url=f"`{config.display_url}`"))
    st.markdown(
        _("MemberLens reads the warehouse URL from the `MEMBERLENS_WAREHOUSE_URL` environment variable, "
          "then from `[connections.warehouse] url = \"...\"` in `.streamlit/secrets.toml`, and otherwise "
          "builds an embedded DuckDB demo warehouse in `data/warehouse.duckdb`. Examples:")
        + "\n\n"
        "- `duckdb:///data/warehouse.duckdb`\n"
        "- `postgresql+psycopg://analyst:secret@db.example.com:5432/shop`"
    )
    if st.button(_("Try again"), icon=":material/refresh:"):
        forget_warehouse()
        st.rerun()


def show_page_failure(exc: Exception, config: DatabaseConfig) -> None:
    """What a page shows instead of a traceback when it fails while drawing.

    A warehouse problem (a table renamed, the server gone) gets the warehouse problem page; any other MemberLens
    error (input refused, the app-state database unavailable) its message and fix; anything else is a bug: logged
    in full on the server with an error id, and summarised in one line for the user with that id.
    """
    stopped = stopped_query(exc)
    if stopped is not None:  # the statement timeout or the memory limit: the page's own query, not the warehouse
        st.error(stopped.message, icon=":material/timer_off:")
        return
    if isinstance(exc, (WarehouseError, SQLAlchemyError, duckdb.Error)) or type(exc).__module__.startswith("psycopg"):
        show_warehouse_problem(explain_error(exc, config.url), config)
        return
    if isinstance(exc, MemberLensError):
        st.error(exc.message, icon=":material/error:")
        return
    error_id = report_bug(exc, "a page")
    st.error(_("This page could not be drawn ({error}, error id {error_id}). It is a bug in MemberLens: "
               "the details are in the server log under that id. Try other filters, or report it with the id and "
               "the URL of this view.").format(error=type(exc).__name__, error_id=error_id), icon=":material/error:")
