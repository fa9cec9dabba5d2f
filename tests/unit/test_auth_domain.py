"""The auth service's pure rules: names, look-alikes, emails, passwords, token contents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from common.errors import InvalidArgument
from common.tokens import REQUIRED_CLAIMS
from services.auth import domain

FAST_ROUNDS = 4  # bcrypt's floor: the rules, not the cost, are under test here


def field_of(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [violation.field for violation in error.value.field_errors]


class TestUsernames:
    @pytest.mark.parametrize(
        "typed",
        [
            "Admin",
            "admin",
            "adm1n",
            "AdmIn",
            "ADMIN",
            "adrnin",
            "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth "admin"
        ],
    )
    def test_look_alikes_of_admin_share_one_skeleton(self, typed: str) -> None:
        assert domain.normalize_username(typed).skeleton == "admln"

    def test_case_variants_share_the_canonical_form_and_keep_their_display(self) -> None:
        names = [domain.normalize_username(n) for n in ("AdmIn", "admin", "ADMIN")]
        assert {n.canonical for n in names} == {"admin"}
        assert [n.display for n in names] == ["AdmIn", "admin", "ADMIN"]

    def test_fullwidth_is_stored_as_ascii(self) -> None:
        name = domain.normalize_username("\uff41\uff44\uff4d\uff49\uff4e_\uff11")
        assert name.display == "admin_1"

    @pytest.mark.parametrize(
        ("first", "second"),
        [("vvilma", "wilma"), ("5teve", "steve"), ("j0hn", "john"), ("bi11", "blll")],
    )
    def test_table_entries_collide(self, first: str, second: str) -> None:
        assert (
            domain.normalize_username(first).skeleton == domain.normalize_username(second).skeleton
        )

    @pytest.mark.parametrize(
        ("first", "second"), [("alice", "bob"), ("clay", "day"), ("anna", "amma")]
    )
    def test_different_names_stay_different(self, first: str, second: str) -> None:
        assert (
            domain.normalize_username(first).skeleton != domain.normalize_username(second).skeleton
        )

    @pytest.mark.parametrize(
        "bad",
        ["", "ab", "a" * 21, "bad name", "dash-ed", "\u00e9mile", "abc\n", "\uff41\uff42", "a.b.c"],
    )
    def test_invalid_names_are_refused_on_the_username_field(self, bad: str) -> None:
        with pytest.raises(InvalidArgument) as error:
            domain.normalize_username(bad)
        assert field_of(error) == ["username"]

    def test_lookup_key_matches_the_stored_canonical_form(self) -> None:
        stored = domain.normalize_username("Alice_1")
        assert domain.username_key("ALICE_1") == stored.canonical
        assert domain.username_key("\uff21lice_1") == stored.canonical


class TestEmails:
    def test_trimmed_domain_lowercased_and_whole_address_folded_for_uniqueness(self) -> None:
        email = domain.normalize_email("  Bob.Smith@EXAMPLE.com ")
        assert email.address == "Bob.Smith@example.com"
        assert email.canonical == "bob.smith@example.com"

    def test_nfkc_turns_a_fullwidth_at_sign_into_an_address(self) -> None:
        assert domain.normalize_email("bob\uff20example.com").canonical == "bob@example.com"

    @pytest.mark.parametrize(
        "bad",
        [
            "",
            "   ",
            "no-at-sign",
            "two@@example.com",
            "a@b",
            "x@localhost",
            "y@site.test",
            "a" * 250 + "@example.com",
        ],
    )
    def test_invalid_addresses_are_refused_on_the_email_field(self, bad: str) -> None:
        with pytest.raises(InvalidArgument) as error:
            domain.normalize_email(bad)
        assert field_of(error) == ["email"]

    def test_lookup_key_of_a_non_address_matches_nobody(self) -> None:
        assert domain.email_key("not an address") is None
        assert domain.email_key("BOB@Example.COM") == "bob@example.com"


class TestPasswordRules:
    @pytest.mark.parametrize("good", ["x" * 8, "x" * 128, "correct horse battery staple"])
    def test_lengths_inside_the_range_pass(self, good: str) -> None:
        assert domain.validate_password(good) == good

    @pytest.mark.parametrize("bad", ["x" * 7, "x" * 129, " " * 12, "\t\n  \u3000   "])
    def test_short_long_and_blank_passwords_fail(self, bad: str) -> None:
        with pytest.raises(InvalidArgument) as error:
            domain.validate_password(bad)
        assert field_of(error) == ["password"]

    def test_length_is_counted_after_nfkc(self) -> None:
        # U+FB03 (the "ffi" ligature) is one character typed, three after NFKC.
        with pytest.raises(InvalidArgument):
            domain.validate_password("\ufb03" * 43)
        assert domain.validate_password("\ufb03" * 42) == "ffi" * 42

    def test_password_may_not_be_the_username_or_email(self) -> None:
        name = domain.normalize_username("Somebody")
        email = domain.normalize_email("some.body@example.com")
        with pytest.raises(InvalidArgument):
            domain.validate_password("SOMEBODY", username=name, email=email)
        with pytest.raises(InvalidArgument):
            domain.validate_password("Some.Body@example.com", username=name, email=email)
        assert domain.validate_password("somebody1", username=name, email=email)


class TestPasswordHashing:
    def test_prehash_fits_bcrypt_and_has_no_nul_bytes(self) -> None:
        for password in ("short", "x" * 128, "\U0001f600" * 128):
            prehashed = domain.prehash_password(password)
            assert len(prehashed) == 44
            assert b"\x00" not in prehashed

    def test_passwords_differing_only_after_byte_72_do_not_match(self) -> None:
        stored = "a" * 100
        attempt = "a" * 99 + "b"
        assert len(stored.encode()) == 100
        hashed = domain.hash_password(stored, FAST_ROUNDS)
        assert domain.verify_password(stored, hashed)
        assert not domain.verify_password(attempt, hashed)

    def test_long_multibyte_password_round_trips(self) -> None:
        password = "\u00e9\U0001f510" * 40  # 240 bytes of UTF-8, 80 characters
        hashed = domain.hash_password(password, FAST_ROUNDS)
        assert domain.verify_password(password, hashed)
        assert not domain.verify_password(password[:-1], hashed)

    def test_the_same_password_typed_in_fullwidth_matches(self) -> None:
        hashed = domain.hash_password("Secret123", FAST_ROUNDS)
        assert domain.verify_password(
            "\uff33\uff45\uff43\uff52\uff45\uff54\uff11\uff12\uff13", hashed
        )

    def test_hashes_are_salted(self) -> None:
        first = domain.hash_password("same password", FAST_ROUNDS)
        second = domain.hash_password("same password", FAST_ROUNDS)
        assert first != second

    def test_a_corrupt_stored_hash_fails_closed(self) -> None:
        assert not domain.verify_password("anything", "not-a-bcrypt-hash")
        assert not domain.verify_password("anything", "")

    def test_cost_comes_from_settings_and_weaker_hashes_are_upgraded(self) -> None:
        hashed = domain.hash_password("pw123456", 5)
        assert hashed.startswith("$2b$05$")
        assert domain.needs_rehash(hashed, 6)
        assert not domain.needs_rehash(hashed, 5)
        assert not domain.needs_rehash(hashed, 4)
        assert domain.needs_rehash("garbage", 4)

    def test_dummy_hash_costs_what_a_real_one_does(self) -> None:
        assert domain.dummy_password_hash(FAST_ROUNDS).startswith("$2b$04$")
        assert domain.dummy_password_hash(FAST_ROUNDS) != domain.dummy_password_hash(FAST_ROUNDS)


class TestTokens:
    def test_refresh_tokens_are_random_and_stored_as_sha256(self) -> None:
        first, second = domain.new_refresh_token(), domain.new_refresh_token()
        assert first != second
        assert len(first) == 43  # 32 bytes, URL-safe base64 without padding
        digest = domain.refresh_token_digest(first)
        assert len(digest) == 32
        assert digest == domain.refresh_token_digest(first)
        assert digest != domain.refresh_token_digest(second)

    def test_access_claims_carry_every_required_claim_and_a_15_minute_life(self) -> None:
        user, session, token = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        issued = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
        claims = domain.access_token_claims(
            user_id=user,
            session_id=session,
            token_id=token,
            issuer="agora-auth",
            audience="agora",
            issued_at=issued,
            ttl_seconds=900,
        )
        assert set(REQUIRED_CLAIMS) <= set(claims)
        assert claims["sub"] == str(user)
        assert claims["sid"] == str(session)
        assert claims["jti"] == str(token)
        assert claims["iat"] == claims["nbf"] == int(issued.timestamp())
        assert claims["exp"] - claims["iat"] == 900
