"""The rules of communities, as pure functions: names, texts, rules, paging, search, moderation.

Nothing here does I/O, so every rule is unit-tested without a database.

Decisions (what Reddit and Lemmy users expect, where the API leaves room):

- Names are 3-21 ASCII letters, digits and underscores, kept as typed and
  unique case-insensitively (`Python` and `python` are one community). A lookup
  by a name that cannot exist answers NOT_FOUND without touching the database.
- An empty (or all-whitespace) title at creation defaults to the name, as a
  community needs something to show in a header; an update cannot blank it.
  Texts are trimmed; control characters are refused (newlines and tabs are
  fine in descriptions), which also keeps NUL bytes away from Postgres.
- Up to 15 rules, each a title of 1-100 characters and a description of at
  most 500; an update replaces the whole list (an empty list clears it).
- A moderator who leaves the community stays a moderator (as on Reddit);
  moderation is given up with RemoveModerator, which refuses to remove the
  last one. Any moderator may remove any other, or themself, unless last.
- Moderators cannot be banned (remove them first), nobody bans themself, and
  a ban removes the membership; a banned user is not made a moderator.
- Listings: POPULAR is (member_count desc, id desc), NEW (created_at desc,
  id desc), search (rank desc, member_count desc, id desc); every cursor holds
  the last row's full sort key, so pages never repeat or skip rows while new
  communities are created between them.
"""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.contract import (
    COMMUNITY_DESCRIPTION_MAX,
    COMMUNITY_NAME_PATTERN,
    COMMUNITY_TITLE_MAX,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_MIN,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
)
from common.errors import FailedPrecondition, FieldError, InvalidArgument, PermissionDenied
from common.ids import parse_uuid

RULES_MAX = 15
RULE_TITLE_MAX = 100
RULE_DESCRIPTION_MAX = 500
BAN_REASON_MAX = 500
BATCH_MAX = 100
MEMBERSHIPS_MAX = 1000
# A search uses at most this many words, each cut to this length: enough for
# any honest query, and a bound on the work one request can ask of the index.
SEARCH_TERMS_MAX = 16
SEARCH_TERM_MAX = 64

