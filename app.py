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

from analytics.access import CLEAR_CACHES, Principal, allowed, may_open
from analytics.errors import MemberLensError
from analytics.storage.privacy_store import suppression
from analytics.storage.warehouse import WarehouseError, explain_error
from ui.app_state import state_engine
from ui.cached import cached_data_span, cached_filter_options
from ui.context import PageContext, finish_run, scoped, set_page_context, sidebar_filters
from ui.identity import (
    current_principal,
    network_problem,
    open_banner,
    show_network_refusal,
    show_no_role,
    show_sign_in,
    sidebar_identity,
)
from ui.look import apply_look
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

#: Every page: (section, file, title, icon, key). The key is the page's URL path and its entry in the access matrix
#: (analytics.access.PAGES); the first page a user may open is their home page, served at ``/``.
PAGES: list[tuple[str, str, str, str, str]] = [
    ("Executives", "pages/executive_kpis.py", "Executive KPIs", ":material/monitoring:", "kpis"),
    ("Membership", "pages/rfm_segments.py", "RFM segments", ":material/donut_small:", "rfm_segments"),
    ("Membership", "pages/clusters.py", "Member clusters", ":material/bubble_chart:", "clusters"),
    ("Membership", "pages/member_tags.py", "Member tags", ":material/sell:", "member_tags"),
    ("Membership", "pages/member_360.py", "Member 360", ":material/person_search:", "member_360"),
    ("Membership", "pages/predictions.py", "Predictions", ":material/query_stats:", "predictions"),
    ("Membership", "pages/heatmaps.py", "Heatmaps", ":material/grid_on:", "heatmaps"),
    ("Membership", "pages/programme.py", "Programme", ":material/workspace_premium:", "programme"),
    ("Marketing", "pages/funnels.py", "Funnels", ":material/filter_alt:", "funnels"),
    ("Marketing", "pages/basket_rules.py", "Basket rules", ":material/shopping_basket:", "basket_rules"),
    ("Marketing", "pages/recommendations.py", "Recommendations", ":material/recommend:", "recommendations"),
    ("Marketing", "pages/campaign_targeting.py", "Campaign targeting", ":material/campaign:", "campaign_targeting"),
    ("Marketing", "pages/experiments.py", "Experiment read-out", ":material/science:", "experiments"),
    ("Marketing", "pages/campaign_results.py", "Campaign results", ":material/leaderboard:", "campaign_results"),
    ("Data", "pages/warehouse.py", "Warehouse", ":material/database:", "warehouse"),
    ("Data", "pages/import_data.py", "Import data", ":material/upload_file:", "import_data"),
    ("Data", "pages/data_quality.py", "Data quality", ":material/fact_check:", "data_quality"),
    ("Privacy", "pages/privacy_requests.py", "Privacy requests", ":material/policy:", "privacy_requests"),
    ("Privacy", "pages/audit_log.py", "Audit log", ":material/history:", "audit_log"),
    ("Admin", "pages/admin_users.py", "Users and roles", ":material/manage_accounts:", "admin_users"),
]


def navigation_for(principal: Principal) -> tuple[dict[str, list[st.Page]], dict[int, str]]:
    """The pages ``principal`` may open, by section (the first is their home page), and each page's key by the
    identity of its ``st.Page``."""
    sections: dict[str, list[st.Page]] = {}
    keys: dict[int, str] = {}
    for section, path, title, icon, key in PAGES:
        if not may_open(principal, key):
            continue
        page = st.Page(path, title=title, icon=icon, url_path=key, default=not keys)
        sections.setdefault(section, []).append(page)
        keys[id(page)] = key
    return sections, keys


def show_only(page: st.Page) -> None:
    """Route every URL to one page (set-up, sign-in or a problem), so no page runs without a warehouse."""
    st.navigation([page], position="hidden").run()


def gate() -> Principal | None:
    """Who may use the app in this session: None (after drawing the only page they get) when the network is open
    without sign-in, nobody is signed in yet, or the signed-in user has no role."""
    problem = network_problem()
    if problem:
        show_only(st.Page(lambda: show_network_refusal(problem), title="Sign-in required",
                          icon=":material/lock:", url_path="sign_in_required", default=True))
        return None
    try:
        principal = current_principal(state_engine())
    except MemberLensError as error:  # users and roles live in the app-state database
        message = error.message
        show_only(st.Page(lambda: st.error(message, icon=":material/database_off:"),
                          title="MemberLens cannot start", icon=":material/database_off:", url_path="problem",
                          default=True))
        return None
    if principal is None:
        show_only(st.Page(show_sign_in, title="Sign in", icon=":material/login:", url_path="sign_in", default=True))
        return None
    if principal.role is None:
        show_only(st.Page(lambda: show_no_role(principal), title="No role", icon=":material/person_off:",
                          url_path="no_role", default=True))
        return None
    return principal


def main() -> None:
    apply_look()
    principal = gate()
    if principal is None:
        return
    open_banner()
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

    sidebar_identity(principal)
    if principal.channels:  # a user restricted to some sales channels picks among those only
        options = type(options)(tuple(c for c in options.channels if c in principal.channels), options.tiers)
    filters = sidebar_filters(span, options)
    with st.sidebar:
        st.divider()
        label = SOURCE_LABELS[config.source]
        st.caption(f"**Warehouse** ({label})  \n`{config.display_url}`")
        if allowed(principal, CLEAR_CACHES) and st.button(
                "Refresh data", icon=":material/refresh:", key="refresh_data",
                help="Forget cached results (for every user) and reconnect: after the warehouse was reloaded or "
                     "rebuilt"):
            forget_warehouse()
            st.rerun()
    sections, keys = navigation_for(principal)
    navigation = st.navigation(sections, expanded=True)
    page = keys.get(id(navigation))
    try:
        suppressed = suppression(state_engine())  # read on every run: honoured from the moment it is recorded
    except MemberLensError as error:
        st.error(f"Member data cannot be shown: the suppression list cannot be read. {error.message}",
                 icon=":material/database_off:")
        return
    set_page_context(PageContext(config, engine, span, options, scoped(filters, principal, suppressed, page),
                                 principal, page, suppressed))
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
