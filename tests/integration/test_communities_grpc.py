"""CommunitiesService through real gRPC against the running stack.

Users are registered through AuthService.Register and act by passing their id
as `x-agora-user-id` metadata, which is what the gateway does after verifying
an access token. Every test makes communities with names of its own, so tests
never depend on each other's data; listing tests only assert about the rows
they made.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import nats
import psycopg
import pytest
from agora.auth.v1 import auth_pb2, auth_pb2_grpc
from agora.communities.v1 import communities_pb2 as pb
from agora.communities.v1 import communities_pb2_grpc
from agora.events.v1 import events_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.dialects import postgresql

from common.events import new_event
from common.settings import CommonSettings, DatabaseSettings
from services.communities.repository import permissions_statement
from tests.integration.event_support import EventStream
from tests.integration.grpc_support import as_user, eventually, refused, violated_fields
from tools.stack import Stack

Metadata = list[tuple[str, str]]
TIMEOUT = 10


@dataclass
class Clients:
    communities: communities_pb2_grpc.CommunitiesServiceAsyncStub
    auth: auth_pb2_grpc.AuthServiceAsyncStub


@pytest.fixture(scope="module")
async def clients(stack: Stack) -> AsyncIterator[Clients]:
    async with (
        grpc.aio.insecure_channel(stack.address("communities")) as communities,
        grpc.aio.insecure_channel(stack.address("auth")) as auth,
    ):
        yield Clients(
            communities_pb2_grpc.CommunitiesServiceStub(communities),
            auth_pb2_grpc.AuthServiceStub(auth),
        )


def unique_name(prefix: str = "c") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def register(clients: Clients) -> str:
    username = f"u{uuid.uuid4().hex[:12]}"
    answer = await clients.auth.Register(
        auth_pb2.RegisterRequest(
            username=username, email=f"{username}@example.com", password="correct-horse-battery"
        ),
        timeout=TIMEOUT,
    )
    return answer.user.id


# Registration is bcrypt-bound and not what these tests are about: a few at a
# time, so a busy machine's database connections go to the calls under test.
REGISTRATIONS_AT_ONCE = 4


async def register_many(clients: Clients, count: int) -> list[str]:
    gate = asyncio.Semaphore(REGISTRATIONS_AT_ONCE)

    async def one() -> str:
        async with gate:
            return await register(clients)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def create(
    clients: Clients,
    owner: str,
    name: str | None = None,
    *,
    title: str = "A title",
    description: str = "",
    rules: list[pb.CommunityRule] | None = None,
) -> pb.Community:
    answer = await clients.communities.CreateCommunity(
        pb.CreateCommunityRequest(
            name=name or unique_name(),
            title=title,
            description=description,
            rules=rules or [],
        ),
        metadata=as_user(owner),
        timeout=TIMEOUT,
    )
    return answer.community


async def get(clients: Clients, name: str, reader: str | None = None) -> pb.Community:
    answer = await clients.communities.GetCommunity(
        pb.GetCommunityRequest(name=name),
        metadata=as_user(reader) if reader else None,
        timeout=TIMEOUT,
    )
    return answer.community


async def permissions(
    clients: Clients, community_id: str, user_id: str
) -> pb.GetPermissionsResponse:
    return await clients.communities.GetPermissions(
        pb.GetPermissionsRequest(community_id=community_id, user_id=user_id), timeout=TIMEOUT
    )


async def invalid_fields(call: Awaitable[object]) -> set[str]:
    return set(violated_fields(await refused(grpc.StatusCode.INVALID_ARGUMENT, call)))


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


# Creating and reading


async def test_create_makes_the_creator_member_and_first_moderator(clients: Clients) -> None:
    owner = await register(clients)
    name = unique_name("Py")
    rules = [
        pb.CommunityRule(title="Be kind", description="No insults."),
        pb.CommunityRule(title="On topic"),
    ]
    created = await create(
        clients, owner, name, title="  Python  ", description="All about Python.", rules=rules
    )
    assert created.name == name
    assert created.title == "Python"
    assert created.description == "All about Python."
    assert list(created.rules) == rules
    assert created.member_count == 1
    assert created.post_count == 0
    assert list(created.moderator_ids) == [owner]
    assert created.creator_id == owner
    assert created.is_member

    by_name = await get(clients, name.upper(), reader=owner)
    assert by_name == created
    by_id = await clients.communities.GetCommunity(
        pb.GetCommunityRequest(id=created.id), timeout=TIMEOUT
    )
    assert by_id.community.name == name
    assert not by_id.community.is_member  # an anonymous reader

    standing = await permissions(clients, created.id, owner)
    assert standing == pb.GetPermissionsResponse(
        community_exists=True, is_member=True, is_moderator=True, is_banned=False
    )


async def test_an_empty_title_defaults_to_the_name(clients: Clients) -> None:
    owner = await register(clients)
    created = await create(clients, owner, title="   ")
    assert created.title == created.name


async def test_names_are_unique_ignoring_case(clients: Clients) -> None:
    owner = await register(clients)
    name = unique_name("Go")
    await create(clients, owner, name)
    error = await refused(grpc.StatusCode.ALREADY_EXISTS, create(clients, owner, name.lower()))
    assert set(violated_fields(error)) == {"name"}


async def test_concurrent_creates_of_one_name_let_exactly_one_win(clients: Clients) -> None:
    owners = await register_many(clients, 6)
    name = unique_name("Rust")
    spellings = [name, name.lower(), name.upper(), name.swapcase(), name, name.lower()]
    results = await asyncio.gather(
        *(
            create(clients, owner, spelling)
            for owner, spelling in zip(owners, spellings, strict=True)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, pb.Community)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 5
    assert {error.code() for error in losers} == {grpc.StatusCode.ALREADY_EXISTS}
    community = await get(clients, name)
    assert community.member_count == 1
    assert list(community.moderator_ids) == [winners[0].creator_id]


async def test_bad_input_is_invalid_argument_with_field_violations(clients: Clients) -> None:
    owner = await register(clients)
    assert await invalid_fields(create(clients, owner, "ab")) == {"name"}
    assert await invalid_fields(create(clients, owner, "bad name!")) == {"name"}
    assert await invalid_fields(create(clients, owner, "x" * 22)) == {"name"}
    assert await invalid_fields(create(clients, owner, "bad-name", title="t" * 101)) == {
        "name",
        "title",
    }
    assert await invalid_fields(create(clients, owner, description="d" * 10_001)) == {"description"}
    assert await invalid_fields(create(clients, owner, title="tab\x00nul")) == {"title"}
    too_many = [pb.CommunityRule(title=f"rule {n}") for n in range(16)]
    assert await invalid_fields(create(clients, owner, rules=too_many)) == {"rules"}
    bad_rules = [
        pb.CommunityRule(title="fine"),
        pb.CommunityRule(title="  "),
        pb.CommunityRule(title="r" * 101, description="d" * 501),
    ]
    assert await invalid_fields(create(clients, owner, rules=bad_rules)) == {
        "rules[1].title",
        "rules[2].title",
        "rules[2].description",
    }

    stub = clients.communities
    for size in (-1, 101):
        assert await invalid_fields(
            stub.ListCommunities(pb.ListCommunitiesRequest(page_size=size), timeout=TIMEOUT)
        ) == {"limit"}
    assert await invalid_fields(
        stub.ListCommunities(pb.ListCommunitiesRequest(page_token="forged"), timeout=TIMEOUT)
    ) == {"cursor"}
    for query in ("", "   ", "q" * 201):
        assert await invalid_fields(
            stub.SearchCommunities(pb.SearchCommunitiesRequest(query=query), timeout=TIMEOUT)
        ) == {"q"}
    assert await invalid_fields(
        stub.BatchGetCommunities(
            pb.BatchGetCommunitiesRequest(ids=[str(uuid.uuid4()) for _ in range(101)]),
            timeout=TIMEOUT,
        )
    ) == {"ids"}

    community = await create(clients, owner)
    target = await register(clients)
    assert await invalid_fields(
        stub.BanUser(
            pb.BanUserRequest(name=community.name, user_id=target, reason="r" * 501),
            metadata=as_user(owner),
            timeout=TIMEOUT,
        )
    ) == {"reason"}
    assert await invalid_fields(
        stub.BanUser(
            pb.BanUserRequest(
                name=community.name,
                user_id=target,
                expires_at=timestamp(datetime.now(UTC) - timedelta(minutes=1)),
            ),
            metadata=as_user(owner),
            timeout=TIMEOUT,
        )
    ) == {"expires_at"}
    assert await invalid_fields(
        stub.UpdateCommunity(
            pb.UpdateCommunityRequest(name=community.name, title=""),
            metadata=as_user(owner),
            timeout=TIMEOUT,
        )
    ) == {"title"}


async def test_unknown_and_malformed_ids_are_not_found(clients: Clients) -> None:
    stub = clients.communities
    for lookup in (
        pb.GetCommunityRequest(id="not-a-uuid"),
        pb.GetCommunityRequest(id=str(uuid.uuid4())),
        pb.GetCommunityRequest(name="no"),
        pb.GetCommunityRequest(name=unique_name("none")),
    ):
        await refused(grpc.StatusCode.NOT_FOUND, stub.GetCommunity(lookup, timeout=TIMEOUT))
    owner = await register(clients)
    await refused(
        grpc.StatusCode.NOT_FOUND,
        stub.JoinCommunity(
            pb.JoinCommunityRequest(name=unique_name("none")),
            metadata=as_user(owner),
            timeout=TIMEOUT,
        ),
    )
    assert await permissions(clients, "not-a-uuid", owner) == pb.GetPermissionsResponse()
    assert await permissions(clients, str(uuid.uuid4()), owner) == pb.GetPermissionsResponse()


async def test_writes_need_a_signed_in_caller(clients: Clients) -> None:
    await refused(
        grpc.StatusCode.UNAUTHENTICATED,
        clients.communities.CreateCommunity(
            pb.CreateCommunityRequest(name=unique_name()), timeout=TIMEOUT
        ),
    )
    await refused(
        grpc.StatusCode.UNAUTHENTICATED,
        clients.communities.JoinCommunity(
            pb.JoinCommunityRequest(name=unique_name()), timeout=TIMEOUT
        ),
    )


async def test_batch_get_keeps_request_order_and_skips_unknown_ids(clients: Clients) -> None:
    owner = await register(clients)
    first, second = await create(clients, owner), await create(clients, owner)
    answer = await clients.communities.BatchGetCommunities(
        pb.BatchGetCommunitiesRequest(
            ids=[second.id, "junk", str(uuid.uuid4()), first.id, second.id]
        ),
        metadata=as_user(owner),
        timeout=TIMEOUT,
    )
    assert [c.id for c in answer.communities] == [second.id, first.id]
    assert all(c.is_member for c in answer.communities)


# Updating


async def test_only_moderators_update_and_rules_are_replaced_whole(clients: Clients) -> None:
    owner, outsider = await register_many(clients, 2)
    community = await create(
        clients, owner, description="before", rules=[pb.CommunityRule(title="Old rule")]
    )
    stub = clients.communities
    await refused(
        grpc.StatusCode.PERMISSION_DENIED,
        stub.UpdateCommunity(
            pb.UpdateCommunityRequest(name=community.name, title="Hijacked"),
            metadata=as_user(outsider),
            timeout=TIMEOUT,
        ),
    )

    answer = await stub.UpdateCommunity(
        pb.UpdateCommunityRequest(name=community.name.upper(), title="New title"),
        metadata=as_user(owner),
        timeout=TIMEOUT,
    )
    assert answer.community.title == "New title"
    assert answer.community.description == "before"
    assert [r.title for r in answer.community.rules] == ["Old rule"]

    new_rules = [pb.CommunityRule(title="One"), pb.CommunityRule(title="Two", description="2")]
    answer = await stub.UpdateCommunity(
        pb.UpdateCommunityRequest(
            name=community.name, description="after", rules=new_rules, update_rules=True
        ),
        metadata=as_user(owner),
        timeout=TIMEOUT,
    )
    assert answer.community.title == "New title"
    assert answer.community.description == "after"
    assert list(answer.community.rules) == new_rules

    answer = await stub.UpdateCommunity(
        pb.UpdateCommunityRequest(name=community.name, update_rules=True),
        metadata=as_user(owner),
        timeout=TIMEOUT,
    )
    assert list(answer.community.rules) == []
    assert (await get(clients, community.name)).title == "New title"


# Membership


async def join(clients: Clients, name: str, user: str) -> None:
    await clients.communities.JoinCommunity(
        pb.JoinCommunityRequest(name=name), metadata=as_user(user), timeout=TIMEOUT
    )


async def leave(clients: Clients, name: str, user: str) -> None:
    await clients.communities.LeaveCommunity(
        pb.LeaveCommunityRequest(name=name), metadata=as_user(user), timeout=TIMEOUT
    )


async def test_concurrent_joins_and_leaves_keep_the_count_exact(clients: Clients) -> None:
    owner = await register(clients)
    users = await register_many(clients, 30)
    community = await create(clients, owner)
    # Everyone joins twice, all at once: the repeats change nothing.
    await asyncio.gather(*(join(clients, community.name, user) for user in users + users))
    assert (await get(clients, community.name)).member_count == 31
    standing = await permissions(clients, community.id, users[7])
    assert standing.is_member
    assert not standing.is_moderator

    await asyncio.gather(*(leave(clients, community.name, user) for user in users[:20] * 2))
    after = await get(clients, community.name, reader=users[0])
    assert after.member_count == 11
    assert not after.is_member
    assert (await get(clients, community.name, reader=users[25])).is_member


async def test_memberships_list_joined_communities_newest_first(clients: Clients) -> None:
    owner, member = await register_many(clients, 2)
    joined = [await create(clients, owner) for _ in range(3)]
    for community in joined:
        await join(clients, community.name, member)
    await leave(clients, joined[1].name, member)
    answer = await clients.communities.ListMemberships(
        pb.ListMembershipsRequest(user_id=member), timeout=TIMEOUT
    )
    assert list(answer.community_ids) == [joined[2].id, joined[0].id]
    mine = await clients.communities.ListMemberships(
        pb.ListMembershipsRequest(), metadata=as_user(member), timeout=TIMEOUT
    )
    assert mine.community_ids == answer.community_ids


async def test_a_moderator_who_leaves_stays_moderator(clients: Clients) -> None:
    owner = await register(clients)
    community = await create(clients, owner)
    await leave(clients, community.name, owner)
    await leave(clients, community.name, owner)
    after = await get(clients, community.name, reader=owner)
    assert after.member_count == 0
    assert not after.is_member
    assert list(after.moderator_ids) == [owner]
    standing = await permissions(clients, community.id, owner)
    assert (standing.is_member, standing.is_moderator) == (False, True)
    await join(clients, community.name, owner)
    assert (await get(clients, community.name)).member_count == 1


# Moderators


async def add_moderator(clients: Clients, name: str, actor: str, user: str) -> None:
    await clients.communities.AddModerator(
        pb.AddModeratorRequest(name=name, user_id=user), metadata=as_user(actor), timeout=TIMEOUT
    )


async def remove_moderator(clients: Clients, name: str, actor: str, user: str) -> None:
    await clients.communities.RemoveModerator(
        pb.RemoveModeratorRequest(name=name, user_id=user),
        metadata=as_user(actor),
        timeout=TIMEOUT,
    )


async def test_moderator_rules(clients: Clients) -> None:
    owner, second, outsider = await register_many(clients, 3)
    community = await create(clients, owner)
    name = community.name

    await refused(
        grpc.StatusCode.PERMISSION_DENIED,
        add_moderator(clients, name, outsider, outsider),
    )
    await refused(
        grpc.StatusCode.NOT_FOUND,
        add_moderator(clients, name, owner, str(uuid.uuid4())),
    )
    await refused(grpc.StatusCode.NOT_FOUND, add_moderator(clients, name, owner, "nobody"))

    # Appointing makes a member too; doing it twice changes nothing.
    await add_moderator(clients, name, owner, second)
    await add_moderator(clients, name, owner, second)
    after = await get(clients, name)
    assert list(after.moderator_ids) == [owner, second]
    assert after.member_count == 2
    assert (await permissions(clients, community.id, second)).is_moderator

    # The newer moderator may remove the creator; a moderator may remove themself unless last.
    await refused(
        grpc.StatusCode.PERMISSION_DENIED,
        remove_moderator(clients, name, outsider, second),
    )
    await remove_moderator(clients, name, second, owner)
    assert list((await get(clients, name)).moderator_ids) == [second]
    await refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        remove_moderator(clients, name, second, second),
    )
    # The former moderator has no say any more.
    await refused(grpc.StatusCode.PERMISSION_DENIED, add_moderator(clients, name, owner, owner))

    await add_moderator(clients, name, second, owner)
    assert list((await get(clients, name)).moderator_ids) == [second, owner]
    await remove_moderator(clients, name, second, second)
    assert list((await get(clients, name)).moderator_ids) == [owner]
    # Removing a user who is not a moderator is a no-op.
    await remove_moderator(clients, name, owner, outsider)
    assert list((await get(clients, name)).moderator_ids) == [owner]


async def test_two_moderators_removing_each_other_at_once_leave_one(clients: Clients) -> None:
    first, second = await register_many(clients, 2)
    community = await create(clients, first)
    await add_moderator(clients, community.name, first, second)
    results = await asyncio.gather(
        remove_moderator(clients, community.name, first, second),
        remove_moderator(clients, community.name, second, first),
        return_exceptions=True,
    )
    assert len((await get(clients, community.name)).moderator_ids) == 1
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failures) == 1
    assert failures[0].code() in (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    )


# Bans


async def ban(
    clients: Clients,
    name: str,
    actor: str,
    user: str,
    *,
    reason: str = "",
    expires_at: datetime | None = None,
) -> None:
    await clients.communities.BanUser(
        pb.BanUserRequest(
            name=name,
            user_id=user,
            reason=reason,
            expires_at=timestamp(expires_at) if expires_at else None,
        ),
        metadata=as_user(actor),
        timeout=TIMEOUT,
    )


async def test_ban_rules(clients: Clients) -> None:
    owner, troll, helper, outsider = await register_many(clients, 4)
    community = await create(clients, owner)
    name = community.name
    await join(clients, name, troll)
    await add_moderator(clients, name, owner, helper)
    assert (await get(clients, name)).member_count == 3

    await refused(grpc.StatusCode.PERMISSION_DENIED, ban(clients, name, outsider, troll))
    await refused(grpc.StatusCode.FAILED_PRECONDITION, ban(clients, name, owner, owner))
    await refused(grpc.StatusCode.FAILED_PRECONDITION, ban(clients, name, owner, helper))
    await refused(grpc.StatusCode.NOT_FOUND, ban(clients, name, owner, str(uuid.uuid4())))

    await ban(clients, name, owner, troll, reason="spam")
    assert (await get(clients, name)).member_count == 2
    assert await permissions(clients, community.id, troll) == pb.GetPermissionsResponse(
        community_exists=True, is_member=False, is_moderator=False, is_banned=True
    )
    await refused(grpc.StatusCode.PERMISSION_DENIED, join(clients, name, troll))
    await refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        add_moderator(clients, name, owner, troll),
    )
    # Banning again (new terms) and banning a non-member are fine.
    await ban(clients, name, helper, troll, reason="still spam")
    await ban(clients, name, owner, outsider)
    assert (await get(clients, name)).member_count == 2

    await clients.communities.UnbanUser(
        pb.UnbanUserRequest(name=name, user_id=troll), metadata=as_user(owner), timeout=TIMEOUT
    )
    assert not (await permissions(clients, community.id, troll)).is_banned
    await join(clients, name, troll)
    assert (await get(clients, name)).member_count == 3


async def test_an_expired_ban_no_longer_counts(clients: Clients) -> None:
    owner, user = await register_many(clients, 2)
    community = await create(clients, owner)
    await ban(
        clients, community.name, owner, user, expires_at=datetime.now(UTC) + timedelta(seconds=2)
    )
    assert (await permissions(clients, community.id, user)).is_banned
    await refused(grpc.StatusCode.PERMISSION_DENIED, join(clients, community.name, user))

    async def lifted() -> bool:
        return not (await permissions(clients, community.id, user)).is_banned

    await eventually(lifted, within=10)
    await join(clients, community.name, user)
    assert (await permissions(clients, community.id, user)).is_member


# Listing


async def list_all(
    clients: Clients,
    sort: pb.CommunitySort.ValueType,
    between_pages: Callable[[], Awaitable[object]],
) -> list[pb.Community]:
    seen: list[pb.Community] = []
    token = ""
    while True:
        answer = await clients.communities.ListCommunities(
            pb.ListCommunitiesRequest(sort=sort, page_size=7, page_token=token), timeout=TIMEOUT
        )
        assert len(answer.communities) <= 7
        seen += answer.communities
        token = answer.next_page_token
        if not token:
            return seen
        await between_pages()


@pytest.mark.parametrize("sort", [pb.COMMUNITY_SORT_POPULAR, pb.COMMUNITY_SORT_NEW])
async def test_pages_neither_repeat_nor_skip_while_communities_are_created(
    clients: Clients, sort: pb.CommunitySort.ValueType
) -> None:
    owner, fan = await register_many(clients, 2)
    made = [await create(clients, owner) for _ in range(15)]
    for community in made[::3]:
        await join(clients, community.name, fan)

    async def create_one() -> None:
        await create(clients, owner)

    before = {c.id for c in await list_all(clients, sort, lambda: asyncio.sleep(0))}
    assert {c.id for c in made} <= before
    seen = await list_all(clients, sort, create_one)
    ids = [c.id for c in seen]
    assert len(ids) == len(set(ids)), "a row was repeated"
    assert before <= set(ids), "a row was skipped"
    if sort == pb.COMMUNITY_SORT_POPULAR:
        keys = [(c.member_count, c.id) for c in seen]
    else:
        keys = [(c.created_at.ToMicroseconds(), c.id) for c in seen]
    assert keys == sorted(keys, reverse=True)


# Search


async def search(
    clients: Clients, query: str, page_size: int = 0, token: str = ""
) -> pb.SearchCommunitiesResponse:
    return await clients.communities.SearchCommunities(
        pb.SearchCommunitiesRequest(query=query, page_size=page_size, page_token=token),
        timeout=TIMEOUT,
    )


async def test_search_ranks_best_match_first_and_pages(clients: Clients) -> None:
    owner, fan = await register_many(clients, 2)
    word = f"zq{uuid.uuid4().hex[:8]}"
    exact = await create(clients, owner, word, title="Something else entirely")
    in_title = await create(clients, owner, title=f"All about {word}")
    in_description = await create(
        clients, owner, title="Miscellany", description=f"Now and then we talk about {word}."
    )
    twin_quiet = await create(clients, owner, title="Twins", description=f"{word} twin")
    twin_busy = await create(clients, owner, title="Twins", description=f"{word} twin")
    await join(clients, twin_busy.name, fan)
    await create(clients, owner, title="Unrelated", description="nothing to see")

    found = [c.id for c in (await search(clients, word.upper())).communities]
    # The exact name first, then the title (weight B) before descriptions (weight C).
    assert found[:2] == [exact.id, in_title.id]
    assert set(found) == {exact.id, in_title.id, in_description.id, twin_quiet.id, twin_busy.id}
    # Equal ranks: more members first.
    assert found.index(twin_busy.id) < found.index(twin_quiet.id)

    # A prefix of a word finds it too.
    assert set(found) == {c.id for c in (await search(clients, word[:6])).communities}

    # Paging one at a time, while new matches are created between pages,
    # neither repeats nor skips.
    paged: list[str] = []
    token = ""
    while True:
        answer = await search(clients, word, page_size=1, token=token)
        paged += [c.id for c in answer.communities]
        token = answer.next_page_token
        if not token:
            break
        await create(clients, owner, title="Late", description=f"{word} latecomer")
    assert paged[0] == exact.id
    assert len(paged) == len(set(paged))
    assert set(found) <= set(paged)

    # A cursor belongs to its query.
    token = (await search(clients, word, page_size=1)).next_page_token
    assert await invalid_fields(search(clients, f"{word} other", page_size=1, token=token)) == {
        "cursor"
    }
    # Queries without words, or with tsquery syntax, are just text.
    assert list((await search(clients, "!!! &&& :*")).communities) == []
    assert list((await search(clients, f"'{word}' & | !")).communities)


async def test_search_understands_web_search_syntax(clients: Clients) -> None:
    owner = await register(clients)
    word = f"zq{uuid.uuid4().hex[:8]}"
    # Names start with "n": a random name starting "ca" would rightly match `ca`.
    cats = await create(clients, owner, unique_name("n"), title=f"{word} cats")
    dogs = await create(clients, owner, unique_name("n"), title=f"{word} dogs")

    async def found(query: str) -> set[str]:
        return {c.id for c in (await search(clients, query)).communities}

    assert await found(word) == {cats.id, dogs.id}
    assert await found(f"{word} -dogs") == {cats.id}
    assert await found(f"{word} -dog") == {cats.id}
    assert await found(f"{word} cat") == {cats.id}
    # `ca` is no English word but a prefix of one; `do` would be a stop word.
    assert await found(f"{word} ca") == {cats.id}
    assert await found(f'"{word} dogs"') == {dogs.id}


# Events


async def test_post_count_follows_post_events_exactly_once(stack: Stack, clients: Clients) -> None:
    owner = await register(clients)
    community = await create(clients, owner)
    async with EventStream.connect(stack) as events:
        publish = events.publish

        def created(post: str) -> events_pb2.Event:
            return new_event(
                "posts",
                owner,
                post_created=events_pb2.PostCreated(
                    post_id=post, community_id=community.id, author_id=owner, title="hello"
                ),
            )

        async def post_count_is(n: int) -> bool:
            return (await get(clients, community.name)).post_count == n

        first = created(str(uuid.uuid4()))
        await publish(first)
        await eventually(lambda: post_count_is(1))
        # The same event again: JetStream drops the duplicate id, and a copy under
        # another message id reaches the consumer, which has applied it already.
        await publish(first)
        await publish(first, msg_id=str(uuid.uuid4()))
        # Events are consumed in order, so once a later one shows, the replays are done.
        await publish(created(str(uuid.uuid4())))
        await eventually(lambda: post_count_is(2))
        await asyncio.sleep(0.3)
        assert await post_count_is(2)

        deleted = new_event(
            "posts",
            owner,
            post_deleted=events_pb2.PostDeleted(
                post_id=first.post_created.post_id, community_id=community.id
            ),
        )
        await publish(deleted)
        await eventually(lambda: post_count_is(1))


async def test_changes_are_published_as_events(stack: Stack, clients: Clients) -> None:
    owner, member = await register_many(clients, 2)
    community = await create(clients, owner)
    await join(clients, community.name, member)
    prefix = stack.env["AGORA_NATS_SUBJECT_PREFIX"]
    client = await nats.connect(CommonSettings().nats_url.get_secret_value())
    try:
        js = client.jetstream()
        subscription = await js.subscribe(
            f"{prefix}communities.>", stream=stack.env["AGORA_NATS_STREAM"], ordered_consumer=True
        )
        wanted = {
            "community_created",
            "membership_changed:" + owner,
            "membership_changed:" + member,
        }
        found: dict[str, events_pb2.Event] = {}
        deadline = asyncio.get_running_loop().time() + 15
        while set(found) != wanted and asyncio.get_running_loop().time() < deadline:
            try:
                message = await subscription.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                continue
            event = events_pb2.Event.FromString(message.data)
            kind = event.WhichOneof("payload")
            if kind == "community_created" and event.community_created.community_id == community.id:
                found[kind] = event
            elif (
                kind == "membership_changed"
                and event.membership_changed.community_id == community.id
            ):
                found[f"{kind}:{event.membership_changed.user_id}"] = event
        assert set(found) == wanted
        assert found["community_created"].actor_id == owner
        assert found["membership_changed:" + member].membership_changed.member_count == 2
        assert found["membership_changed:" + member].membership_changed.joined
    finally:
        await client.close()


# Schema


def test_get_permissions_is_one_query_over_primary_keys(
    db_settings: DatabaseSettings, stack: Stack
) -> None:
    """The permission check's plan touches only primary-key indexes, never a table scan."""
    statement = permissions_statement(uuid.uuid4(), uuid.uuid4()).compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    with psycopg.connect(
        host=db_settings.host,
        port=db_settings.port,
        dbname=db_settings.name,
        user="agora_communities",
        autocommit=True,
    ) as conn:
        # An empty table makes a sequential scan the cheapest plan; forbid it to see the index.
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {statement}"))
    assert "Seq Scan" not in plan
    for index in ("pk_communities", "pk_memberships", "pk_moderators", "pk_bans"):
        assert index in plan
