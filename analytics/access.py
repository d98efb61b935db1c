"""Who may do what: the roles, the pages and actions, and the one matrix that decides between them.

MemberLens serves three kinds of business users and three kinds of custodians. Each signed-in user has one role
(kept as data in the app-state database, :mod:`analytics.storage.users`); this module says what each role may do,
once, and everything else asks it:

* the app shows only the pages a role may open (``app.py`` filters the navigation) and every page checks again
  when it starts (``ui.context.page_inputs``), so a hand-typed URL gets a refusal, not data;
* actions inside pages (listing members, exporting them, unmasking, importing, erasing ...) are checked where they
  happen, in ``ui`` and in the analytics functions that carry them out (:func:`require`);
* the command line runs as the operating-system user with the database credentials, which is admin.

Roles and what they see:

==================  ============================================================================================
executive           KPIs and aggregates of every analysis; no member-level rows
marketer            funnels, basket rules, campaign targeting, experiments; masked member lists (pseudonymous ids
                    in exports)
membership_manager  RFM segments, clusters, tags, heatmaps, Member 360; masked member lists; unmasking one member
                    with a reason
analyst             every analysis, imports, the warehouse and data quality; member ids in exports
privacy_officer     members' privacy requests (access, correction, erasure, objection), the audit log, retention
admin               everything: users and roles, replacing all data, clearing caches
==================  ============================================================================================

A user may also be restricted to regions and sales channels (row-level restriction, :class:`Principal`); such a
user cannot open the pages that show the whole warehouse (``unrestricted_only``).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analytics.errors import MemberLensError
from analytics.filters import Scope
from analytics.i18n import N_, _

EXECUTIVE, MARKETER, MEMBERSHIP_MANAGER = "executive", "marketer", "membership_manager"
ANALYST, PRIVACY_OFFICER, ADMIN = "analyst", "privacy_officer", "admin"
ROLES: tuple[str, ...] = (EXECUTIVE, MARKETER, MEMBERSHIP_MANAGER, ANALYST, PRIVACY_OFFICER, ADMIN)
ROLE_LABELS: dict[str, str] = {
    EXECUTIVE: N_("Executive"), MARKETER: N_("Marketer"), MEMBERSHIP_MANAGER: N_("Membership manager"),
    ANALYST: N_("Analyst"), PRIVACY_OFFICER: N_("Privacy officer"), ADMIN: N_("Admin"),
}
ROLE_HELP: dict[str, str] = {
    EXECUTIVE: N_("KPIs and aggregates; no member-level rows."),
    MARKETER: N_("Funnels, basket rules, campaign targeting, experiments; masked member lists, pseudonymous ids in "
                 "exports."),
    MEMBERSHIP_MANAGER: N_("Segments, clusters, tags, heatmaps, Member 360; masked member lists; may unmask one "
                           "member with a reason."),
    ANALYST: N_("Every analysis, imports, the warehouse and data quality; member ids in exports."),
    PRIVACY_OFFICER: N_("Privacy requests (access, correction, erasure, objection), the audit log and retention."),
    ADMIN: N_("Everything: users and roles, replacing all data, clearing caches."),
}

def role_label(role: str | None) -> str:
    """A role as the reader names it, in the run's language (``None`` or an unknown role: "no role")."""
    known = ROLE_LABELS.get(role or "")
    return _(known) if known else _("no role")


def role_help(role: str) -> str:
    """What a role may do, in the run's language."""
    return _(ROLE_HELP[role])


def action_text(action: str) -> str:
    """What an action lets the user do, in the run's language (``ACTIONS``)."""
    return _(ACTIONS[action])


_BUSINESS = frozenset({EXECUTIVE, MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN})


@dataclass(frozen=True)
class PageRule:
    """Who may open a page, and what the page is.

    ``member_level``: the page shows member-level rows (opening it is written to the audit log); ``profiling``:
    it segments, models or targets members, so members who objected to profiling are left out of it;
    ``unrestricted_only``: it shows the whole warehouse, so users restricted to regions or channels may not open it.
    """

    roles: frozenset[str]
    member_level: bool = False
    profiling: bool = False
    unrestricted_only: bool = False


