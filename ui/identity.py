"""Who is using the app: sign-in through Streamlit's own ``st.login`` (OpenID Connect), or the single user of a local
install; and the refusal to serve a network without sign-in.

* **Sign-in configured** (an ``[auth]`` section in ``.streamlit/secrets.toml``, any OIDC provider): nobody sees
  anything before signing in; the signed-in identity (the ID token's email, else its subject) is looked up in the
  users table of the app-state database for its role (:mod:`analytics.storage.users`). A signed-in user without a
  role sees a page that says so, and nothing else.
* **No sign-in configured**: MemberLens is a single-user local tool. It must listen on loopback only
  (``address = "127.0.0.1"`` in ``.streamlit/config.toml``); the one user is admin, and the sidebar says so. Bound
  to any other address it refuses to serve anything and says how to configure sign-in, unless
  ``MEMBERLENS_OPEN_WITHOUT_SIGN_IN=anyone-on-the-network-is-admin`` is set, in which case every page carries a red
  banner saying that anyone who can reach the server is admin.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import streamlit as st

from analytics.access import ROLE_LABELS, Principal, local_principal
from analytics.i18n import N_, _, code_label
from analytics.storage.users import configured_admins, signed_in

#: The explicit, documented override for serving a network without sign-in; the value must be exactly this.
OPEN_ENV = "MEMBERLENS_OPEN_WITHOUT_SIGN_IN"
OPEN_VALUE = "anyone-on-the-network-is-admin"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

HOW_TO_SIGN_IN = """\
Configure sign-in in `.streamlit/secrets.toml` with any OpenID Connect provider (Google, Microsoft Entra,
Okta, Auth0, Keycloak ...):

```toml
[auth]
redirect_uri = "https://memberlens.example.com/oauth2callback"
cookie_secret = "a long random string"
client_id = "..."
client_secret = "..."
server_metadata_url = "https://accounts.google.com/.well-known/openid-configuration"

[memberlens]
admins = ["you@example.com"]   # made admin at their first sign-in; they give everyone else a role
```

and `pip install Authlib` (README, "Sign-in and roles"). Or serve on this machine only:
`streamlit run app.py --server.address 127.0.0.1` (the shipped `.streamlit/config.toml` does so)."""


def _secrets() -> Mapping:
    try:
        return st.secrets.to_dict() if hasattr(st.secrets, "to_dict") else dict(st.secrets)
    except Exception:  # noqa: BLE001 - no secrets file at all (StreamlitSecretNotFoundError and friends)
        return {}


def auth_configured() -> bool:
    """Whether sign-in is configured: an ``[auth]`` section in the secrets."""
    return isinstance(_secrets().get("auth"), Mapping)


def providers() -> list[str]:
    """The named providers of ``[auth.<name>]`` sections (none: one unnamed provider in ``[auth]`` itself)."""
    section = _secrets().get("auth", {})
    return [name for name, value in section.items() if isinstance(value, Mapping)]


def listening_address() -> str | None:
    """The address the server binds to (``server.address``; None binds every interface)."""
    value = st.get_option("server.address")
    return str(value).strip() if value else None


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if not address:
        return False  # unset: Streamlit listens on every interface
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def open_override() -> bool:
    """Whether the documented override for a network without sign-in is set (to exactly its value)."""
    return os.environ.get(OPEN_ENV, "") == OPEN_VALUE


def network_problem() -> str | None:
    """Why the app must not serve anything (no sign-in, not loopback, no override), or None."""
    if auth_configured() or open_override():
        return None
    address = listening_address()
    if is_loopback(address):
        return None
    where = f"address {address}" if address else "every network interface (server.address is not set)"
    return (f"MemberLens is listening on {where}, but sign-in is not configured: anyone who can reach this server "
            "would see every member's data.")


def current_principal(state) -> Principal | None:
    """The user of this session: the signed-in user with their role (sign-in configured), None before sign-in; the
    local admin without sign-in. ``state`` is the app-state engine (users and roles)."""
    if not auth_configured():
        return local_principal()
    user = st.user
    if not user.is_logged_in:
        return None
    identity = str(user.get("email") or user.get("sub") or "").strip()
    if not identity:
        return Principal("unknown", "", None)
    name = str(user.get("name") or identity)
    return signed_in(state, identity, name, configured_admins())


def show_network_refusal(problem: str) -> None:
    """The only page served when the network is open and sign-in is not configured."""
    st.title("MemberLens will not serve this network without sign-in")
    st.error(problem, icon=":material/lock_open:")
    st.markdown(HOW_TO_SIGN_IN)
    st.caption(f"To serve a trusted network without sign-in anyway (everyone is admin, every page says so), set "
               f"`{OPEN_ENV}={OPEN_VALUE}`.")


def show_sign_in() -> None:
    """The page everyone sees before signing in."""
    st.title("MemberLens")
    st.write("Sign in to see your shop's members and campaigns.")
    names = providers()
    if not names:
        st.button("Sign in", icon=":material/login:", type="primary", on_click=st.login, key="sign_in")
    for name in names:
        st.button(f"Sign in with {name.title()}", icon=":material/login:", type="primary", on_click=st.login,
                  args=(name,), key=f"sign_in_{name}")


def show_no_role(principal: Principal) -> None:
    """What a signed-in user without a role sees."""
    st.title("MemberLens")
    st.warning(f"You are signed in as **{principal.identity}**, but you have no role in MemberLens yet.",
               icon=":material/person_off:")
    st.write("Ask an admin to give you one (Admin → Users and roles, or `python -m analytics admin grant "
             f"{principal.identity} ROLE`).")
    st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="sign_out_no_role")


def sidebar_identity(principal: Principal) -> None:
    """Who is signed in, with which role (and restriction), and how to sign out; or the local single-user note."""
    with st.sidebar:
        if principal.local:
            if open_override() and not is_loopback(listening_address()):
                st.error(_("**No sign-in:** anyone who can reach this server is admin."), icon=":material/lock_open:")
            else:
                st.caption(":material/computer: " + _("**Single-user local tool**: listening on this machine only "
                                                      "({address}), no sign-in; you are admin.").format(
                    address=listening_address()))
            return
        restriction = ""
        if principal.restricted:
            parts = [", ".join(principal.regions), ", ".join(code_label(c) for c in principal.channels)]
            restriction = "  \n" + _("Only: {restriction}").format(restriction="; ".join(p for p in parts if p))
        role_label = _(ROLE_LABELS.get(principal.role or "", N_("no role")))
        st.caption(f":material/badge: **{principal.name or principal.identity}** · "
                   f"{role_label}{restriction}")
        st.button(_("Sign out"), icon=":material/logout:", on_click=st.logout, key="sign_out")


def open_banner() -> None:
    """The loud banner on every page when the override serves a network without sign-in."""
    if not auth_configured() and open_override() and not is_loopback(listening_address()):
        st.error(_("**No sign-in, open network.** Anyone who can reach this server is admin and sees every member "
                   "({variable} is set). Configure sign-in before real member data goes in.").format(
            variable=OPEN_ENV), icon=":material/warning:")
