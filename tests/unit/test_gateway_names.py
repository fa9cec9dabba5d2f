"""The gateway's memory of usernames and community names: bounded, and asked only for news."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from agora.communities.v1 import communities_pb2
from agora.posts.v1 import posts_pb2

from gateway.clients import Clients
from gateway.hydrate import community_payloads, post_payloads
from gateway.names import BoundedNames


def test_split_and_learn() -> None:
    names = BoundedNames(10)
    known, missing = names.split(["a", "", "b", "a"])
    assert (known, missing) == ({}, ["a", "b"])
    names.learn({"a": "ann"})
    known, missing = names.split(["a", "b", "b"])
    assert (known, missing) == ({"a": "ann"}, ["b"])


def test_the_least_recently_used_go_first() -> None:
    names = BoundedNames(3)
    names.learn({"a": "1", "b": "2", "c": "3"})
    names.split(["a"])  # a is used: b is now the oldest
    names.learn({"d": "4"})
    assert len(names) == 3
    known, missing = names.split(["a", "b", "c", "d"])
    assert set(known) == {"a", "c", "d"}
    assert missing == ["b"]
    with pytest.raises(ValueError, match="capacity"):
        BoundedNames(0)


async def test_lookup_asks_once_for_the_unknown_only() -> None:
    names = BoundedNames(100)
    asked: list[list[str]] = []

    async def fetch(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {i: f"name-{i}" for i in ids if i != "ghost"}

    assert await names.lookup(["u1", "u2", "ghost"], fetch) == {"u1": "name-u1", "u2": "name-u2"}
    assert await names.lookup(["u2", "u1"], fetch) == {"u2": "name-u2", "u1": "name-u1"}
    # An id nobody knew is asked again: it may exist by now.
    assert await names.lookup(["u1", "u3", "ghost"], fetch) == {"u1": "name-u1", "u3": "name-u3"}
    assert asked == [["u1", "u2", "ghost"], ["u3", "ghost"]]


class _Recorder:
    """Stands in for auth and communities and records the batch calls made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def usernames(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(ids)
        self.calls.append(("usernames", wanted))
        return {i: f"name-{i}" for i in wanted}

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(ids)
        self.calls.append(("names", wanted))
        return {i: f"community-{i}" for i in wanted}


async def test_a_page_read_again_asks_nothing_and_new_ids_alone_are_asked() -> None:
    recorder = _Recorder()
    fake: Any = recorder
    clients = Clients(auth=fake, communities=fake)
    page = [
        posts_pb2.Post(id=f"p{i}", author_id=f"u{i % 3}", community_id=f"c{i % 2}")
        for i in range(6)
    ]
    first = await post_payloads(page, clients, signed_in=False)
    assert sorted(recorder.calls) == [("names", ["c0", "c1"]), ("usernames", ["u0", "u1", "u2"])]
    recorder.calls.clear()
    assert await post_payloads(page, clients, signed_in=False) == first
    assert recorder.calls == []
    newer = [*page, posts_pb2.Post(id="p9", author_id="u9", community_id="c9")]
    payloads = await post_payloads(newer, clients, signed_in=False, community_names={"c9": "nine"})
    assert recorder.calls == [("usernames", ["u9"])]
    assert (payloads[-1]["author"], payloads[-1]["community"]) == ("name-u9", "nine")


async def test_names_a_page_of_communities_shows_are_remembered() -> None:
    recorder = _Recorder()
    fake: Any = recorder
    clients = Clients(auth=fake, communities=fake)
    shown = [communities_pb2.Community(id="c1", name="one", moderator_ids=["m1"])]
    await community_payloads(shown, clients, signed_in=False)
    assert recorder.calls == [("usernames", ["m1"])]
    recorder.calls.clear()
    payloads = await post_payloads(
        [posts_pb2.Post(id="p1", author_id="m1", community_id="c1")], clients, signed_in=False
    )
    assert recorder.calls == []
    assert (payloads[0]["author"], payloads[0]["community"]) == ("name-m1", "one")
