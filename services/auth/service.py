"""The auth use cases: register, log in, refresh, log out, look users up, publish keys.

Each use case validates through domain, reads and writes through the
repository inside one `Database.transaction()` (the unit of work), and only
after that commits touches Redis, so a Redis outage can delay a revocation's
effect on access tokens but never lose the revocation itself.

bcrypt runs in a worker thread (it releases the GIL), never on the event loop
and never while a database connection is checked out: a 250 ms hash must not
hold one of the pool's few connections.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.errors import (
    AlreadyExists,
    FieldError,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from common.ids import parse_uuid, uuid7
from common.metrics import business_counter
from common.revocation import RevocationList
from services.auth import domain
from services.auth.keys import KeySet
from services.auth.models import RefreshToken, TokenFamily, User
from services.auth.repository import AuthRepository

log = logging.getLogger("agora.auth")

REGISTRATIONS = business_counter("registrations", "Accounts created.")
LOGINS = business_counter(
    "logins", "Sign-ins that started a session (right password); refreshes are not counted."
)

BAD_CREDENTIALS = "invalid username, email or password"
BAD_REFRESH_TOKEN = "refresh token is invalid, expired or revoked"  # noqa: S105 - a message
TOKEN_TYPE = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
BATCH_MAX = 100
# Verifiers accept tokens up to 30 s past `exp` (common.tokens leeway) and clocks
# drift: a denylist entry outlives the token it covers by this much.
REVOCATION_MARGIN_SECONDS = 60
PURGE_BATCH = 1000

_FIELD_OF_CONSTRAINT = {
    "uq_users_username_canonical": "username",
    "uq_users_username_skeleton": "username",
    "uq_users_email_canonical": "email",
}
_TAKEN_MESSAGE = {
    "username": "is taken, or too similar to a name that is",
    "email": "is already registered",
}

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: uuid.UUID
    username: str
    created_at: datetime
    karma: int
    # None unless the reader may see it (the user themself).
    email: str | None = None

    @classmethod
    def of(cls, user: User, *, with_email: bool = False) -> UserInfo:
        return cls(
            id=user.id,
            username=user.username,
            created_at=user.created_at,
            karma=user.karma,
            email=user.email if with_email else None,
        )


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = TOKEN_TYPE


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl_seconds: int
    refresh_ttl_seconds: int
    bcrypt_rounds: int

    @property
    def session_denial_seconds(self) -> int:
        """How long a revoked session must stay denied: its last access token's life."""
        return self.access_ttl_seconds + REVOCATION_MARGIN_SECONDS


def _collect(violations: list[FieldError], check: Callable[[str], T], value: str) -> T | None:
    try:
        return check(value)
    except InvalidArgument as error:
        violations.extend(error.field_errors)
        return None


def _invalid(violations: Iterable[FieldError]) -> InvalidArgument:
    errors = tuple(violations)
    return InvalidArgument(
        "; ".join(f"{e.field}: {e.message}" for e in errors), field_errors=errors
    )


def _already_exists(fields: Iterable[str]) -> AlreadyExists:
    errors = tuple(FieldError(f, _TAKEN_MESSAGE[f]) for f in sorted(set(fields)))
    return AlreadyExists("; ".join(f"{e.field} {e.message}" for e in errors), field_errors=errors)


