"""The pure rules of the communities service: names, texts, rules, moderation, paging, search."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from common.ids import uuid7
from services.communities import domain
from services.communities.domain import Rule


def fields(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.field_errors}


# Names


@pytest.mark.parametrize("name", ["abc", "Python", "ask_science", "a1_", "x" * 21])
def test_valid_names(name: str) -> None:
    assert domain.is_valid_name(name)
    assert domain.community_draft(name, "", "", []).name == name


@pytest.mark.parametrize(
    "name",
    ["", "ab", "x" * 22, "has space", "dash-ed", "dot.ted", "ünïcode", "abc\n", "ab\x00c", "abc "],
)
def test_invalid_names(name: str) -> None:
    assert not domain.is_valid_name(name)
    with pytest.raises(InvalidArgument) as error:
        domain.community_draft(name, "title", "", [])
    assert fields(error) == {"name"}


def test_names_compare_ignoring_case() -> None:
    assert domain.name_key("PyThOn") == domain.name_key("python") == "python"


# Creating and updating


def test_texts_are_trimmed_and_an_empty_title_defaults_to_the_name() -> None:
    draft = domain.community_draft("rust", "  ", "  Systems.\n", [("  Be kind ", " Please. ")])
    assert draft.title == "rust"
    assert draft.description == "Systems."
    assert draft.rules == (Rule("Be kind", "Please."),)
    assert domain.community_draft("rust", " Rust ", "", []).title == "Rust"


def test_every_violation_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.community_draft(
            "no",
            "t" * 101,
            "d" * 10_001,
            [("ok", ""), ("", ""), ("r" * 101, "d" * 501), ("tab\tin title", "")],
        )
    assert fields(error) == {
        "name",
        "title",
        "description",
        "rules[1].title",
        "rules[2].title",
        "rules[2].description",
        "rules[3].title",
    }


def test_limits_are_inclusive() -> None:
    draft = domain.community_draft(
        "edge", "t" * 100, "d" * 10_000, [("r" * 100, "d" * 500)] * domain.RULES_MAX
    )
    assert len(draft.rules) == 15


def test_at_most_fifteen_rules() -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.community_draft("many", "", "", [("rule", "")] * 16)
    assert fields(error) == {"rules"}


def test_control_characters_are_refused_but_descriptions_keep_newlines() -> None:
    assert domain.community_draft("ok_", "", "line\n\tnext\r\nend", []).description
    for title in ("nul\x00", "bell\x07", "line\nbreak"):
        with pytest.raises(InvalidArgument) as error:
            domain.community_draft("ok_", title, "", [])
        assert fields(error) == {"title"}
    with pytest.raises(InvalidArgument) as error:
        domain.community_draft("ok_", "", "nul\x00", [])
    assert fields(error) == {"description"}


def test_changes_leave_unset_fields_alone_and_refuse_a_blank_title() -> None:
    assert domain.community_changes(title=None, description=None, rules=None) == (
        domain.CommunityChanges()
    )
    changes = domain.community_changes(title=" New ", description="", rules=[])
    assert changes == domain.CommunityChanges(title="New", description="", rules=())
    with pytest.raises(InvalidArgument) as error:
        domain.community_changes(title="  ", description=None, rules=None)
    assert fields(error) == {"title"}


def test_rules_round_trip_through_json() -> None:
    rules = (Rule("One", ""), Rule("Two", "second"))
    assert domain.rules_from_json([rule.as_json() for rule in rules]) == rules


# Moderation


def test_only_moderators_moderate() -> None:
    domain.require_moderator(True)
    with pytest.raises(PermissionDenied):
        domain.require_moderator(False)


def test_nobody_bans_themself_or_a_moderator() -> None:
    actor, other = uuid7(), uuid7()
    domain.check_ban(actor_id=actor, target_id=other, target_is_moderator=False)
    with pytest.raises(FailedPrecondition):
        domain.check_ban(actor_id=actor, target_id=actor, target_is_moderator=True)
    with pytest.raises(FailedPrecondition):
        domain.check_ban(actor_id=actor, target_id=other, target_is_moderator=True)


def test_the_last_moderator_stays() -> None:
    domain.check_moderator_removal(target_is_moderator=True, moderator_count=2)
    # Removing someone who is not a moderator is a no-op, whatever the count.
    domain.check_moderator_removal(target_is_moderator=False, moderator_count=1)
    with pytest.raises(FailedPrecondition):
        domain.check_moderator_removal(target_is_moderator=True, moderator_count=1)


def test_banned_users_are_not_appointed() -> None:
    domain.check_appointment(target_is_banned=False)
    with pytest.raises(FailedPrecondition):
        domain.check_appointment(target_is_banned=True)


def test_ban_terms() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = now + timedelta(days=3)
    assert domain.ban_terms("  spam  ", later, now=now) == ("spam", later)
    assert domain.ban_terms("", None, now=now) == ("", None)
    with pytest.raises(InvalidArgument) as error:
        domain.ban_terms("r" * 501, now, now=now)
    assert fields(error) == {"reason", "expires_at"}


# Ids and paging


def test_batch_ids_keep_order_drop_repeats_and_skip_malformed() -> None:
    a, b = uuid7(), uuid7()
    assert domain.batch_ids([str(b), "junk", str(a), str(b).upper(), ""]) == [b, a]
    with pytest.raises(InvalidArgument) as error:
        domain.batch_ids([str(a)] * 101)
    assert fields(error) == {"ids"}


@pytest.mark.parametrize(("requested", "size"), [(0, 25), (1, 1), (100, 100)])
def test_page_sizes(requested: int, size: int) -> None:
    assert domain.page_size(requested) == size


@pytest.mark.parametrize("requested", [-1, 101, 10**6])
def test_bad_page_sizes(requested: int) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.page_size(requested)
    assert fields(error) == {"limit"}


def test_positions_round_trip_exactly() -> None:
    community = uuid7()
    moment = datetime(2025, 11, 25, 8, 59, 7, 123_457, tzinfo=UTC)
    assert domain.parse_new_position(domain.new_position(moment, community)) == (
        moment,
        community,
    )
    assert domain.parse_popular_position(domain.popular_position(42, community)) == (
        42,
        community,
    )
    rank = 1.2345678901234567
    assert domain.parse_search_position(domain.search_position(rank, 7, community)) == (
        rank,
        7,
        community,
    )


@pytest.mark.parametrize(
    "position",
    [
        [],
        [1],
        [1, "not-a-uuid"],
        ["1", str(uuid.uuid4())],
        [True, str(uuid.uuid4())],
        [1.5, str(uuid.uuid4())],
        [1, str(uuid.uuid4()), 3],
        [10**30, str(uuid.uuid4())],
    ],
)
def test_malformed_positions_are_bad_cursors(position: list[object]) -> None:
    for parse in (domain.parse_popular_position, domain.parse_new_position):
        with pytest.raises(InvalidArgument) as error:
            parse(position)
        assert fields(error) == {"cursor"}


# Search


def test_search_words_become_prefixes_and_exclusions() -> None:
    query = domain.search_query("  Pyth  web_dev -Java ")
    assert query.text == "Pyth  web_dev -Java"
    assert query.prefix == "pyth:* & web:* & dev:* & !java"
    assert query.exclusions == "-java"
    assert query.exact_name == ""
    assert query.has_terms


def test_search_text_cannot_smuggle_tsquery_syntax() -> None:
    query = domain.search_query("a:* | !b & (c) <-> 'd'")
    assert query.prefix == "a:* & b:* & c:* & d:*"
    nothing = domain.search_query("!!! &&& :*")
    assert not nothing.has_terms
    assert nothing.prefix == ""


def test_search_knows_an_exact_name_and_drops_control_characters() -> None:
    assert domain.search_query("Python").exact_name == "python"
    assert domain.search_query("py\x00thon").text == "python"


def test_search_bounds_its_words() -> None:
    query = domain.search_query(" ".join(f"w{n}" for n in range(40)))
    assert query.prefix.count(":*") == domain.SEARCH_TERMS_MAX
    long_word = domain.search_query("x" * 200)
    assert long_word.prefix == "x" * domain.SEARCH_TERM_MAX + ":*"


@pytest.mark.parametrize("raw", ["", "   ", "\x00\x01", "q" * 201])
def test_bad_search_queries(raw: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.search_query(raw)
    assert fields(error) == {"q"}
