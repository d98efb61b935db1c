"""The role x page x action matrix through the analytics functions, users and roles in the app-state database, and
the audit rows of role changes.

The expected matrix below is written out from the issue's role descriptions, independently of
``analytics.access``; every (role, page) and (role, action) pair is checked against it, and every guarded analytics
function is called by every role: allowed roles get a result, the others AccessDenied and nothing written."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import Engine

from analytics import access
from analytics.access import ROLES, AccessDenied, Principal, allowed, may_open, require, require_page
from analytics.storage.appstate import audit_events, open_state
from analytics.storage.users import UserError, configured_admins, get_user, grant, list_users, revoke, signed_in
from tests.conftest import PROJECT_ROOT, Warehouse, default_filters

E, M, MM, A, P, AD = "executive", "marketer", "membership_manager", "analyst", "privacy_officer", "admin"
#: Pages each role opens, as the issue describes the roles.
EXPECTED_PAGES = {
    "kpis": {E, M, MM, A, AD},
    "rfm_segments": {E, MM, A, AD}, "clusters": {E, MM, A, AD}, "member_tags": {E, MM, A, AD},
    "member_360": {MM, A, AD}, "predictions": {E, M, MM, A, AD}, "heatmaps": {E, M, MM, A, AD},
    "programme": {E, MM, A, AD}, "campaign_results": {E, M, A, AD},
    "funnels": {E, M, A, AD}, "basket_rules": {E, M, A, AD}, "campaign_targeting": {M, A, AD},
    "recommendations": {M, MM, A, AD},
    "experiments": {E, M, A, AD},
    "warehouse": {A, AD}, "import_data": {A, AD}, "data_quality": {A, AD},
    "privacy_requests": {P, AD}, "audit_log": {P, AD}, "admin_users": {AD},
}
#: Actions each role may carry out.
EXPECTED_ACTIONS = {
    "view_members": {M, MM, A, AD}, "export_members": {M, MM, A, AD}, "export_ids": {A, AD},
    "member_360": {MM, A, AD}, "unmask": {MM, P, AD}, "save_audience": {M, A, AD}, "import": {A, AD},
    "replace_data": {AD}, "manage_users": {AD}, "privacy_requests": {P, AD}, "erase_member": {P, AD},
    "view_audit": {P, AD}, "purge": {P, AD}, "clear_caches": {AD},
    "train_models": {MM, A, AD},
}


def user(role: str | None, **restriction) -> Principal:
    return Principal(f"{role or 'none'}@example.com", (role or "none").title(), role, **restriction)


@pytest.fixture
def state(tmp_path) -> Engine:
    engine = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    yield engine
    engine.dispose()


def test_the_matrix_covers_every_page_of_the_app_and_every_action() -> None:
    import ast

    tree = ast.parse((PROJECT_ROOT / "app.py").read_text(encoding="utf-8"))
    pages = next(node for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                 and getattr(node.target, "id", "") == "PAGES")
    keys = {elt.elts[4].value for elt in pages.value.elts}
    assert keys == set(access.PAGES) == set(EXPECTED_PAGES)
    assert set(access.ACTIONS) == set(EXPECTED_ACTIONS)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_and_action_for_every_role(role: str) -> None:
    principal = user(role)
    for page, roles in EXPECTED_PAGES.items():
        assert may_open(principal, page) == (role in roles), (role, page)
        if role in roles:
            assert require_page(principal, page) is principal
        else:
            with pytest.raises(AccessDenied, match="does not allow you to open this page"):
                require_page(principal, page)
    for action, roles in EXPECTED_ACTIONS.items():
        assert allowed(principal, action) == (role in roles), (role, action)
        if role not in roles:
            with pytest.raises(AccessDenied, match=access.ACTIONS[action].split(" (")[0]):
                require(principal, action)


def test_destructive_actions_are_admin_or_privacy_officer_only() -> None:
    for action in access.DESTRUCTIVE_ACTIONS:
        assert EXPECTED_ACTIONS[action] <= {P, AD}


def test_nobody_and_roleless_users_may_do_nothing() -> None:
    for principal in (None, user(None)):
        assert not any(may_open(principal, page) for page in EXPECTED_PAGES)
        assert not any(allowed(principal, action) for action in EXPECTED_ACTIONS)
    with pytest.raises(AccessDenied, match="Sign in first"):
        require(None, "view_members")
    with pytest.raises(AccessDenied, match="has no role yet"):
        require(user(None), "view_members")
    # a page the matrix does not know (another branch's new page, say) is for admins only until it is added
    assert may_open(user(AD), "a_page_nobody_registered") and not may_open(user(A), "a_page_nobody_registered")


def test_a_restricted_user_keeps_their_pages_but_not_whole_warehouse_ones() -> None:
    south = user(A, regions=("South China",))
    assert may_open(south, "rfm_segments") and allowed(south, "export_members")
    for page in ("warehouse", "import_data", "data_quality"):
        assert not may_open(south, page)
    for action in access.WHOLE_WAREHOUSE_ACTIONS:
        assert not allowed(south, action)
    assert south.scope(["M1"]).regions == ("South China",) and south.scope(["M1"]).excluded == ("M1",)


def test_the_local_and_command_line_users_are_admins() -> None:
    assert access.local_principal("ana").role == AD and access.local_principal("ana").identity == "local:ana"
    assert access.cli_principal().identity.startswith("cli:") and access.cli_principal().role == AD


# --- users and roles -----------------------------------------------------------------------------------------

def test_grant_revoke_and_their_audit_rows(state: Engine) -> None:
    admin = user(AD)
    made = grant(state, admin, "  Mia@Example.COM ", M, name="Mia", regions=["South China", "East China"],
                 channels=["app"])
    assert (made.identity, made.role, made.regions, made.channels) == (
        "mia@example.com", M, ("East China", "South China"), ("app",))
    assert get_user(state, "MIA@example.com").principal().scope().regions == ("East China", "South China")
    grant(state, admin, "mia@example.com", MM)
    revoke(state, admin, "mia@example.com")
    assert get_user(state, "mia@example.com").role is None
    events = audit_events(state)
    assert list(events["action"]) == ["role_change"] * 3 and set(events["actor"]) == {admin.identity}
    details = [json.loads(d) for d in events["detail"][::-1]]
    assert [d["after"]["role"] for d in details] == [M, MM, None]
    assert details[0]["before"] is None and details[1]["before"]["role"] == M
    assert details[0]["after"]["regions"] == ["East China", "South China"]
    assert set(events["page"]) == {"admin_users"}


@pytest.mark.parametrize("role", [r for r in ROLES if r != AD])
def test_only_admins_manage_users_and_nothing_is_written_otherwise(state: Engine, role: str) -> None:
    with pytest.raises(AccessDenied):
        grant(state, user(role), "x@example.com", AD)
    with pytest.raises(AccessDenied):
        revoke(state, user(role), "x@example.com")
    assert list_users(state).empty and audit_events(state).empty


def test_the_last_admin_stays_and_bad_input_is_refused(state: Engine) -> None:
    root = user(AD)
    grant(state, root, "boss@example.com", AD)
    with pytest.raises(UserError, match="last admin"):
        revoke(state, root, "boss@example.com")
    with pytest.raises(UserError, match="last admin"):
        grant(state, root, "boss@example.com", A)
    with pytest.raises(UserError, match="Unknown role"):
        grant(state, root, "x@example.com", "superuser")
    with pytest.raises(UserError, match="cannot be empty"):
        grant(state, root, "   ", A)
    with pytest.raises(UserError, match="printable"):
        grant(state, root, "a\x00b", A)
    with pytest.raises(UserError, match="no user"):
        revoke(state, root, "ghost@example.com")
    with pytest.raises(UserError, match="At most 100 regions"):
        grant(state, root, "x@example.com", A, regions=[f"r{i}" for i in range(101)])


def test_the_first_admin_comes_from_configuration_once(state: Engine, tmp_path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[memberlens]\nadmins = ["Root@Example.com"]\n')
    admins = configured_admins({"MEMBERLENS_ADMINS": "ops@example.com, "}, [secrets])
    assert admins == {"root@example.com", "ops@example.com"}
    first = signed_in(state, "root@example.com", "Root", admins)
    assert first.role == AD
    assert audit_events(state).loc[0, "actor"] == "configuration"
    assert signed_in(state, "someone@example.com", "S", admins).role is None  # not configured: no role
    grant(state, first, "ops@example.com", A)  # ops signs in later: their row exists, it is data now
    assert signed_in(state, "ops@example.com", "Ops", admins).role == A
    revoke(state, first, "ops@example.com")
    assert signed_in(state, "ops@example.com", "Ops", admins).role is None  # revoked stays revoked


# --- guarded analytics functions, every role ------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_guarded_functions_refuse_every_role_the_matrix_refuses(duck_warehouse: Warehouse, tmp_path,
                                                                role: str) -> None:
    """Access package, erasure, correction, objection, purge, member export: allowed roles get a result; the others
    AccessDenied, before anything is read or recorded."""
    from analytics.exports import member_export
    from analytics.privacy_rights import (
        RetentionPolicy,
        access_package,
        correct_member,
        erase_member,
        object_to_profiling,
        purge,
    )
    from analytics.storage.privacy_store import requests
    from analytics.tags import tag_audience

    state = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    principal = user(role)
    pg_like = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # external: nothing is written to a warehouse
    member = duck_warehouse.frame("members")["member_id"].iloc[0]
    calls = {
        "privacy_requests": [lambda: access_package(duck_warehouse.engine, state, principal, member),
                             lambda: correct_member(pg_like, state, principal, member, {"city": "Xi'an"}),
                             lambda: object_to_profiling(state, principal, member)],
        "erase_member": [lambda: erase_member(pg_like, state, principal, member)],
        "purge": [lambda: purge(pg_like, duck_warehouse.engine, state, principal, RetentionPolicy(),
                                date(2026, 11, 15), tmp_path / "no_uploads")],
        "export_members": [lambda: member_export(duck_warehouse.engine,
                                                 tag_audience(default_filters(duck_warehouse), "night_owl"),
                                                 principal)],
    }
    for action, functions in calls.items():
        for call in functions:
            before = len(audit_events(state, 1000))
            if role in EXPECTED_ACTIONS[action]:
                assert call() is not None
            else:
                with pytest.raises(AccessDenied):
                    call()
                assert len(audit_events(state, 1000)) == before
    if role not in EXPECTED_ACTIONS["privacy_requests"] and role not in EXPECTED_ACTIONS["erase_member"]:
        assert requests(state).empty
    state.dispose()


@pytest.mark.parametrize("role", [M, MM, A, AD])
def test_exports_show_real_ids_only_to_roles_that_may_see_them(duck_warehouse: Warehouse, role: str) -> None:
    from analytics.exports import member_export
    from analytics.member_rows import audience_rows
    from analytics.tags import tag_audience

    audience = tag_audience(default_filters(duck_warehouse), "night_owl")
    first, second = (member_export(duck_warehouse.engine, audience, user(role)) for _ in range(2))
    plain = audience_rows(duck_warehouse.engine, audience)
    assert len(first.frame) == len(plain) > 0
    if role in EXPECTED_ACTIONS["export_ids"]:
        assert not first.pseudonymous and first.frame["member_id"].tolist() == plain["member_id"].tolist()
    else:
        ids = first.frame["member_id"]
        assert first.pseudonymous and ids.str.fullmatch(r"P[0-9a-f]{16}").all() and ids.is_unique
        assert not ids.isin(duck_warehouse.frame("members")["member_id"]).any()
        assert set(ids).isdisjoint(second.frame["member_id"])  # a fresh key per export: not linkable
        assert first.frame.drop(columns="member_id").equals(plain.drop(columns="member_id"))
