"""Sign-in and roles in the app, under Streamlit's AppTest with a signed-in user (``AppTest.user``) and an ``[auth]``
section in its secrets: the refusal to serve a network without sign-in, the sign-in and no-role pages, and the whole
role x page matrix: every role sees exactly its pages in the navigation, each opens and draws, and every other
page refuses it even when its code is run directly (a hand-typed URL, a stale link)."""

from __future__ import annotations

import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from analytics.access import ROLES, Principal, local_principal
from analytics.storage.appstate import audit_events, open_state
from analytics.storage.users import grant
from tests.conftest import PROJECT_ROOT, Warehouse, direct_page
from tests.test_access import EXPECTED_ACTIONS, EXPECTED_PAGES

APP = str(PROJECT_ROOT / "app.py")
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "a-test-cookie-secret-of-32-chars",
        "client_id": "memberlens", "client_secret": "test",
        "server_metadata_url": "https://login.example.com/.well-known/openid-configuration"}
#: Each page's file and title, by key (app.py's list).
PAGE_FILES = {
    "kpis": ("pages/executive_kpis.py", "Executive KPIs"), "rfm_segments": ("pages/rfm_segments.py", "RFM segments"),
    "clusters": ("pages/clusters.py", "Member clusters"), "member_tags": ("pages/member_tags.py", "Member tags"),
    "member_360": ("pages/member_360.py", "Member 360"), "predictions": ("pages/predictions.py", "Predictions"),
    "heatmaps": ("pages/heatmaps.py", "Heatmaps"), "programme": ("pages/programme.py", "Programme"),
    "campaign_results": ("pages/campaign_results.py", "Campaign results"),
    "recommendations": ("pages/recommendations.py", "Recommendations"),
    "funnels": ("pages/funnels.py", "Funnels"), "basket_rules": ("pages/basket_rules.py", "Basket rules"),
    "campaign_targeting": ("pages/campaign_targeting.py", "Campaign targeting"),
    "experiments": ("pages/experiments.py", "Experiment read-out"), "warehouse": ("pages/warehouse.py", "Warehouse"),
    "import_data": ("pages/import_data.py", "Import data"), "data_quality": ("pages/data_quality.py", "Data quality"),
    "privacy_requests": ("pages/privacy_requests.py", "Privacy requests"),
    "audit_log": ("pages/audit_log.py", "Audit log"), "admin_users": ("pages/admin_users.py", "Users and roles"),
}
HOME = {"privacy_officer": "Privacy requests"}  # everyone else starts on Executive KPIs


@pytest.fixture
def signed_in_app(monkeypatch, tmp_path):
    """Start the app for a signed-in user with ``role`` (None: signed in without a role; "out": not signed in)."""
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    state = open_state(state_url)

    def start(url: str, role: str | None, **restriction) -> AppTest:
        monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", url)
        email = f"{role or 'nobody'}@example.com"
        if role not in (None, "out"):
            grant(state, local_principal(), email, role, **restriction)
        at = AppTest.from_file(APP, default_timeout=180)
        at.secrets["auth"] = AUTH
        at.user = {"is_logged_in": False} if role == "out" else {"is_logged_in": True, "email": email,
                                                                 "name": (role or "nobody").title()}
        return at.run()

    start.state = state
    yield start
    state.dispose()


@pytest.fixture
def address(request):
    """Set ``server.address`` for one test (what ``--server.address`` does), restoring the shipped loopback."""
    def set_to(value: str | None) -> None:
        streamlit_config.set_option("server.address", value)

    yield set_to
    streamlit_config.set_option("server.address", "127.0.0.1")


# --- sign-in ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["0.0.0.0", "192.168.1.20", None])
def test_no_sign_in_on_an_open_network_refuses_to_serve(duck_warehouse: Warehouse, monkeypatch, address,
                                                       where) -> None:
    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    monkeypatch.delenv("MEMBERLENS_OPEN_WITHOUT_SIGN_IN", raising=False)
    address(where)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["MemberLens will not serve this network without sign-in"]
    assert "sign-in is not configured" in at.error[0].value
    assert "[auth]" in " ".join(m.value for m in at.markdown)  # says how to configure it
    assert not at.metric and not at.sidebar.multiselect  # no data, no filters


def test_the_override_serves_the_network_with_a_banner(duck_warehouse: Warehouse, monkeypatch, address) -> None:
    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    monkeypatch.setenv("MEMBERLENS_OPEN_WITHOUT_SIGN_IN", "yes")  # not the exact value: still refused
    address("0.0.0.0")
    assert AppTest.from_file(APP, default_timeout=120).run().title[0].value.startswith("MemberLens will not serve")
    monkeypatch.setenv("MEMBERLENS_OPEN_WITHOUT_SIGN_IN", "anyone-on-the-network-is-admin")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [t.value for t in at.title] == ["Executive KPIs"]
    assert any("Anyone who can reach this server is admin" in e.value for e in at.error)


