"""``python -m analytics admin ...`` (users and roles) and ``python -m analytics privacy ...`` (members' requests,
retention): the command-line side of the Users and roles and Privacy requests pages.

The command line acts as the operating-system user who holds the database credentials (``cli:<account>``, admin:
:func:`analytics.access.cli_principal`); every change is written to the audit log under that identity, as on the
pages. Destructive commands (``privacy erase``, ``privacy purge``) need ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import pandas as pd

from analytics.access import ROLES, cli_principal, matrix, role_help
from analytics.cli import Context, subcommand
from analytics.commandline import iso_date
from analytics.errors import UsageError
from analytics.i18n import N_, _
from analytics.privacy_rights import (
    access_package,
    correct_member,
    erase_member,
    object_to_profiling,
    pending_for_owner,
    purge,
    retention_policy,
    retention_report,
    withdraw_objection,
)
from analytics.storage.appstate import open_state, resolve_state_url
from analytics.storage.privacy_store import requests
from analytics.storage.users import grant, list_users, revoke
from analytics.storage.warehouse import resolve_warehouse_config

ADMIN_ACTIONS = ("users", "grant", "revoke", "roles")
PRIVACY_ACTIONS = ("access", "erase", "correct", "object", "withdraw", "requests", "pending", "retention", "purge")


def _state():
    return open_state(resolve_state_url())


# --- admin ----------------------------------------------------------------------------------------------------

def _admin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ADMIN_ACTIONS, help=_("users: list them; grant IDENTITY ROLE; revoke "
                        "IDENTITY; roles: what each role may do"))
    parser.add_argument("identity", nargs="?", help=_("the user's sign-in identity (their email address)"))
    parser.add_argument("role", nargs="?", choices=ROLES, help=_("with grant: {roles}").format(roles="; ".join(
        f"{r}: {role_help(r)}" for r in ROLES)))
    parser.add_argument("--region", action="append", default=[], help=_("with grant: only members of this region "
                        "(repeat for several); --channel likewise restricts the sales channels"))
    parser.add_argument("--name", help=_("with grant: the user's name, for display"))


@subcommand("admin", N_("Users and roles: list users, grant a role (optionally restricted to regions and sales "
            "channels), revoke it, or print the role matrix. Changes are written to the audit log."),
            _admin_options, warehouse=False)
def _admin(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    if args.action == "roles":
        return pd.DataFrame(matrix())
    state = _state()
    try:
        if args.action == "users":
            return list_users(state)
        if not args.identity:
            raise UsageError(_("admin {action} needs the user's identity (their sign-in email)").format(
                action=args.action))
        if args.action == "grant":
            if not args.role:
                raise UsageError(_("admin grant needs a role: {roles}").format(roles=", ".join(ROLES)))
            grant(state, cli_principal(), args.identity, args.role, name=args.name, regions=args.region,
                  channels=args.channel)
        else:
            revoke(state, cli_principal(), args.identity)
        users = list_users(state)
        return users[users["identity"] == args.identity.strip().lower()]
    finally:
        state.dispose()


# --- privacy --------------------------------------------------------------------------------------------------

def _privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=PRIVACY_ACTIONS, help=_("access MEMBER --out FILE; erase MEMBER --yes; "
                        "correct MEMBER --set COLUMN=VALUE; object MEMBER; withdraw MEMBER; requests; pending (the "
                        "file for an external warehouse's owner); retention (what is past its period); purge --yes"))
    parser.add_argument("member", nargs="?", help=_("the member id"))
    parser.add_argument("--out", help=_("with access: write the package here (.zip: JSON and CSV; else JSON)"))
    parser.add_argument("--set", action="append", default=[], metavar="COLUMN=VALUE",
                        help=_("with correct: the corrected value (repeat for several)"))
    parser.add_argument("--reference", default="", help=_("the member's reference for the request (a ticket number)"))
    parser.add_argument("--today", type=iso_date, help=_("with retention and purge: the day periods count back from "
                        "(default today)"))
    parser.add_argument("--owner-file", help=_("with purge on an external warehouse: write the inactive members its "
                        "owner must anonymise here (CSV)"))
    parser.add_argument("--yes", action="store_true", help=_("confirm erase and purge (they delete data)"))


@subcommand("privacy", N_("Members' privacy requests (access, erasure, correction, objection to profiling) and "
            "retention. Requests are recorded and audited; erasure and objection are honoured at once by every "
            "analysis. Dates, channels and tiers are ignored."), _privacy_options)
def _privacy(ctx: Context) -> pd.DataFrame:
    args = ctx.args
    url = args.url or resolve_warehouse_config().url
    by = cli_principal()
    state = _state()
    try:
        if args.action == "requests":
            return requests(state, member_id=args.member)
        if args.action == "pending":
            return pending_for_owner(state)
        today = args.today or date.today()
        if args.action == "retention":
            return retention_report(ctx.engine, state, retention_policy(), today)
        if args.action == "purge":
            if not args.yes:
                raise UsageError(_("privacy purge deletes data past its retention period: add --yes to confirm"))
            ctx.engine.dispose()  # DuckDB allows one writer: release the read-only connection first
            done = purge(url, ctx.engine, state, by, retention_policy(), today)
            if args.owner_file:
                done.members_for_owner.to_csv(args.owner_file, index=False)
            return pd.DataFrame([{"anonymised_members": done.anonymised_members,
                                  "members_for_owner": len(done.members_for_owner), "audit_rows": done.audit_rows,
                                  "saved_audiences": done.saved_audiences, "uploads": done.uploads}])
        if not args.member:
            raise UsageError(_("privacy {action} needs the member id").format(action=args.action))
        if args.action == "access":
            if not args.out:
                raise UsageError(_("privacy access needs --out FILE (.zip or .json): the package holds personal data"))
            package = access_package(ctx.engine, state, by, args.member)
            Path(args.out).write_bytes(package.to_zip() if args.out.endswith(".zip") else package.to_json())
            print(_("note: {rows:,} rows about {member} written to {path}").format(
                rows=package.rows, member=package.member_id, path=args.out), file=sys.stderr)
            return pd.DataFrame([{"table": name, "rows": len(frame)}
                                 for name, frame in {**package.warehouse, **package.app_state}.items()])
        if args.action == "erase":
            if not args.yes:
                raise UsageError(_("privacy erase deletes the member's data: add --yes to confirm"))
            ctx.engine.dispose()
            result = erase_member(url, state, by, args.member, args.reference)
        elif args.action == "correct":
            pairs = [item.split("=", 1) for item in args.set]
            if not pairs or any(len(p) != 2 for p in pairs):
                raise UsageError(_("privacy correct needs --set COLUMN=VALUE (e.g. --set phone=13800000000)"))
            ctx.engine.dispose()
            result = correct_member(url, state, by, args.member, dict(pairs), args.reference)
        elif args.action == "object":
            result = object_to_profiling(state, by, args.member, args.reference)
        else:
            result = withdraw_objection(state, by, args.member, args.reference)
        return pd.DataFrame([{"request_id": result.request_id, "status": result.status,
                              **{f"changed_{t}": n for t, n in result.changed.items()}}])
    finally:
        state.dispose()
