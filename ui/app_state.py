"""The app-state database (saved audiences, audit log) as pages use it: one engine per URL, and a plain
message instead of a traceback when it cannot be opened."""

from __future__ import annotations

import getpass
import os

import streamlit as st
from sqlalchemy import Engine

from analytics.errors import StateError
from analytics.storage.appstate import open_state, resolve_state_url
from analytics.storage.databases import mask_url

USER_ENV = "MEMBERLENS_USER"


@st.cache_resource(show_spinner=False)
def _state_engine(url: str) -> Engine:
    return open_state(url)


def app_state() -> Engine | None:
    """The app-state engine, or None after showing why saved audiences are unavailable."""
    try:
        url = resolve_state_url()
        return _state_engine(url)
    except StateError as problem:
        unavailable(problem)
        return None


def unavailable(problem: StateError) -> None:
    """Say why saved audiences cannot be used (instead of a traceback)."""
    st.warning(f"Saved audiences are unavailable: {problem.problem} {problem.fix}", icon=":material/database:")


def state_location() -> str:
    """Where saved audiences go, safe to show (password masked)."""
    try:
        return mask_url(resolve_state_url())
    except StateError as problem:
        return problem.problem


def default_author() -> str:
    """Who is saving: the signed-in user when Streamlit authentication is set up, else ``MEMBERLENS_USER`` or
    the operating-system account."""
    try:
        if st.user.is_logged_in:
            return str(st.user.get("name") or st.user.get("email") or "")
    except (AttributeError, KeyError, RuntimeError):  # authentication not configured
        pass
    try:
        return os.environ.get(USER_ENV, "") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def record(actor: str, action: str, detail: dict) -> None:
    """Write an audited action to the app-state database; raise (so the action does not happen) when it cannot be
    written."""
    from analytics.errors import StateError
    from analytics.storage.appstate import log_event

    state = app_state()
    if state is None:
        raise StateError("The action was not carried out: the audit log (app-state database) cannot be written.",
                         "See the warning on the page about the app-state database.")
    log_event(state, actor or "unknown", action, detail)