def test_loopback_without_sign_in_is_the_local_admin(duck_warehouse: Warehouse, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [t.value for t in at.title] == ["Executive KPIs"]
    assert any("Single-user local tool" in c.value for c in at.sidebar.caption)
    assert at.sidebar.button(key="refresh_data")  # the local user is admin


def test_sign_in_configured_anywhere_asks_to_sign_in(duck_warehouse: Warehouse, signed_in_app, address) -> None:
    address("0.0.0.0")  # with sign-in configured any address is fine
    at = signed_in_app(duck_warehouse.url, "out")
    assert [b.label for b in at.button] == ["Sign in"] and not at.metric and not at.sidebar.multiselect


def test_a_signed_in_user_without_a_role_sees_nothing(duck_warehouse: Warehouse, signed_in_app) -> None:
    at = signed_in_app(duck_warehouse.url, None)
    assert "no role in MemberLens yet" in at.warning[0].value
    assert not at.metric and not at.sidebar.multiselect and [b.label for b in at.button] == ["Sign out"]


def test_the_first_admin_from_configuration_gets_in(duck_warehouse: Warehouse, signed_in_app, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_ADMINS", "Root@Example.com")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": "root@example.com", "name": "Root"}
    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    at.run()
    assert [t.value for t in at.title] == ["Executive KPIs"]
    assert any("Root" in c.value and "Admin" in c.value for c in at.sidebar.caption)


# --- the matrix: every role, every page --------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_exactly_its_pages(duck_warehouse: Warehouse, signed_in_app, role: str) -> None:
    at = signed_in_app(duck_warehouse.url, role)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [HOME.get(role, "Executive KPIs")]
    allowed = {key for key, roles in EXPECTED_PAGES.items() if role in roles}
    for key, (path, title) in PAGE_FILES.items():
        if key in allowed:
            at.switch_page(path).run()
            assert not at.exception, (role, key, [e.value for e in at.exception])
            assert [t.value for t in at.title] == [title], (role, key)
            assert not any("does not allow you" in e.value for e in at.error), (role, key)
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(path)  # not in this user's navigation at all
    assert bool(at.sidebar.button(key="refresh_data")) if role == "admin" else not any(
        b.key == "refresh_data" for b in at.sidebar.button)


@pytest.mark.parametrize("role", ROLES)
def test_every_forbidden_page_refuses_when_its_code_runs(duck_warehouse: Warehouse, monkeypatch, tmp_path,
                                                         role: str) -> None:
    """A page's own check (page_inputs): run directly with a context for a role it does not admit, it shows the
    refusal and draws nothing; the refusal is written to the audit log."""
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    principal = Principal(f"{role}@example.com", role.title(), role)
    refused = [key for key, roles in EXPECTED_PAGES.items() if role not in roles]
    for key in refused:
        at, run = direct_page(duck_warehouse, PAGE_FILES[key][0], monkeypatch, principal)
        run()
        assert "does not allow you to open this page" in at.error[0].value, (role, key)
        assert not at.title and not at.metric and not at.dataframe, (role, key)
    events = audit_events(open_state(state_url), 1000)
    assert (events["action"] == "access_denied").sum() == len(refused)
    assert set(events["actor"]) <= {principal.identity}


# --- actions inside pages ----------------------------------------------------------------------------------------

def member_set_page(role: str) -> str | None:
    """The page with a member set this role opens: RFM segments, or the funnel's drop-offs for marketers."""
    return next((p for p in ("rfm_segments", "funnels") if role in EXPECTED_PAGES[p]), None)


def test_roles_without_member_set_pages_are_the_expected_ones() -> None:
    """Only the privacy officer opens neither page with a member set; every other role is tested below."""
    assert [role for role in ROLES if member_set_page(role) is None] == ["privacy_officer"]


@pytest.mark.parametrize("role", [role for role in ROLES if member_set_page(role) is not None])
def test_member_rows_and_downloads_follow_the_role(duck_warehouse: Warehouse, monkeypatch, tmp_path,
                                                   role: str) -> None:
    """A member set (RFM segments, or the funnel's drop-offs for marketers): the count for everyone who opens the
    page, the masked rows with view_members, the download with export_members."""
    monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tmp_path}/state.sqlite")
    page = member_set_page(role)
    at, run = direct_page(duck_warehouse, PAGE_FILES[page][0], monkeypatch,
                          Principal(f"{role}@example.com", role.title(), role))
    if page == "funnels":
        at.session_state["funnels_tab"] = "Drop-off members"  # the tab with the member set
    run()
    assert not at.exception
    assert any(" member" in m.value and "**" in m.value for m in at.markdown)  # the headline with the count
    rows_shown = any(len(df.value) and "member_id" in df.value.columns for df in at.dataframe)
    assert rows_shown == (role in EXPECTED_ACTIONS["view_members"]), role
    if role not in EXPECTED_ACTIONS["view_members"]:
        assert any("not shown to your role" in c.value for c in at.caption)
    downloads = [el for el in at.get("download_button") if el.proto.label.startswith("Download all")]
    assert bool(downloads) == (role in EXPECTED_ACTIONS["export_members"]), role


