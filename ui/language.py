"""The session's language: chosen once per script run, shown in the URL, switched from the sidebar.

Which language a run uses, in order: ``?lang=`` in the URL (a shared link opens in the sender's language), the
session's earlier choice (it survives page changes, which drop the URL's parameters), else the browser's
(``st.context.locale``: any ``zh-*`` reads Simplified Chinese, anything else English). The choice is written back
into the URL on every run, so the address bar can always be shared as it is.
"""

from __future__ import annotations

import streamlit as st

from analytics.i18n import LANGUAGES, language_of, set_language

#: Where the session keeps its language (not a widget key: widget state is dropped on pages without the widget).
SESSION_KEY = "memberlens_language"
#: How each language is written in the URL (BCP 47 tags, as browsers write them).
URL_TAGS: dict[str, str] = {"en": "en", "zh_CN": "zh-CN"}


def start_language() -> str:
    """Set this run's language (texts, figures, dates) and return it; call first in every run."""
    requested = st.query_params.get("lang")
    if requested:
        lang = language_of(requested)
    elif SESSION_KEY in st.session_state:
        lang = st.session_state[SESSION_KEY]
    else:
        lang = language_of(st.context.locale)
    st.session_state[SESSION_KEY] = lang
    set_language(lang)
    if st.query_params.get("lang") != URL_TAGS[lang]:
        st.query_params["lang"] = URL_TAGS[lang]
    return lang


#: Widgets whose value the browser keeps as the option's label, which changes with the language: on a switch
#: their values are handed over as values (read here, before the labels change), so a selection survives it.
CARRIED_KEYS: list[str] = []


def _switch() -> None:
    lang = st.session_state["language_selector"] or st.session_state.get(SESSION_KEY, "en")  # None: unselected
    st.session_state[SESSION_KEY] = lang
    st.query_params["lang"] = URL_TAGS[lang]
    for key in CARRIED_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def language_selector() -> None:
    """The sidebar's language switch (each language named in itself); the page redraws in it at once."""
    current = st.session_state.get(SESSION_KEY, "en")
    st.session_state["language_selector"] = current
    st.sidebar.segmented_control("Language / 语言", options=list(LANGUAGES), format_func=LANGUAGES.__getitem__,
                                 key="language_selector", on_change=_switch, label_visibility="collapsed")