def _conflict_field(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    return _FIELD_OF_CONSTRAINT.get(constraint) if isinstance(constraint, str) else None


class AuthService:
    def __init__(
        self,
        *,
        db: Database,
        revocations: RevocationList,
        keys: KeySet,
        policy: TokenPolicy,
        dummy_password_hash: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._revocations = revocations
        self._keys = keys
        self._policy = policy
        self._dummy_password_hash = dummy_password_hash
        self._clock = clock

    # Registration and login

    async def register(self, username: str, email: str, password: str) -> UserInfo:
        violations: list[FieldError] = []
        name = _collect(violations, domain.normalize_username, username)
        address = _collect(violations, domain.normalize_email, email)
        _collect(
            violations,
            lambda value: domain.validate_password(value, username=name, email=address),
            password,
        )
        if violations or name is None or address is None:
            raise _invalid(violations)

        # Answer a taken name before paying for bcrypt; the unique constraints
        # below still decide races between concurrent registrations.
        async with self._db.read() as session:
            taken = await AuthRepository(session).taken_fields(
                skeleton=name.skeleton, email_canonical=address.canonical
            )
        if taken:
            raise _already_exists(taken)

        password_hash = await asyncio.to_thread(
            domain.hash_password, password, self._policy.bcrypt_rounds
        )
        user = User(
            id=uuid7(),
            username=name.display,
            username_canonical=name.canonical,
            username_skeleton=name.skeleton,
            email=address.address,
            email_canonical=address.canonical,
            password_hash=password_hash,
        )
        try:
            async with self._db.transaction() as session:
                await AuthRepository(session).add_user(user)
        except IntegrityError as error:
            field = _conflict_field(error)
            if field is None:
                raise
            raise _already_exists([field]) from None
        REGISTRATIONS.inc()
        log.info("user registered", extra={"new_user_id": str(user.id)})
        return UserInfo.of(user, with_email=True)

    async def login(self, login: str, password: str) -> tuple[TokenPair, UserInfo]:
        # Read what is needed inside the block: leaving a read session expires its objects.
        async with self._db.read() as session:
            repo = AuthRepository(session)
            if "@" in login:
                key = domain.email_key(login)
                user = await repo.user_by_email(key) if key else None
            else:
                user = await repo.user_by_username(domain.username_key(login))
            found = UserInfo.of(user, with_email=True) if user else None
            # Unknown users cost one bcrypt too, so timing does not reveal who exists.
            stored_hash = user.password_hash if user else self._dummy_password_hash

        verified = await asyncio.to_thread(domain.verify_password, password, stored_hash)
        if found is None or not verified:
            raise Unauthenticated(BAD_CREDENTIALS)

        upgraded_hash = None
        if domain.needs_rehash(stored_hash, self._policy.bcrypt_rounds):
            upgraded_hash = await asyncio.to_thread(
                domain.hash_password, password, self._policy.bcrypt_rounds
            )

        now = self._clock()
        async with self._db.transaction() as session:
            repo = AuthRepository(session)
            family = TokenFamily(id=uuid7(), user_id=found.id, created_at=now)
            await repo.add_family(family)
            tokens, _ = await self._issue(repo, user_id=found.id, family_id=family.id, now=now)
            if upgraded_hash is not None:
                await repo.set_password_hash(found.id, upgraded_hash)
        LOGINS.inc()
        return tokens, found

    async def _issue(
        self, repo: AuthRepository, *, user_id: uuid.UUID, family_id: uuid.UUID, now: datetime
    ) -> tuple[TokenPair, RefreshToken]:
        """A new refresh token row in family_id plus a signed access token naming the family."""
        refresh_token = domain.new_refresh_token()
        row = RefreshToken(
            id=uuid7(),
            family_id=family_id,
            user_id=user_id,
            token_hash=domain.refresh_token_digest(refresh_token),
            created_at=now,
            expires_at=now + timedelta(seconds=self._policy.refresh_ttl_seconds),
        )
        await repo.add_refresh_token(row)
        claims = domain.access_token_claims(
            user_id=user_id,
            session_id=family_id,
            token_id=uuid.uuid4(),
            issuer=self._policy.issuer,
            audience=self._policy.audience,
            issued_at=now,
            ttl_seconds=self._policy.access_ttl_seconds,
        )
        pair = TokenPair(
            access_token=self._keys.sign(claims),
            refresh_token=refresh_token,
            expires_in=self._policy.access_ttl_seconds,
        )
        return pair, row

    # Sessions

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend refresh_token for a new pair in the same family (rotation).

        A token that was already spent means two parties hold it, one of them a
        thief: the whole family is revoked in the database and its access
        tokens are denied in Redis, and both parties must log in again.
        """
        digest = domain.refresh_token_digest(refresh_token)
        now = self._clock()
        reused: tuple[uuid.UUID, uuid.UUID] | None = None  # (family, user) of a replayed token
        pair: TokenPair | None = None
        async with self._db.transaction() as session:
            repo = AuthRepository(session)
            row = await repo.refresh_token_for_update(digest)
            family = await repo.family_for_update(row.family_id) if row else None
            if row is None or family is None:
                reason = "unknown"
            elif family.revoked_at is not None:
                reason = "revoked"
            elif row.used_at is not None:
                reason = "reused"
                reused = (family.id, row.user_id)
                await repo.revoke_family(family.id, reason="reuse", at=now)
            elif row.expires_at <= now:
                reason = "expired"
            else:
                reason = "ok"
                pair, successor = await self._issue(
                    repo, user_id=row.user_id, family_id=family.id, now=now
                )
                await repo.mark_spent(row.id, at=now, replaced_by=successor.id)
        # The block above commits even when refusing: a reuse revocation must stick.
        if pair is not None:
            return pair
        if reused is not None:
            family_id, user_id = reused
            log.warning(
                "spent refresh token presented again; session revoked",
                extra={"session_id": str(family_id), "subject_id": str(user_id)},
            )
            await self._deny_session(family_id)
        else:
            log.info("refresh refused", extra={"reason": reason})
        raise Unauthenticated(BAD_REFRESH_TOKEN)

    async def logout(
        self,
        caller: str,
        *,
        session_id: str = "",
        refresh_token: str = "",
        token_id: str = "",
        token_expires_at: datetime | None = None,
    ) -> None:
        """End the caller's session and, if given, the session of their refresh token.

        Sessions of other users are left alone without saying so: logout is
        idempotent and must not become a way to probe whose token is whose.
        """
        user_id = parse_uuid(caller)
        if user_id is None:
            raise Unauthenticated("caller identity is not a user id")
        named_session: uuid.UUID | None = None
        if session_id:
            named_session = parse_uuid(session_id)
            if named_session is None:
                raise InvalidArgument.for_field("session_id", "is not a session id")

        now = self._clock()
        ended: set[uuid.UUID] = set()
        async with self._db.transaction() as session:
            repo = AuthRepository(session)
            candidates: list[uuid.UUID] = []
            if named_session is not None:
                candidates.append(named_session)
            if refresh_token:
                row = await repo.refresh_token(domain.refresh_token_digest(refresh_token))
                if row is not None:
                    candidates.append(row.family_id)
            for family_id in set(candidates):
                family = await repo.family(family_id)
                if family is None:
                    continue
                if family.user_id != user_id:
                    # Holding someone else's session id or refresh token is worth a look.
                    log.warning(
                        "logout named another user's session; ignored",
                        extra={"session_id": str(family_id)},
                    )
                    continue
                await repo.revoke_family(family_id, reason="logout", at=now)
                ended.add(family_id)

        # API.md promises the access token stops working at once, which only
        # the Redis denylist can do: if it cannot be written, say so (503) so
        # the client retries; the sessions above are already ended for good.
        try:
            for family_id in ended:
                await self._revocations.revoke_session(
                    str(family_id), self._policy.session_denial_seconds
                )
            if token_id:
                latest = now + timedelta(seconds=self._policy.session_denial_seconds)
                expires_at = min(token_expires_at or latest, latest)
                await self._revocations.revoke_token(token_id, expires_at)
        except RedisError as error:
            log.warning(
                "logout could not deny access tokens in Redis",
                extra={"error": type(error).__name__},
            )
            raise Unavailable(
                "the session is ended, but its access tokens could not be revoked yet; retry"
            ) from error

    async def _deny_session(self, family_id: uuid.UUID) -> None:
        try:
            await self._revocations.revoke_session(
                str(family_id), self._policy.session_denial_seconds
            )
        except RedisError as error:
            log.warning(
                "could not deny the session in Redis; its access tokens expire on their own",
                extra={"session_id": str(family_id), "error": type(error).__name__},
            )

    # Users

    async def get_user(
        self,
        *,
        user_id: str = "",
        username: str = "",
        include_email: bool = False,
        caller: str | None = None,
    ) -> UserInfo:
        """One user by id or by name; the email only for the user themself."""
        async with self._db.read() as session:
            repo = AuthRepository(session)
            if user_id:
                parsed = parse_uuid(user_id)
                user = await repo.user_by_id(parsed) if parsed else None
            elif username:
                user = await repo.user_by_username(domain.username_key(username))
            else:
                raise InvalidArgument.for_field("id", "an id or a username is required")
            if user is None:
                raise NotFound("user not found")
            return UserInfo.of(user, with_email=include_email and caller == str(user.id))

    async def batch_get_users(self, ids: list[str], usernames: list[str]) -> list[UserInfo]:
        """Public views of the users found, in request order; unknown and malformed are skipped."""
        violations = [
            FieldError(field, f"at most {BATCH_MAX} entries")
            for field, values in (("ids", ids), ("usernames", usernames))
            if len(values) > BATCH_MAX
        ]
        if violations:
            raise _invalid(violations)
        wanted_ids = [parsed for value in ids if (parsed := parse_uuid(value)) is not None]
        wanted_names = [domain.username_key(name) for name in usernames]
        async with self._db.read() as session:
            rows = await AuthRepository(session).public_users(set(wanted_ids), set(wanted_names))
        by_id: dict[uuid.UUID, UserInfo] = {}
        by_name: dict[str, UserInfo] = {}
        for user_id, username, canonical, created_at, karma in rows:
            info = UserInfo(id=user_id, username=username, created_at=created_at, karma=karma)
            by_id[user_id] = by_name[canonical] = info
        ordered = [by_id.get(i) for i in wanted_ids] + [by_name.get(n) for n in wanted_names]
        # dict keeps the first position of each user and drops repeats.
        return list({info.id: info for info in ordered if info is not None}.values())

    def jwks(self) -> str:
        return self._keys.jwks_json

    # Housekeeping

    async def purge_expired_tokens(self) -> int:
        """Delete expired refresh tokens in batches; one replica at a time does it."""
        total = 0
        while True:
            async with self._db.transaction() as session:
                repo = AuthRepository(session)
                if not await repo.try_lock_purge():
                    return total
                deleted = await repo.purge_expired(before=self._clock(), limit=PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                if total:
                    log.info("purged expired refresh tokens", extra={"deleted": total})
                return total