def test_replacing_all_data_is_offered_to_admins_only(duck_warehouse: Warehouse, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tmp_path}/state.sqlite")
    (tmp_path / "imports").mkdir()
    export = tmp_path / "imports" / "shop.csv"
    export.write_text("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
                      "A1,SKU-1,Mug,2,2026-11-10 09:30:00,4.50,9001.0,United Kingdom\n", encoding="utf-8")
    monkeypatch.setenv("MEMBERLENS_IMPORT_DIRS", str(tmp_path / "imports"))
    add, replace = "Add to what is there", "Replace all MemberLens data"
    for role, offered in (("analyst", [add]), ("admin", [add, replace])):
        at, run = direct_page(duck_warehouse, "pages/import_data.py", monkeypatch,
                              Principal(f"{role}@example.com", role.title(), role))
        run()
        at.radio(key="import_source").set_value("A path on the server")
        run()
        at.text_input(key="import_path").input(str(export))
        run()
        assert at.radio(key="import_mode").options == offered, role
        if role == "admin":
            at.radio(key="import_mode").set_value("replace")
            run()
            at.checkbox(key="import_confirm_replace").check()
            run()
            assert at.button(key="import_go").disabled  # the word is still to be typed
            at.text_input(key="import_confirm_word").input("REPLACE")
            run()
            assert not at.button(key="import_go").disabled


def test_unmasking_needs_the_role_and_a_reason_and_is_audited_first(duck_warehouse: Warehouse, monkeypatch,
                                                                    tmp_path) -> None:
    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    member = duck_warehouse.frame("members").dropna(subset=["phone", "name"]).iloc[0]
    for role in ("analyst", "membership_manager"):
        at, run = direct_page(duck_warehouse, "pages/member_360.py", monkeypatch,
                              Principal(f"{role}@example.com", role.title(), role))
        at.query_params["member"] = member["member_id"]
        run()
        assert not at.exception
        contact = " ".join(m.value for m in at.markdown)
        assert member["phone"] not in contact  # masked
        buttons = [b for b in at.button if b.key == "m360_unmask"]
        assert bool(buttons) == (role in EXPECTED_ACTIONS["unmask"]), role
        if not buttons:
            continue
        assert buttons[0].disabled  # no reason yet
        at.text_input(key="m360_unmask_reason").input("short")
        run()
        assert at.button(key="m360_unmask").disabled  # a reason of at least ten characters
        at.text_input(key="m360_unmask_reason").input("Member called about a late parcel, ticket 4711")
        run()
        at.button(key="m360_unmask").click()
        run()
        assert member["phone"] in " ".join(m.value for m in at.markdown)
        assert str(member["birth_date"]) not in " ".join(m.value for m in at.markdown)  # never the birth date
    events = audit_events(open_state(state_url), 100)
    unmasked = events[events["action"] == "unmask"]
    assert len(unmasked) == 1 and unmasked.iloc[0]["actor"] == "membership_manager@example.com"
    assert "ticket 4711" in unmasked.iloc[0]["detail"] and member["member_id"] in unmasked.iloc[0]["detail"]
    lookups = events[events["action"] == "member_360"]
    assert set(lookups["actor"]) == {"analyst@example.com", "membership_manager@example.com"}


def test_a_restricted_users_sidebar_offers_only_their_channels(duck_warehouse: Warehouse, signed_in_app) -> None:
    at = signed_in_app(duck_warehouse.url, "marketer", channels=["app", "web"])
    assert at.sidebar.multiselect(key="channel").options == ["App", "Web"] or \
        set(at.sidebar.multiselect(key="channel").options) <= {"app", "web", "App", "Web"}
    assert any("Only:" in c.value and "App, Web" in c.value for c in at.sidebar.caption)