_NAME_RE = re.compile(COMMUNITY_NAME_PATTERN)
# Words as Postgres's text parser sees them: runs of letters and digits
# (an underscore separates words, so `python_dev` is `python` and `dev`).
_WORD_RE = re.compile(r"[^\W_]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_MULTILINE_ALLOWED = frozenset("\n\r\t")
# Cursor numbers go back to bigint columns.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Sort(enum.Enum):
    POPULAR = "popular"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Rule:
    title: str
    description: str

    def as_json(self) -> dict[str, str]:
        return {"title": self.title, "description": self.description}


@dataclass(frozen=True, slots=True)
class CommunityDraft:
    """A validated CreateCommunity request."""

    name: str
    title: str
    description: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class CommunityChanges:
    """A validated UpdateCommunity request: None leaves a field as it is."""

    title: str | None = None
    description: str | None = None
    rules: tuple[Rule, ...] | None = None


@dataclass(frozen=True, slots=True)
class Community:
    """A community as readers see it."""

    id: uuid.UUID
    name: str
    title: str
    description: str
    rules: tuple[Rule, ...]
    creator_id: uuid.UUID
    created_at: datetime
    member_count: int
    post_count: int
    # In appointment order, the creator first.
    moderator_ids: tuple[uuid.UUID, ...]
    # Whether the caller is a member; False for anonymous callers.
    is_member: bool


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a user may do in a community: the one check posts, comments and votes make."""

    community_exists: bool = False
    is_member: bool = False
    is_moderator: bool = False
    is_banned: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    # The query as typed, minus control characters: websearch_to_tsquery's input
    # (quotes, `or` and `-word` work as on a web search engine).
    text: str
    # A tsquery of every wanted word as a prefix and every `-word` negated
    # (`pyth:* & dev:* & !java`); built only from letters and digits, so it
    # cannot carry tsquery operators of its own. "" when no word is wanted.
    prefix: str
    # The `-word`s again, for websearch_to_tsquery (English stems), so the
    # prefix branch excludes `-dogs` as well as the stemmed `dog`; "" if none.
    exclusions: str
    # The lower-cased name the query may be exactly, or "" (ranks that first).
    exact_name: str

    @property
    def has_terms(self) -> bool:
        return bool(self.prefix)


def invalid(errors: Iterable[FieldError]) -> InvalidArgument:
    """One INVALID_ARGUMENT carrying every field violation found."""
    found = tuple(errors)
    return InvalidArgument("; ".join(f"{e.field}: {e.message}" for e in found), field_errors=found)


class Violations:
    """Collects field violations so a request learns of all its mistakes at once."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise invalid(self.errors)


def _has_control_characters(text: str, *, multiline: bool) -> bool:
    return any(
        unicodedata.category(ch) == "Cc" and not (multiline and ch in _MULTILINE_ALLOWED)
        for ch in text
    )


def _text(
    raw: str,
    field: str,
    violations: Violations,
    *,
    max_length: int,
    required: bool,
    multiline: bool,
) -> str:
    text = raw.strip()
    if required and not text:
        violations.add(field, "is required")
    elif len(text) > max_length:
        violations.add(field, f"must be at most {max_length} characters")
    elif _has_control_characters(text, multiline=multiline):
        violations.add(field, "must not contain control characters")
    return text


# Names


def is_valid_name(raw: str) -> bool:
    return _NAME_RE.fullmatch(raw) is not None


def name_key(name: str) -> str:
    """The case-insensitive identity of a name; equals Postgres's lower() on ASCII."""
    return name.lower()


def _check_name(raw: str, violations: Violations) -> None:
    if not is_valid_name(raw):
        violations.add("name", "must be 3-21 characters of letters, digits and underscores")


# Creating and updating


def _rules(raw: Sequence[tuple[str, str]], violations: Violations) -> tuple[Rule, ...]:
    if len(raw) > RULES_MAX:
        violations.add("rules", f"at most {RULES_MAX} rules")
        return ()
    rules = []
    for index, (title, description) in enumerate(raw):
        rules.append(
            Rule(
                title=_text(
                    title,
                    f"rules[{index}].title",
                    violations,
                    max_length=RULE_TITLE_MAX,
                    required=True,
                    multiline=False,
                ),
                description=_text(
                    description,
                    f"rules[{index}].description",
                    violations,
                    max_length=RULE_DESCRIPTION_MAX,
                    required=False,
                    multiline=True,
                ),
            )
        )
    return tuple(rules)


def community_draft(
    name: str, title: str, description: str, rules: Sequence[tuple[str, str]]
) -> CommunityDraft:
    violations = Violations()
    _check_name(name, violations)
    clean_title = _text(
        title,
        "title",
        violations,
        max_length=COMMUNITY_TITLE_MAX,
        required=False,
        multiline=False,
    )
    draft = CommunityDraft(
        name=name,
        title=clean_title or name,
        description=_text(
            description,
            "description",
            violations,
            max_length=COMMUNITY_DESCRIPTION_MAX,
            required=False,
            multiline=True,
        ),
        rules=_rules(rules, violations),
    )
    violations.raise_if_any()
    return draft


def community_changes(
    *,
    title: str | None,
    description: str | None,
    rules: Sequence[tuple[str, str]] | None,
) -> CommunityChanges:
    violations = Violations()
    changes = CommunityChanges(
        title=None
        if title is None
        else _text(
            title,
            "title",
            violations,
            max_length=COMMUNITY_TITLE_MAX,
            required=True,
            multiline=False,
        ),
        description=None
        if description is None
        else _text(
            description,
            "description",
            violations,
            max_length=COMMUNITY_DESCRIPTION_MAX,
            required=False,
            multiline=True,
        ),
        rules=None if rules is None else _rules(rules, violations),
    )
    violations.raise_if_any()
    return changes


def rules_from_json(value: Any) -> tuple[Rule, ...]:
    """The stored JSONB list of rules (written only by this service) as Rules."""
    return tuple(Rule(str(item["title"]), str(item.get("description", ""))) for item in value)


# Moderation


def require_moderator(is_moderator: bool) -> None:
    if not is_moderator:
        raise PermissionDenied("only moderators of this community may do this")


def check_ban(*, actor_id: uuid.UUID, target_id: uuid.UUID, target_is_moderator: bool) -> None:
    if target_id == actor_id:
        raise FailedPrecondition("you cannot ban yourself")
    if target_is_moderator:
        raise FailedPrecondition("a moderator cannot be banned; remove them as moderator first")


def check_moderator_removal(*, target_is_moderator: bool, moderator_count: int) -> None:
    if target_is_moderator and moderator_count <= 1:
        raise FailedPrecondition(
            "the last moderator cannot be removed; appoint another moderator first"
        )


def check_appointment(*, target_is_banned: bool) -> None:
    if target_is_banned:
        raise FailedPrecondition("a banned user cannot be a moderator; unban them first")


def ban_terms(
    reason: str, expires_at: datetime | None, *, now: datetime
) -> tuple[str, datetime | None]:
    violations = Violations()
    clean_reason = _text(
        reason,
        "reason",
        violations,
        max_length=BAN_REASON_MAX,
        required=False,
        multiline=True,
    )
    if expires_at is not None and expires_at <= now:
        violations.add("expires_at", "must be in the future")
    violations.raise_if_any()
    return clean_reason, expires_at


# Ids and paging


def batch_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """The ids to look up, in request order, without repeats; malformed ones match nothing."""
    if len(values) > BATCH_MAX:
        raise InvalidArgument.for_field("ids", f"at most {BATCH_MAX} ids")
    parsed = (parse_uuid(value) for value in values)
    return list(dict.fromkeys(value for value in parsed if value is not None))


def page_size(requested: int) -> int:
    if requested == 0:
        return PAGE_LIMIT_DEFAULT
    if not PAGE_LIMIT_MIN <= requested <= PAGE_LIMIT_MAX:
        raise InvalidArgument.for_field(
            "limit", f"must be between {PAGE_LIMIT_MIN} and {PAGE_LIMIT_MAX}"
        )
    return requested


def bad_cursor() -> InvalidArgument:
    return InvalidArgument.for_field("cursor", "invalid cursor")


def _int(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not _INT64_MIN <= value <= _INT64_MAX
    ):
        raise bad_cursor()
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_cursor()
    return float(value)


def _id(value: Any) -> uuid.UUID:
    parsed = parse_uuid(value) if isinstance(value, str) else None
    if parsed is None:
        raise bad_cursor()
    return parsed


def _fields(position: list[Any], count: int) -> list[Any]:
    if len(position) != count:
        raise bad_cursor()
    return position


def timestamp_key(moment: datetime) -> int:
    """Microseconds since the epoch: exact, unlike a float, so keyset comparisons hold."""
    return (moment - _EPOCH) // _ONE_MICROSECOND


def popular_position(member_count: int, community_id: uuid.UUID) -> list[Any]:
    return [member_count, str(community_id)]


def parse_popular_position(position: list[Any]) -> tuple[int, uuid.UUID]:
    count, community_id = _fields(position, 2)
    return _int(count), _id(community_id)


def new_position(created_at: datetime, community_id: uuid.UUID) -> list[Any]:
    return [timestamp_key(created_at), str(community_id)]


def parse_new_position(position: list[Any]) -> tuple[datetime, uuid.UUID]:
    micros, community_id = _fields(position, 2)
    try:
        created_at = _EPOCH + _int(micros) * _ONE_MICROSECOND
    except OverflowError:
        raise bad_cursor() from None
    return created_at, _id(community_id)


def search_position(rank: float, member_count: int, community_id: uuid.UUID) -> list[Any]:
    return [rank, member_count, str(community_id)]


def parse_search_position(position: list[Any]) -> tuple[float, int, uuid.UUID]:
    rank, count, community_id = _fields(position, 3)
    return _float(rank), _int(count), _id(community_id)


# Search


def search_query(raw: str) -> SearchQuery:
    text = "".join(ch for ch in raw if unicodedata.category(ch) != "Cc").strip()
    if not SEARCH_QUERY_MIN <= len(text) <= SEARCH_QUERY_MAX:
        raise InvalidArgument.for_field(
            "q", f"must be {SEARCH_QUERY_MIN}-{SEARCH_QUERY_MAX} characters"
        )
    wanted: list[str] = []
    excluded: list[str] = []
    for chunk in text.casefold().split():
        # `-word` excludes, as in websearch_to_tsquery; everything else is wanted.
        (excluded if chunk.startswith("-") else wanted).extend(
            word[:SEARCH_TERM_MAX] for word in _WORD_RE.findall(chunk)
        )
    wanted = list(dict.fromkeys(wanted))[:SEARCH_TERMS_MAX]
    excluded = list(dict.fromkeys(excluded))[:SEARCH_TERMS_MAX]
    return SearchQuery(
        text=text,
        prefix=" & ".join([f"{word}:*" for word in wanted] + [f"!{word}" for word in excluded])
        if wanted
        else "",
        exclusions=" ".join(f"-{word}" for word in excluded),
        exact_name=name_key(text) if is_valid_name(text) else "",
    )
