"""The app-state database (saved audiences, audit log) as pages use it: one engine per URL, and a plain
message instead of a traceback when it cannot be opened."""

from __future__ import annotations

import getpass
import os

import streamlit as st
from sqlalchemy import Engine

from analytics.errors import StateError
from analytics.i18n import _
from analytics.storage.appstate import open_state, resolve_state_url
from analytics.storage.databases import mask_url

USER_ENV = "MEMBERLENS_USER"


@st.cache_resource(show_spinner=False)
def _state_engine(url: str) -> Engine:
    return open_state(url)


def app_state() -> Engine | None:
    """The app-state engine, or None after showing why saved audiences are unavailable."""
    try:
        return state_engine()
    except StateError as problem:
        unavailable(problem)
        return None


def state_engine() -> Engine:
    """The app-state engine; StateError when it cannot be opened (users, roles and the suppression list live there,
    so the app cannot run without it)."""
    return _state_engine(resolve_state_url())


def unavailable(problem: StateError) -> None:
    """Say why saved audiences cannot be used (instead of a traceback)."""
    st.warning(_("Saved audiences are unavailable: {problem} {fix}").format(problem=problem.problem, fix=problem.fix),
               icon=":material/database:")


def state_location() -> str:
    """Where saved audiences go, safe to show (password masked)."""
    try:
        return mask_url(resolve_state_url())
    except StateError as problem:
        return problem.problem


def default_author() -> str:
    """Who is acting: the signed-in identity (``local:<account>`` without sign-in). Never typed by the user."""
    from ui.context import current_context

    context = current_context()
    if context is not None and context.principal is not None:
        return context.principal.identity
    try:
        return "local:" + (os.environ.get(USER_ENV, "") or getpass.getuser())
    except (KeyError, OSError):
        return "local:user"


def _actor(actor: object) -> str:
    from analytics.access import Principal

    if isinstance(actor, Principal):
        return actor.identity
    return default_author()  # a name typed or passed by an older caller is never trusted


def record(actor: object, action: str, detail: dict, *, rows: int | None = None) -> None:
    """Write an audited action by ``actor`` (the signed-in :class:`~analytics.access.Principal`) to the app-state
    database; raise (so the action does not happen) when it cannot be written."""
    from analytics.storage.appstate import log_event

    state = app_state()
    if state is None:
        raise StateError("The action was not carried out: the audit log (app-state database) cannot be written.",
                         "See the warning on the page about the app-state database.")
    log_event(state, _actor(actor), action, detail, rows=rows)


def record_quietly(actor: object, action: str, detail: dict) -> None:
    """Write an audited event that does not gate anything (a refusal): a failure to write it is logged, not shown."""
    from analytics.errors import report_bug
    from analytics.storage.appstate import log_event

    try:
        log_event(state_engine(), _actor(actor), action, detail)
    except Exception as exc:  # noqa: BLE001 - the refusal itself must still be shown
        report_bug(exc, f"audit of {action}")
