"""The pure rules of posts: links, titles, bodies, placeholders, paging and listing scopes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from common import ranking
from common.errors import InvalidArgument
from services.posts import domain
from services.posts.domain import Scope, Sort, Window


def _field_of(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [violation.field for violation in error.value.field_errors]


# Links


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("https://example.com", "https://example.com"),
        ("http://example.com/a/b?c=d#e", "http://example.com/a/b?c=d#e"),
        ("HTTPS://Example.com/Path", "https://Example.com/Path"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("https://[2001:db8::1]/", "https://[2001:db8::1]/"),
        ("https://bücher.example/straße", "https://bücher.example/straße"),
        ("https://example.com/search?q=a%20b", "https://example.com/search?q=a%20b"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_url_accepts_http_and_https_links(raw: str, stored: str) -> None:
    assert domain.validate_url(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.com/file",
        "mailto:someone@example.com",
        "//example.com/path",
        "example.com",
        "/relative/path",
        "https://",
        "https:///path-without-host",
        "http://:80/",
        "https://user@example.com/",
        "https://user:secret@example.com/",
        "https://good.example@evil.example/",
        "https://:pass@example.com/",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/\ttab",
        "https://example.com/\nnewline",
        "https://example.com\\@evil.example",
        "https://example.com/\u200bzero-width",
        "https://example.com:99999/",
        "https://example.com:port/",
        "https://example.com:0/",
        "https://[::1/",
    ],
)
def test_url_refuses_other_schemes_credentials_and_disguises(raw: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_url(raw)
    assert _field_of(error) == ["url"]


def test_url_length_limit() -> None:
    base = "https://example.com/"
    longest = base + "a" * (2000 - len(base))
    assert domain.validate_url(longest) == longest
    with pytest.raises(InvalidArgument) as error:
        domain.validate_url(longest + "a")
    assert _field_of(error) == ["url"]


# Titles and bodies


def test_title_is_trimmed_and_normalised() -> None:
    assert domain.validate_title("  Hello world  ") == "Hello world"
    # "e" + combining acute becomes the single precomposed character.
    assert domain.validate_title("Cafe\u0301") == "Caf\u00e9"
    assert domain.validate_title("x") == "x"


@pytest.mark.parametrize("raw", ["", "   ", "\u200b\u200b", "\t", "line one\nline two", "a\x00b"])
def test_title_refuses_empty_invisible_and_multiline(raw: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_title(raw)
    assert _field_of(error) == ["title"]


def test_title_length_counts_characters() -> None:
    assert domain.validate_title("é" * 300) == "é" * 300
    with pytest.raises(InvalidArgument) as error:
        domain.validate_title("a" * 301)
    assert _field_of(error) == ["title"]


def test_body_rules() -> None:
    assert domain.validate_body("") == ""
    assert domain.validate_body(" \n\t ") == ""
    assert domain.validate_body("a\r\nb\rc") == "a\nb\nc"
    assert domain.validate_body("    indented code\n\tand a tab") == (
        "    indented code\n\tand a tab"
    )
    assert domain.validate_body("x" * 40_000) == "x" * 40_000
    for bad in ("x" * 40_001, "nul \x00 byte", "bell \x07"):
        with pytest.raises(InvalidArgument) as error:
            domain.validate_body(bad)
        assert _field_of(error) == ["body"]


def test_validate_post_reports_every_bad_field_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        domain.validate_post("", "\x00", "javascript:alert(1)")
    assert _field_of(error) == ["title", "body", "url"]
    assert domain.validate_post(" T ", "b", "https://e.example") == ("T", "b", "https://e.example")


def test_reason_and_search_query_limits() -> None:
    assert domain.validate_reason("  spam  ") == "spam"
    assert domain.validate_reason("") == ""
    assert domain.validate_reason("r" * 500) == "r" * 500
    with pytest.raises(InvalidArgument) as error:
        domain.validate_reason("r" * 501)
    assert _field_of(error) == ["reason"]

    assert domain.validate_search_query("  rust async ") == "rust async"
    for bad in ("", "   ", "q" * 201):
        with pytest.raises(InvalidArgument) as error:
            domain.validate_search_query(bad)
        assert _field_of(error) == ["q"]


# Paging and listings


def test_page_size_defaults_and_bounds() -> None:
    assert domain.page_size(0) == 25
    assert domain.page_size(1) == 1
    assert domain.page_size(100) == 100
    for bad in (-1, 101, 10_000):
        with pytest.raises(InvalidArgument) as error:
            domain.page_size(bad)
        assert _field_of(error) == ["limit"]


def test_windows_apply_to_top_and_controversial_only() -> None:
    assert domain.effective_window(Sort.HOT, Window.HOUR) is None
    assert domain.effective_window(Sort.NEW, Window.YEAR) is None
    assert domain.effective_window(Sort.TOP, None) is Window.DAY
    assert domain.effective_window(Sort.CONTROVERSIAL, None) is Window.DAY
    assert domain.effective_window(Sort.TOP, Window.ALL) is Window.ALL
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert domain.window_cutoff(Window.HOUR, now) == now - timedelta(hours=1)
    assert domain.window_cutoff(Window.WEEK, now) == now - timedelta(days=7)
    assert domain.window_cutoff(Window.ALL, now) is None
    assert domain.window_cutoff(None, now) is None


def test_new_post_ranks_are_hot_at_creation_and_no_controversy() -> None:
    created = datetime(2026, 3, 1, tzinfo=UTC)
    assert domain.ranks(0, 0, created) == (ranking.hot(0, 0, created), 0.0)
    assert domain.ranks(10, 10, created)[1] == ranking.controversy(10, 10)


def test_cursor_scopes_bind_sort_window_and_scope() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert Scope.feed([a, b, a]).key == Scope.feed([b, a]).key
    assert Scope.feed([a, b]).key != Scope.feed([a]).key
    assert Scope.community(a).key != Scope.feed([a]).key
    scopes = {
        domain.listing_cursor_scope(sort, window, scope)
        for sort in (Sort.HOT, Sort.TOP)
        for window in (None, Window.DAY)
        for scope in (Scope.everything(), Scope.community(a), Scope.feed([a, b]))
    }
    assert len(scopes) == 12
    assert domain.search_cursor_scope("cats", None) != domain.search_cursor_scope("dogs", None)
    assert domain.search_cursor_scope("cats", a) != domain.search_cursor_scope("cats", None)


# Reading


@dataclass(frozen=True)
class StoredPost:
    id: uuid.UUID
    community_id: uuid.UUID
    author_id: uuid.UUID
    title: str = "A title"
    body: str = "A body"
    url: str = "https://example.com"
    score: int = 3
    upvotes: int = 4
    downvotes: int = 1
    comment_count: int = 7
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    edited_at: datetime | None = None
    locked: bool = False
    removed: bool = False
    pinned: bool = False
    deleted: bool = False


def _stored() -> StoredPost:
    return StoredPost(id=uuid.uuid4(), community_id=uuid.uuid4(), author_id=uuid.uuid4())


def test_a_visible_post_reads_as_written() -> None:
    post = _stored()
    view = domain.render(post)
    assert (view.title, view.body, view.url, view.author_id) == (
        post.title,
        post.body,
        post.url,
        post.author_id,
    )
    assert (view.score, view.comment_count, view.deleted, view.removed) == (3, 7, False, False)


def test_a_deleted_post_hides_its_content_and_author() -> None:
    view = domain.render(replace(_stored(), deleted=True))
    assert (view.title, view.body, view.url, view.author_id) == ("[deleted]", "", "", None)
    assert view.deleted
    assert view.comment_count == 7  # the thread survives


def test_a_removed_post_reads_as_removed_to_everyone() -> None:
    post = replace(_stored(), removed=True)
    view = domain.render(post)
    assert (view.title, view.body, view.url) == ("[removed]", "", "")
    assert view.author_id == post.author_id
    assert view.removed


def test_deleted_wins_over_removed() -> None:
    view = domain.render(replace(_stored(), removed=True, deleted=True))
    assert (view.title, view.author_id) == ("[deleted]", None)
