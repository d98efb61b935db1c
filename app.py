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
from analytics.i18n import N_, _
from analytics.preload import preload_in_background
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
from ui.language import language_selector, start_language
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
    (N_("Executives"), "pages/executive_kpis.py", N_("Executive KPIs"), ":material/monitoring:", "kpis"),
    (N_("Membership"), "pages/rfm_segments.py", N_("RFM segments"), ":material/donut_small:", "rfm_segments"),
    (N_("Membership"), "pages/clusters.py", N_("Member clusters"), ":material/bubble_chart:", "clusters"),
    (N_("Membership"), "pages/member_tags.py", N_("Member tags"), ":material/sell:", "member_tags"),
    (N_("Membership"), "pages/member_360.py", N_("Member 360"), ":material/person_search:", "member_360"),
    (N_("Membership"), "pages/predictions.py", N_("Predictions"), ":material/query_stats:", "predictions"),
    (N_("Membership"), "pages/heatmaps.py", N_("Heatmaps"), ":material/grid_on:", "heatmaps"),
    (N_("Membership"), "pages/programme.py", N_("Programme"), ":material/workspace_premium:", "programme"),
    (N_("Marketing"), "pages/funnels.py", N_("Funnels"), ":material/filter_alt:", "funnels"),
    (N_("Marketing"), "pages/basket_rules.py", N_("Basket rules"), ":material/shopping_basket:", "basket_rules"),
    (N_("Marketing"), "pages/recommendations.py", N_("Recommendations"), ":material/recommend:", "recommendations"),
    (N_("Marketing"), "pages/campaign_targeting.py", N_("Campaign targeting"), ":material/campaign:",
     "campaign_targeting"),
    (N_("Marketing"), "pages/experiments.py", N_("Experiment read-out"), ":material/science:", "experiments"),
    (N_("Marketing"), "pages/campaign_results.py", N_("Campaign results"), ":material/leaderboard:",
     "campaign_results"),
    (N_("Data"), "pages/warehouse.py", N_("Warehouse"), ":material/database:", "warehouse"),
    (N_("Data"), "pages/import_data.py", N_("Import data"), ":material/upload_file:", "import_data"),
    (N_("Data"), "pages/data_quality.py", N_("Data quality"), ":material/fact_check:", "data_quality"),
    (N_("Privacy"), "pages/privacy_requests.py", N_("Privacy requests"), ":material/policy:", "privacy_requests"),
    (N_("Privacy"), "pages/audit_log.py", N_("Audit log"), ":material/history:", "audit_log"),
    (N_("Admin"), "pages/admin_users.py", N_("Users and roles"), ":material/manage_accounts:", "admin_users"),
]


def navigation_for(principal: Principal) -> tuple[dict[str, list[st.Page]], dict[int, str]]:
    """The pages ``principal`` may open, by section (the first is their home page), and each page's key by the
    identity of its ``st.Page``."""
    sections: dict[str, list[st.Page]] = {}
    keys: dict[int, str] = {}
    for section, path, title, icon, key in PAGES:
        if not may_open(principal, key):
            continue
        page = st.Page(path, title=_(title), icon=icon, url_path=key, default=not keys)
        sections.setdefault(_(section), []).append(page)
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
        show_only(st.Page(lambda: show_network_refusal(problem), title=_("Sign-in required"),
                          icon=":material/lock:", url_path="sign_in_required", default=True))
        return None
    try:
        principal = current_principal(state_engine())
    except MemberLensError as error:  # users and roles live in the app-state database
        message = error.message
        show_only(st.Page(lambda: st.error(message, icon=":material/database_off:"),
                          title=_("MemberLens cannot start"), icon=":material/database_off:", url_path="problem",
                          default=True))
        return None
    if principal is None:
        show_only(st.Page(show_sign_in, title=_("Sign in"), icon=":material/login:", url_path="sign_in", default=True))
        return None
    if principal.role is None:
        show_only(st.Page(lambda: show_no_role(principal), title=_("No role"), icon=":material/person_off:",
                          url_path="no_role", default=True))
        return None
    return principal


def main() -> None:
    start_language()
    apply_look()
    language_selector()
    principal = gate()
    if principal is None:
        return
    open_banner()
    config = None
    try:
        config = warehouse_config()
        if needs_demo_build(config):
            show_only(st.Page(lambda: build_demo_warehouse(config), title=_("Setting up MemberLens"),
                              icon=":material/construction:", url_path="setup", default=True))
            return
        engine = warehouse_engine(config.url)
        span = cached_data_span(engine)
        if span is None:
            raise WarehouseError(
                _("The warehouse holds the MemberLens tables but no orders yet."),
                _("Load your data into the tables (see README's 'Warehouse contract'), or build demo data "
                  "with `python -m analytics.synthetic --url URL --replace`."),
            )
        options = cached_filter_options(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable servers, driver errors: a page, not a traceback
        error = explain_error(exc, config.url if config else "")
        show_only(st.Page(lambda: show_warehouse_problem(error, config), title=_("Warehouse problem"),
                          icon=":material/database_off:", url_path="problem", default=True))
        return

    sidebar_identity(principal)
    if principal.channels:  # a user restricted to some sales channels picks among those only
        options = type(options)(tuple(c for c in options.channels if c in principal.channels), options.tiers)
    filters = sidebar_filters(span, options)
    with st.sidebar:
        st.divider()
        label = _(SOURCE_LABELS[config.source])
        st.caption(_("**Warehouse** ({source})").format(source=label) + f"  \n`{config.display_url}`")
        if allowed(principal, CLEAR_CACHES) and st.button(
                _("Refresh data"), icon=":material/refresh:", key="refresh_data",
                help=_("Forget cached results (for every user) and reconnect: after the warehouse was reloaded or "
                       "rebuilt")):
            forget_warehouse()
            st.rerun()
    sections, keys = navigation_for(principal)
    navigation = st.navigation(sections, expanded=True)
    page = keys.get(id(navigation))
    try:
        suppressed = suppression(state_engine())  # read on every run: honoured from the moment it is recorded
    except MemberLensError as error:
        st.error(_("Member data cannot be shown: the suppression list cannot be read. {reason}").format(
            reason=error.message), icon=":material/database_off:")
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
    preload_in_background()  # scikit-learn and SciPy, while the reader looks at this page (analytics/preload.py)


main()
