"""Who may run from this browser: Streamlit's OpenID Connect sign-in when `[auth]` is configured,
else the server's own machine only (or everyone, MATCHUP_OPEN_RUNS=1 on a trusted network). The
rules themselves are engine.jobs.access's; this reads the session's identity and the secrets."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import streamlit as st

from engine.errors import MatchupError
from engine.jobs import access
from engine.jobs.submit import read_only
from ui import loaders
from ui.markdown import literal

SIGN_IN_HOWTO = ("To let lab members run from their browsers, configure sign-in (`[auth]` in "
                 ".streamlit/secrets.toml; docs/lab.md: running a lab server), or set MATCHUP_OPEN_RUNS=1 on a "
                 "trusted network.")


@dataclass(frozen=True)
class Rights:
    can_run: bool
    admin: bool          # may cancel anybody's job
    user: str | None     # what a job records as requested_by
    why: str             # why not (or what holds), one line for the page
    mode: str            # readonly | signin | misconfigured | open | loopback | remote


def _auth_section() -> dict | None:
    try:
        if "auth" not in st.secrets:
            return None
        return {k: (dict(v) if hasattr(v, "keys") else v) for k, v in st.secrets["auth"].items()}
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no sign-in
        return None


def provider_name(section: dict) -> str | None:
    """None: the [auth] section is the provider; else the first [auth.NAME] provider."""
    if "client_id" in section or not any(isinstance(v, dict) for v in section.values()):
        return None
    return next(k for k, v in section.items() if isinstance(v, dict))


def auth_problem(section: dict) -> str | None:
    """What is missing from [auth] (Streamlit's required keys), or None."""
    missing = [k for k in ("redirect_uri", "cookie_secret") if not section.get(k)]
    name = provider_name(section)
    provider = section if name is None else section[name]
    missing += [k for k in ("client_id", "client_secret", "server_metadata_url") if not provider.get(k)]
    if missing:
        return f"[auth] in .streamlit/secrets.toml lacks {', '.join(missing)}"
    return None


@st.cache_data(ttl=60, show_spinner=False)
def provider_unreachable(url: str) -> str | None:
    """Why the identity provider's metadata cannot be read (None: it can), checked once a minute."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            json.loads(response.read())["authorization_endpoint"]
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its provider's metadata at {url} cannot be read ({type(e).__name__}: {getattr(e, 'reason', e)})"


def auth_state() -> tuple[dict | None, str | None]:
    """([auth] section or None, why sign-in cannot work or None)."""
    section = _auth_section()
    if section is None:
        return None, None
    problem = auth_problem(section)
    if problem is None:
        name = provider_name(section)
        problem = provider_unreachable((section if name is None else section[name])["server_metadata_url"])
    return section, problem


def is_loopback(address: str | None) -> bool:
    """Whether a peer address is this machine: 127.0.0.0/8, ::1, and IPv4 loopback seen through a
    dual-stack socket (::ffff:127.0.0.1, what a default `streamlit run` reports for 127.0.0.1)."""
    import ipaddress
    if not address:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


NO_PEER = "no network peer"  # a session that did not come over a socket (Streamlit's agent API)


def remote_address() -> str | None:
    """The browser's address when it is not on the loopback (NO_PEER for a session that has no
    socket at all); None for the server's own machine. Read from the session's own connection."""
    from streamlit.runtime import context as runtime_context  # the peer address itself, not st.context's view
    client = runtime_context._get_client_context()
    if client is None:
        return None  # no session client: a bare script run (tests), nothing reaches it over the network
    address = client.remote_ip
    if address is None:
        return NO_PEER
    if not isinstance(address, str):
        return None  # Streamlit's AppTest: a stand-in client on this machine
    return None if is_loopback(address) else address


LOOPBACK_PEERS = {"127.0.0.1", "::1", "localhost"}


def loopback_untrusted() -> str | None:
    """Why the loopback rule cannot be trusted on this server, or None. Behind FORWARDED_ALLOW_IPS
    (uvicorn, under Streamlit's server) the peer address is whatever a trusted proxy's
    X-Forwarded-For or Forwarded header says, so any browser can claim to be 127.0.0.1."""
    trusted = {p.strip() for p in os.environ.get("FORWARDED_ALLOW_IPS", "").split(",") if p.strip()}
    if trusted - LOOPBACK_PEERS:
        return (f"This server trusts forwarded addresses (FORWARDED_ALLOW_IPS={os.environ['FORWARDED_ALLOW_IPS']}), "
                "so a browser's address cannot prove it is on this machine: run controls are off without sign-in.")
    return None


def current() -> Rights:
    """This session's rights, read afresh on every run (never from session state)."""
    if read_only():
        return Rights(False, False, None, "This is a read-only demo (MATCHUP_READONLY=1): running is switched off.",
                      "readonly")
    section, problem = auth_state()
    if section is not None:
        if problem is not None:
            return Rights(False, False, None, f"Sign-in is misconfigured: {problem}. Nothing can be run from the "
                                              "browser until the lab fixes it; every page stays open.", "misconfigured")
        identity = access.identity_from_claims(st.user.to_dict()) if st.user.is_logged_in else None
        decision = access.decide(identity)
        why = literal(decision.why)  # the provider's e-mail text is shown as written, never as markup
        if decision.allowed:
            stale = access.signed_out_since(identity, loaders.get_store().last_sign_out(identity.requested_by))
            if stale is not None:
                return Rights(False, False, None, literal(stale), "signin")
        return Rights(decision.allowed, decision.admin, identity.requested_by if identity else None, why, "signin")
    remote = remote_address()
    if access.open_runs():
        return Rights(True, False, f"browser:{remote or 'localhost'}",
                      "Anyone who can reach this page may run (MATCHUP_OPEN_RUNS=1: a trusted network).", "open")
    untrusted = loopback_untrusted()
    if untrusted is not None:
        return Rights(False, False, None, untrusted + " " + SIGN_IN_HOWTO, "remote")
    if remote is None:  # the server's own machine (loopback): as trusted as its shell
        return Rights(True, True, "browser:localhost", "", "loopback")
    return Rights(False, False, None, "Run controls are offered on the server's own machine only. " + SIGN_IN_HOWTO,
                  "remote")


def at_action(shown: Rights) -> Rights | None:
    """The rights at the moment of a run or cancel, read again (a sign-out in another tab, or a
    fragment's rerun that kept the page's old rights, must not act); None, said on the page, when
    this session may no longer act as it did when the page was drawn."""
    now = current()
    if now.can_run and now.user == shown.user and (now.admin or not shown.admin):
        return now
    st.error(now.why if not now.can_run else "Your sign-in changed since this page was drawn; reload it.")
    return None


def record_sign_out() -> None:
    """Every session of this identity, in any tab or browser, signed in before now stops acting."""
    identity = access.identity_from_claims(st.user.to_dict())
    if identity is None:
        return
    try:
        loaders.get_store().record_sign_out(identity.requested_by)
    except MatchupError as e:  # the sign-out itself still happens
        st.error(literal(f"Your sign-out could not be recorded ({e}); other open tabs may still run until they "
                         "reload."))


def sidebar_account() -> None:
    """Sign in / sign out in the sidebar, when sign-in is configured and works."""
    section, problem = auth_state()
    if section is None or problem is not None:
        return
    with st.sidebar:
        if st.user.is_logged_in:
            who = st.user.get("email") or st.user.get("sub")
            st.caption(f"Signed in as {literal(who)}")  # the provider's text, shown as written
            if st.button("Sign out", key="sign_out"):
                record_sign_out()
                st.logout()
        elif st.button("Sign in", key="sign_in"):
            st.login(provider_name(section))
