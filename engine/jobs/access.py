"""Who may spend the lab's compute: the runners and admins lists, who asked for a job, the
per-user queue limit. Pure rules over an identity; the app reads the identity from Streamlit's
sign-in (st.user) and the shell is trusted (`cli:<os user>`).

MATCHUP_RUNNERS and MATCHUP_ADMINS hold comma- or space-separated e-mail addresses and `@domain`
entries; an admin may also run. An identity counts only with a verified e-mail."""
from __future__ import annotations

import getpass
import os
import re
import unicodedata
from dataclasses import dataclass

from engine import options
from engine.errors import MatchupError

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
DOMAIN = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
DEFAULT_MAX_QUEUED = 50


class AccessError(MatchupError):
    """A runners/admins list that cannot be read, or a request this user may not make."""


@dataclass(frozen=True)
class People:
    """Exact addresses and whole domains, lower-cased."""
    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    def __contains__(self, email: str | None) -> bool:
        """Whether an address (as canonical_email gives it) is listed, exactly or by its whole domain."""
        if not email:
            return False
        try:
            email = canonical_email(email)
        except AccessError:
            return False
        return email in self.emails or "@" + email.rpartition("@")[2] in self.domains

    def __bool__(self) -> bool:
        return bool(self.emails or self.domains)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def canonical_email(address: str) -> str:
    """The one form an address is compared in: exactly one `@`, no whitespace or control or format
    character; the local part ASCII-lowercased (never Unicode case folding: a Kelvin sign `\u212a`
    must not read as `k`); the domain as IDNA 2008 A-labels, lower case (a look-alike character
    that IDNA does not allow is refused, not mapped). AccessError says what is wrong."""
    import idna
    if not isinstance(address, str) or not address:
        raise AccessError("The sign-in gave no e-mail address.")
    odd = [c for c in address if c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")]
    if odd:
        raise AccessError(f"The signed-in e-mail address holds a space, control or invisible character "
                          f"(U+{ord(odd[0]):04X}), so it is not one well-formed address; this server does not "
                          "accept it. Ask the lab to check the account at the identity provider.")
    if address.count("@") != 1:
        raise AccessError(f"The signed-in e-mail address has {address.count('@')} '@' signs, not one, so it is not "
                          "one well-formed address; this server does not accept it.")
    local, domain = address.split("@")
    try:
        ascii_domain = idna.encode(domain.rstrip(".").translate(_ASCII_LOWER), uts46=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise AccessError(f"The signed-in e-mail address's domain is not a valid domain name ({e}); a look-alike "
                          "character is refused, never read as the letter it resembles.") from None
    if not local or not ascii_domain:
        raise AccessError("The signed-in e-mail address has an empty name or domain.")
    return f"{local.translate(_ASCII_LOWER)}@{ascii_domain}"


def parse_people(text: str | None, variable: str) -> People:
    """A runners or admins list; a malformed entry is refused, named."""
    emails, domains = set(), set()
    for entry in re.split(r"[,\s]+", text or ""):
        if not entry:
            continue
        if DOMAIN.match(entry):
            domains.add(entry.lower())
        elif EMAIL.match(entry):
            emails.add(entry.lower())
        else:
            raise AccessError(f"{variable} holds {entry!r}, which is neither an e-mail address (ada@lab.org) nor a "
                              f"domain (@lab.org). Fix that entry: {variable} is a comma-separated list of them.")
    return People(frozenset(emails), frozenset(domains))


def runners() -> People:
    return parse_people(os.environ.get("MATCHUP_RUNNERS"), "MATCHUP_RUNNERS")


def admins() -> People:
    return parse_people(os.environ.get("MATCHUP_ADMINS"), "MATCHUP_ADMINS")


def check_lists() -> None:
    """Read both lists once at start: a malformed entry stops the server with its name."""
    runners(), admins()


def max_queued_per_user() -> int:
    return int(options.env("MATCHUP_MAX_QUEUED_PER_USER", DEFAULT_MAX_QUEUED))


def open_runs() -> bool:
    """MATCHUP_OPEN_RUNS=1: a trusted network; anyone who reaches the page may run."""
    return os.environ.get("MATCHUP_OPEN_RUNS", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Identity:
    """A signed-in user as the identity provider vouches for them."""
    subject: str | None
    email: str | None
    email_verified: bool
    name: str | None = None
    issuer: str | None = None

    signed_in_at: float | None = None  # the ID token's issue time (epoch seconds)

    @property
    def requested_by(self) -> str:
        """What a job records: the verified e-mail (canonical_email), else the provider's subject."""
        if self.email and self.email_verified:
            try:
                return canonical_email(self.email)
            except AccessError:
                pass
        return f"sub:{self.issuer or ''}|{self.subject or ''}"


def identity_from_claims(claims: dict) -> Identity | None:
    """An Identity from OpenID Connect claims (st.user's), None when not signed in."""
    if not claims or not claims.get("is_logged_in", True) or not (claims.get("sub") or claims.get("email")):
        return None
    verified = claims.get("email_verified")
    issued = claims.get("auth_time") or claims.get("iat")
    return Identity(subject=str(claims.get("sub")) if claims.get("sub") else None,
                    email=str(claims["email"]) if claims.get("email") else None,
                    email_verified=verified is True or str(verified).lower() == "true",
                    name=claims.get("name"), issuer=claims.get("iss"),
                    signed_in_at=float(issued) if isinstance(issued, (int, float)) and not isinstance(issued, bool)
                    else None)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    admin: bool
    why: str


def decide(identity: Identity | None, runners_list: People | None = None, admins_list: People | None = None) -> Decision:
    """Whether this signed-in identity may run (and cancel any job, as an admin), and why not."""
    runners_list = runners() if runners_list is None else runners_list
    admins_list = admins() if admins_list is None else admins_list
    if identity is None:
        return Decision(False, False, "Sign in to run evaluations on this server.")
    if not identity.email or not identity.email_verified:
        return Decision(False, False, "Your identity provider did not vouch for an e-mail address (no verified "
                                      "e-mail in the sign-in), so this server cannot check you against its runners "
                                      "list. Ask the lab to verify your address with the provider.")
    try:
        email = canonical_email(identity.email)
    except AccessError as e:
        return Decision(False, False, str(e))
    if email in admins_list:
        return Decision(True, True, "")
    if email in runners_list:
        return Decision(True, False, "")
    return Decision(False, False, f"{email} is not on this server's runners list (MATCHUP_RUNNERS); "
                                  "you can look at everything, and ask the lab to add you to run.")


def signed_out_since(identity: Identity, last_sign_out: float | None) -> str | None:
    """Why a session may no longer act for `identity`: it signed out (in any tab or browser) after
    this session's sign-in. A session with no sign-in time is refused once the identity has
    signed out at all. None: the sign-in stands."""
    if last_sign_out is None:
        return None
    if identity.signed_in_at is None or identity.signed_in_at < int(last_sign_out):
        return ("This session's sign-in is older than your last sign-out (in this or another tab or browser), so "
                "it can no longer run or cancel. Sign in again.")
    return None


def cli_user() -> str:
    """The shell is trusted: its jobs record the OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"