#: Every page by its key (its URL path); pages not listed here are for admins only.
PAGES: dict[str, PageRule] = {
    "kpis": PageRule(_BUSINESS),
    "rfm_segments": PageRule(frozenset({EXECUTIVE, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), profiling=True),
    "clusters": PageRule(frozenset({EXECUTIVE, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), profiling=True),
    "member_tags": PageRule(frozenset({EXECUTIVE, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), profiling=True),
    "member_360": PageRule(frozenset({MEMBERSHIP_MANAGER, ANALYST, ADMIN}), member_level=True),
    "predictions": PageRule(frozenset({EXECUTIVE, MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), profiling=True),
    "heatmaps": PageRule(frozenset({EXECUTIVE, MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN})),
    "programme": PageRule(frozenset({EXECUTIVE, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), unrestricted_only=True),
    "funnels": PageRule(frozenset({EXECUTIVE, MARKETER, ANALYST, ADMIN})),
    "basket_rules": PageRule(frozenset({EXECUTIVE, MARKETER, ANALYST, ADMIN}), profiling=True),
    "recommendations": PageRule(frozenset({MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN}), member_level=True,
                                profiling=True),
    "campaign_targeting": PageRule(frozenset({MARKETER, ANALYST, ADMIN}), member_level=True, profiling=True),
    "experiments": PageRule(frozenset({EXECUTIVE, MARKETER, ANALYST, ADMIN})),
    "campaign_results": PageRule(frozenset({EXECUTIVE, MARKETER, ANALYST, ADMIN})),
    "warehouse": PageRule(frozenset({ANALYST, ADMIN}), unrestricted_only=True),
    "import_data": PageRule(frozenset({ANALYST, ADMIN}), unrestricted_only=True),
    "data_quality": PageRule(frozenset({ANALYST, ADMIN}), unrestricted_only=True),
    "privacy_requests": PageRule(frozenset({PRIVACY_OFFICER, ADMIN}), member_level=True, unrestricted_only=True),
    "audit_log": PageRule(frozenset({PRIVACY_OFFICER, ADMIN}), unrestricted_only=True),
    "admin_users": PageRule(frozenset({ADMIN}), unrestricted_only=True),
}
_ADMIN_ONLY = PageRule(frozenset({ADMIN}), unrestricted_only=True)

VIEW_MEMBERS, EXPORT_MEMBERS, EXPORT_IDS, MEMBER_360 = "view_members", "export_members", "export_ids", "member_360"
UNMASK, SAVE_AUDIENCE, IMPORT, REPLACE_DATA = "unmask", "save_audience", "import", "replace_data"
MANAGE_USERS, PRIVACY_REQUESTS, ERASE_MEMBER = "manage_users", "privacy_requests", "erase_member"
VIEW_AUDIT, PURGE, CLEAR_CACHES = "view_audit", "purge", "clear_caches"
TRAIN_MODELS = "train_models"

#: Every action a role may be allowed, with what it lets the user do (the refusal names it).
ACTIONS: dict[str, str] = {
    VIEW_MEMBERS: N_("see member-level rows (masked)"),
    EXPORT_MEMBERS: N_("download member lists (masked)"),
    EXPORT_IDS: N_("download member lists with real member ids (others get a pseudonym per export)"),
    MEMBER_360: N_("look up one member in Member 360"),
    UNMASK: N_("unmask a member's name, phone and email (with a reason, written to the audit log)"),
    SAVE_AUDIENCE: N_("save campaign audiences"),
    IMPORT: N_("import files into the warehouse"),
    REPLACE_DATA: N_("replace all MemberLens data in the warehouse"),
    MANAGE_USERS: N_("manage users and roles"),
    PRIVACY_REQUESTS: N_("handle members' privacy requests (access, correction, objection)"),
    ERASE_MEMBER: N_("erase a member's data"),
    VIEW_AUDIT: N_("read the audit log"),
    PURGE: N_("purge data past its retention period"),
    CLEAR_CACHES: N_("clear every cached result for all users"),
    TRAIN_MODELS: N_("train prediction models and recommenders (each stored as a new version)"),
}

#: The matrix: which roles may carry out each action.
ALLOWED: dict[str, frozenset[str]] = {
    VIEW_MEMBERS: frozenset({MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN}),
    EXPORT_MEMBERS: frozenset({MARKETER, MEMBERSHIP_MANAGER, ANALYST, ADMIN}),
    EXPORT_IDS: frozenset({ANALYST, ADMIN}),
    MEMBER_360: frozenset({MEMBERSHIP_MANAGER, ANALYST, ADMIN}),
    UNMASK: frozenset({MEMBERSHIP_MANAGER, PRIVACY_OFFICER, ADMIN}),
    SAVE_AUDIENCE: frozenset({MARKETER, ANALYST, ADMIN}),
    IMPORT: frozenset({ANALYST, ADMIN}),
    REPLACE_DATA: frozenset({ADMIN}),
    MANAGE_USERS: frozenset({ADMIN}),
    PRIVACY_REQUESTS: frozenset({PRIVACY_OFFICER, ADMIN}),
    ERASE_MEMBER: frozenset({PRIVACY_OFFICER, ADMIN}),
    VIEW_AUDIT: frozenset({PRIVACY_OFFICER, ADMIN}),
    PURGE: frozenset({PRIVACY_OFFICER, ADMIN}),
    CLEAR_CACHES: frozenset({ADMIN}),
    TRAIN_MODELS: frozenset({MEMBERSHIP_MANAGER, ANALYST, ADMIN}),
}
#: Actions a user restricted to regions or channels may never carry out (they act on the whole warehouse).
WHOLE_WAREHOUSE_ACTIONS = frozenset({IMPORT, REPLACE_DATA, MANAGE_USERS, PRIVACY_REQUESTS, ERASE_MEMBER,
                                     VIEW_AUDIT, PURGE, CLEAR_CACHES})
#: Actions that destroy data: asked to be confirmed, admin or privacy officer only.
DESTRUCTIVE_ACTIONS = frozenset({REPLACE_DATA, ERASE_MEMBER, PURGE})

assert set(ALLOWED) == set(ACTIONS), "every action needs its roles"
assert all(roles <= set(ROLES) for roles in ALLOWED.values())
assert all(ALLOWED[a] <= {PRIVACY_OFFICER, ADMIN} for a in DESTRUCTIVE_ACTIONS)


class AccessDenied(MemberLensError):
    """The signed-in user's role does not allow what was asked; nothing was done or shown."""


@dataclass(frozen=True)
class Principal:
    """Who is acting: the signed-in identity (never typed by the user), their role, and their row-level
    restriction (regions and sales channels; empty = everything).

    ``identity`` is the OpenID Connect email (or subject) when sign-in is configured, ``local:<account>`` for the
    single user of a local install, ``cli:<account>`` for the command line. ``role`` is None for a signed-in
    user nobody has given a role yet."""

    identity: str
    name: str = ""
    role: str | None = None
    regions: tuple[str, ...] = ()
    channels: tuple[str, ...] = field(default=())
    local: bool = False

    def __post_init__(self) -> None:
        if self.role is not None and self.role not in ROLES:
            raise AccessDenied(f"Unknown role {self.role!r}.", f"Roles are {', '.join(ROLES)}.")
        object.__setattr__(self, "regions", tuple(sorted(set(self.regions))))
        object.__setattr__(self, "channels", tuple(sorted(set(self.channels))))

    @property
    def restricted(self) -> bool:
        """Restricted to some regions or sales channels."""
        return bool(self.regions or self.channels)

    @property
    def label(self) -> str:
        """How the user is named on screen: name and identity."""
        return f"{self.name} ({self.identity})" if self.name and self.name != self.identity else self.identity

    def scope(self, excluded: Iterable[str] = ()) -> Scope:
        """The user's row-level restriction as the analyses' :class:`~analytics.filters.Scope`, leaving out
        ``excluded`` member ids."""
        return Scope(self.regions, self.channels, tuple(excluded))


def local_principal(account: str | None = None) -> Principal:
    """The one user of a local install (no sign-in configured, loopback only): admin."""
    name = account or _account()
    return Principal(f"local:{name}", name, ADMIN, local=True)


def cli_principal() -> Principal:
    """The command line: the operating-system user who holds the database credentials, admin."""
    name = _account()
    return Principal(f"cli:{name}", name, ADMIN, local=True)


def _account() -> str:
    try:
        return os.environ.get("MEMBERLENS_USER", "") or getpass.getuser() or "user"
    except (KeyError, OSError):
        return "user"


def page_rule(page: str) -> PageRule:
    """The rule of a page (admins only for a page the matrix does not know)."""
    return PAGES.get(page, _ADMIN_ONLY)


def allowed(principal: Principal | None, action: str) -> bool:
    """Whether ``principal`` may carry out ``action`` (False for an unknown action, no principal or no role)."""
    if principal is None or principal.role is None or action not in ALLOWED:
        return False
    if principal.restricted and action in WHOLE_WAREHOUSE_ACTIONS:
        return False
    return principal.role in ALLOWED[action]


def may_open(principal: Principal | None, page: str) -> bool:
    """Whether ``principal`` may open ``page`` (its key)."""
    if principal is None or principal.role is None:
        return False
    rule = page_rule(page)
    if principal.restricted and rule.unrestricted_only:
        return False
    return principal.role in rule.roles


def pages_for(principal: Principal | None, pages: Sequence[str]) -> list[str]:
    """The keys among ``pages`` that ``principal`` may open, in their order."""
    return [p for p in pages if may_open(principal, p)]


def _refusal(principal: Principal | None, what: str) -> str:
    if principal is None:
        return _("Sign in first: nobody may {what} without signing in.").format(what=what)
    if principal.role is None:
        return _("{identity} has no role yet, so may not {what}.").format(identity=principal.identity, what=what)
    if principal.restricted:
        return _("Your role ({role}, restricted to some regions or channels,) does not allow you to {what}.").format(
            role=role_label(principal.role), what=what)
    return _("Your role ({role}) does not allow you to {what}.").format(role=role_label(principal.role), what=what)


_ASK = N_("Ask an admin for a role that allows it (Admin → Users and roles, or {command}).")
_ASK_COMMAND = "`python -m analytics admin grant`"


def require(principal: Principal | None, action: str) -> Principal:
    """``principal`` when it may carry out ``action``; otherwise :class:`AccessDenied` naming what was refused."""
    if action not in ALLOWED:
        raise AccessDenied(f"Unknown action {action!r}.", f"Actions are {', '.join(ALLOWED)}.")
    if not allowed(principal, action):
        raise AccessDenied(_refusal(principal, action_text(action)), _(_ASK).format(command=_ASK_COMMAND))
    assert principal is not None
    return principal


def require_page(principal: Principal | None, page: str) -> Principal:
    """``principal`` when it may open ``page``; otherwise :class:`AccessDenied`."""
    if not may_open(principal, page):
        raise AccessDenied(_refusal(principal, _("open this page ({page})").format(page=page)),
                           _(_ASK).format(command=_ASK_COMMAND))
    assert principal is not None
    return principal


def matrix() -> list[dict[str, object]]:
    """The whole matrix as rows (``kind``: page or action, ``key``, ``what``, one column per role: allowed or not),
    for documentation and the Users and roles page."""
    rows: list[dict[str, object]] = []
    for key, rule in PAGES.items():
        rows.append({"kind": "page", "key": key, "what": key.replace("_", " "),
                     **{role: role in rule.roles for role in ROLES}})
    for key, text in ACTIONS.items():
        rows.append({"kind": "action", "key": key, "what": text, **{role: role in ALLOWED[key] for role in ROLES}})
    return rows
