"""Cleaning a model's answer into bounded plain text, and refusing answers that are no summary."""

from __future__ import annotations

import pytest

from services.summarizer.providers.base import InvalidCompletion
from services.summarizer.text import bound, clean_summary, plain_text


def _clean(text: str | None, max_chars: int = 2000) -> str:
    return clean_summary(text, max_chars=max_chars, provider="test")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("## Summary\nThe post asks **how** to water.", "The post asks how to water."),
        ("# Watering\n\nPeople *mostly* agree.", "Watering: People mostly agree."),
        ("Summary: Two camps disagree.", "Two camps disagree."),
        (
            "Main positions:\n- water daily\n- water when dry\n1. use mulch",
            "Main positions: water daily. water when dry. use mulch.",
        ),
        ("See [the guide](https://example.com) and `soil_ph`.", "See the guide and soil_ph."),
        ("<p>Plain <b>text</b> only.</p><script>x</script>", "Plain text only. x"),
        ("Fish &amp; chips &lt;b&gt;bold&lt;/b&gt;", "Fish & chips bold"),
        ("> quoted line\n---\n~~gone~~ __strong__ _em_", "quoted line gone strong em"),
        ("snake_case_names and 5 * 3 * 2 stay.", "snake_case_names and 5 * 3 * 2 stay."),
        (
            "Tabs\tand\r\nnewlines\x00 and\u200b zero\x07 widths.",
            "Tabs and newlines and zero widths.",
        ),
        ("```\ncode fence\n```", "code fence"),
    ],
)
def test_markdown_html_and_control_characters_go_and_the_text_stays(raw: str, clean: str) -> None:
    assert _clean(raw) == clean


def test_joiners_that_scripts_need_are_kept() -> None:
    persian = "می\u200cخواهم"  # noqa: RUF001 - ZWNJ is part of the spelling
    assert plain_text(persian) == persian


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   \n\t ",
        "*** --- ###",
        "1234 ... 5678 ?!",
        "<p></p>",
        "I'm sorry, but I can't help with that.",
        "I cannot summarise this thread.",
        "As an AI, I do not have opinions.",
    ],
)
def test_answers_that_are_no_summary_are_invalid(raw: str | None) -> None:
    with pytest.raises(InvalidCompletion) as error:
        _clean(raw)
    assert error.value.provider == "test"
    assert error.value.outcome == "invalid"


def test_a_long_summary_that_starts_like_a_refusal_is_still_a_summary() -> None:
    text = "Sorry, the post says, is the hardest word: " + "people discuss apologies. " * 10
    assert _clean(text).startswith("Sorry, the post says")


def test_a_long_answer_is_cut_after_the_last_whole_sentence() -> None:
    text = "First sentence here. Second sentence is longer than the first. Third one."
    assert (
        _clean(text, max_chars=65)
        == "First sentence here. Second sentence is longer than the first."
    )


def test_without_a_sentence_end_it_is_cut_at_a_word_with_an_ellipsis() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    cut = bound(text, 30)
    assert len(cut) <= 30
    assert cut == "one two three four five six…"


def test_a_single_huge_word_is_cut_hard() -> None:
    cut = bound("x" * 100, 20)
    assert cut == "x" * 19 + "…"


def test_cjk_sentences_end_without_spaces() -> None:
    text = "これは最初の文です。二番目の文はもっと長いです。三番目。"
    assert bound(text, 25) == "これは最初の文です。二番目の文はもっと長いです。"


@pytest.mark.parametrize("max_chars", [10, 57, 200, 2000])
def test_the_bound_always_holds(max_chars: int) -> None:
    text = "A sentence of some length, with commas. " * 100
    assert len(_clean(text, max_chars=max_chars)) <= max_chars
