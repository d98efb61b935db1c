"""MemberLens: navigation, the global sidebar and first-run set-up.

Each page's URL is its file name (``/basket_rules``): Streamlit serves a fresh server's very first
request from the ``pages/`` folder by file name, so any other URL would show "Page not found". The
home page lives at ``/`` (its ``kpis`` path only names it).

Run with ``streamlit run app.py``. Without configuration the app builds an embedded DuckDB demo
warehouse on first run; set ``MEMBERLENS_WAREHOUSE_URL`` (or ``.streamlit/secrets.toml``) to use
your own. Pages are grouped by audience; a section appears once it has pages.
"""

from __future__ import annotations

import streamlit as st

from analytics.storage.warehouse import WarehouseError, explain_error
from ui.cached import cached_data_span, cached_filter_options
from ui.context import PageContext, finish_run, set_page_context, sidebar_filters
from ui.member_sets import switch_if_asked
from ui.warehouse import (
    SOURCE_LABELS,
    build_demo_warehouse,
    forget_warehouse,
    needs_demo_build,
    show_page_failure,
    show_warehouse_problem,
    warehouse_config,
    warehouse_engine,
)

st.set_page_config(page_title="MemberLens", page_icon=":material/loyalty:", layout="wide")

PAGES = {
    "Executives": [
        st.Page("pages/executive_kpis.py", title="Executive KPIs", icon=":material/monitoring:",
                url_path="kpis", default=True),
    ],
    "Membership": [
        st.Page("pages/rfm_segments.py", title="RFM segments", icon=":material/donut_small:",
                url_path="rfm_segments"),
        st.Page("pages/clusters.py", title="Member clusters", icon=":material/bubble_chart:", url_path="clusters"),
        st.Page("pages/member_tags.py", title="Member tags", icon=":material/sell:", url_path="member_tags"),
        st.Page("pages/member_360.py", title="Member 360", icon=":material/person_search:", url_path="member_360"),
        st.Page("pages/predictions.py", title="Predictions", icon=":material/query_stats:", url_path="predictions"),
        st.Page("pages/heatmaps.py", title="Heatmaps", icon=":material/grid_on:", url_path="heatmaps"),
    ],
    "Marketing": [
        st.Page("pages/funnels.py", title="Funnels", icon=":material/filter_alt:", url_path="funnels"),
        st.Page("pages/basket_rules.py", title="Basket rules", icon=":material/shopping_basket:",
                url_path="basket_rules"),
        st.Page("pages/campaign_targeting.py", title="Campaign targeting", icon=":material/campaign:",
                url_path="campaign_targeting"),
        st.Page("pages/experiments.py", title="Experiment read-out", icon=":material/science:",
                url_path="experiments"),
    ],
    "Data": [
        st.Page("pages/warehouse.py", title="Warehouse", icon=":material/database:", url_path="warehouse"),
        st.Page("pages/import_data.py", title="Import data", icon=":material/upload_file:", url_path="import_data"),
        st.Page("pages/data_quality.py", title="Data quality", icon=":material/fact_check:", url_path="data_quality"),
    ],
}


def show_only(page: st.Page) -> None:
    """Route every URL to one page (set-up or a problem), so no page runs without a warehouse."""
    st.navigation([page], position="hidden").run()


def main() -> None:
    config = None
    try:
        config = warehouse_config()
        if needs_demo_build(config):
            show_only(st.Page(lambda: build_demo_warehouse(config), title="Setting up MemberLens",
                              icon=":material/construction:", url_path="setup", default=True))
            return
        engine = warehouse_engine(config.url)
        span = cached_data_span(engine)
        if span is None:
            raise WarehouseError(
                "The warehouse holds the MemberLens tables but no orders yet.",
                "Load your data into the tables (see README's 'Warehouse contract'), or build demo data "
                "with `python -m analytics.synthetic --url URL --replace`.",
            )
        options = cached_filter_options(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable servers, driver errors: a page, not a traceback
        error = explain_error(exc, config.url if config else "")
        show_only(st.Page(lambda: show_warehouse_problem(error, config), title="Warehouse problem",
                          icon=":material/database_off:", url_path="problem", default=True))
        return

    filters = sidebar_filters(span, options)
    with st.sidebar:
        st.divider()
        label = SOURCE_LABELS[config.source]
        st.caption(f"**Warehouse** ({label})  \n`{config.display_url}`")
        if st.button("Refresh data", icon=":material/refresh:", key="refresh_data",
                     help="Forget cached results and reconnect: after the warehouse was reloaded or rebuilt"):
            forget_warehouse()
            st.rerun()
    set_page_context(PageContext(config, engine, span, options, filters))
    navigation = st.navigation({section: pages for section, pages in PAGES.items() if pages}, expanded=True)
    switch_if_asked()  # "Use in Campaign targeting" on another page
    page_area = st.empty()
    try:
        with page_area.container():
            navigation.run()
    except Exception as exc:  # noqa: BLE001 - e.g. a table dropped while the app runs: explain, no traceback
        page_area.empty()
        show_page_failure(exc, config)
    finish_run()


main()
