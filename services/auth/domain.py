"""The rules of identity, as pure functions: names, emails, passwords and token contents.

Nothing here does I/O, so every rule is unit-tested without a database. bcrypt
is CPU work, not I/O; the application layer runs it in a thread.

Usernames. The name is stored as typed after NFKC (so `admin` typed in fullwidth
letters becomes plain `admin` and ligatures split), must then match the API's pattern, and is
unique twice over: by its case-folded form (`Admin` = `admin`), which is also
the lookup key, and by its look-alike skeleton, so nobody can register a name
that reads like an existing one. The skeleton case-folds, then rewrites:

| seen as | becomes | because |
|---|---|---|
| `rn` | `m` | r+n kerned together reads as m |
| `vv` | `w` | two v's read as w |
| `0` | `o` | zero and letter o |
| `1`, `i` (and so `I`) | `l` | one, capital I and small L are one stroke in many fonts |
| `5` | `s` | five and S |

So `Admin`, `admin`, `adm1n`, `AdmIn`, `adrnin` and fullwidth `admin` all share the
skeleton `admln`. The table stays small on purpose: every entry also blocks
honest names (`cl` → `d` would make `clay` collide with `day`), so only pairs
that are genuinely hard to tell apart in a UI font are in it.

Emails are NFKC-normalised, trimmed and checked by email-validator without DNS
(registration must not depend on the network); the whole address is
case-folded for uniqueness, although the local part is case-sensitive by the
letter of RFC 5321, because no real mail provider treats `Bob@` and `bob@` as
two people and the opposite invites duplicate and spoofed accounts.

Passwords are NFKC-normalised (the same password typed on two keyboards
matches), 8-128 characters, not all whitespace, and not the username or email.
bcrypt reads only the first 72 bytes of its input (bcrypt 5 refuses longer
input), and 128 characters of UTF-8 can be 512 bytes, so two passwords sharing
a long prefix would collide. Every password is therefore pre-hashed:
`base64(sha256(nfkc(password)))` is 44 ASCII bytes, inside the limit and free
of NUL bytes (raw digests may contain them, and bcrypt stops at NUL). The
pre-hash is unsalted but never stored; bcrypt adds the salt and the cost.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
from email_validator import EmailNotValidError, validate_email

from common.contract import (
    EMAIL_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME_MAX,
    USERNAME_MIN,
    USERNAME_PATTERN,
    nfkc,
)
from common.errors import InvalidArgument

_USERNAME_RE = re.compile(USERNAME_PATTERN)
_CONFUSABLE_SEQUENCES = (("rn", "m"), ("vv", "w"))
_CONFUSABLE_CHARACTERS = str.maketrans({"0": "o", "1": "l", "i": "l", "5": "s"})
_BCRYPT_COST = re.compile(r"^\$2[abxy]?\$(\d{2})\$")

REFRESH_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Username:
    display: str
    canonical: str
    skeleton: str


@dataclass(frozen=True, slots=True)
class Email:
    address: str
    canonical: str


def username_key(raw: str) -> str:
    """The case-folded lookup key of a name, without validating it (logins, GetUser)."""
    return nfkc(raw).casefold()


def username_skeleton(canonical: str) -> str:
    """The look-alike skeleton of an already case-folded name (see the table above)."""
    skeleton = canonical
    for sequence, replacement in _CONFUSABLE_SEQUENCES:
        skeleton = skeleton.replace(sequence, replacement)
    return skeleton.translate(_CONFUSABLE_CHARACTERS)


def normalize_username(raw: str) -> Username:
    display = nfkc(raw)
    if not _USERNAME_RE.fullmatch(display):
        raise InvalidArgument.for_field(
            "username",
            f"must be {USERNAME_MIN}-{USERNAME_MAX} characters of letters, digits and underscores",
        )
    canonical = display.casefold()
    return Username(display=display, canonical=canonical, skeleton=username_skeleton(canonical))


def normalize_email(raw: str) -> Email:
    text = nfkc(raw).strip()
    if not text:
        raise InvalidArgument.for_field("email", "is required")
    if len(text) > EMAIL_MAX:
        raise InvalidArgument.for_field("email", f"must be at most {EMAIL_MAX} characters")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidArgument.for_field("email", str(error)) from None
    address = result.normalized
    if len(address) > EMAIL_MAX:
        raise InvalidArgument.for_field("email", f"must be at most {EMAIL_MAX} characters")
    return Email(address=address, canonical=address.casefold())


def email_key(raw: str) -> str | None:
    """The uniqueness key of an address, or None when it is not one (so it matches nobody)."""
    try:
        return normalize_email(raw).canonical
    except InvalidArgument:
        return None


def validate_password(
    raw: str, *, username: Username | None = None, email: Email | None = None
) -> str:
    password = nfkc(raw)
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidArgument.for_field(
            "password", f"must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
        )
    if not password.strip():
        raise InvalidArgument.for_field("password", "cannot be only whitespace")
    folded = password.casefold()
    if (username and folded == username.canonical) or (email and folded == email.canonical):
        raise InvalidArgument.for_field("password", "cannot be the username or email")
    return password


def prehash_password(password: str) -> bytes:
    """base64(sha256(nfkc(password))): 44 ASCII bytes, within bcrypt's 72-byte input."""
    return base64.b64encode(hashlib.sha256(nfkc(password).encode("utf-8")).digest())


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(prehash_password(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(prehash_password(password), password_hash.encode("ascii"))
    except ValueError:
        # A corrupt stored hash must fail closed, never crash into a 500 that reveals it.
        return False


def needs_rehash(password_hash: str, rounds: int) -> bool:
    """Whether a stored hash is weaker than the configured cost (upgraded on the next login)."""
    match = _BCRYPT_COST.match(password_hash)
    return match is None or int(match.group(1)) < rounds


def dummy_password_hash(rounds: int) -> str:
    """A hash of a random password at the configured cost.

    Logins for unknown users verify against it, so they take as long as logins
    with a wrong password and response time does not tell which names exist.
    """
    return hash_password(secrets.token_urlsafe(16), rounds)


def new_refresh_token() -> str:
    """256 random bits, URL-safe: the only copy goes to the client."""
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_digest(token: str) -> bytes:
    """What the database stores and looks up instead of the token.

    SHA-256 without salt or cost is enough here, unlike for passwords: the token
    has 256 bits of entropy, so there is nothing to guess, and a deterministic
    digest can be found through a unique index.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def access_token_claims(
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    token_id: uuid.UUID,
    issuer: str,
    audience: str,
    issued_at: datetime,
    ttl_seconds: int,
) -> dict[str, Any]:
    """The JWT claims of an access token; common.tokens.REQUIRED_CLAIMS lists the same set."""
    issued = int(issued_at.timestamp())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": str(token_id),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
    }
