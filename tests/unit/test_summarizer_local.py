"""The local extractive summariser: sensible text for any thread, offline and deterministic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.summarizer.prompt import Prompt, build_prompt, estimate_tokens
from services.summarizer.providers.local import LocalProvider, summarise
from services.summarizer.thread import Thread
from tests.summarizer_threads import big_thread, comment, thread, tomato_thread

ROOT = Path(__file__).resolve().parents[2]


def _prompt(subject: Thread, *, max_output_tokens: int = 512) -> Prompt:
    return build_prompt(subject, input_token_budget=6000, max_output_tokens=max_output_tokens)


async def test_it_leads_with_the_post_and_follows_with_the_comments() -> None:
    prompt = _prompt(tomato_thread())
    completion = await LocalProvider(max_summary_chars=2000).complete(prompt)
    text = completion.text
    assert text.startswith("How often should I water tomatoes in pots?")
    assert "Comments:" in text
    assert "Pots dry out much faster than garden beds" in text
    assert text.index("tomato plants") < text.index("Comments:")
    assert (completion.provider, completion.model) == ("local", "extractive-v1")
    assert completion.input_tokens == prompt.estimated_input_tokens
    assert completion.output_tokens == estimate_tokens(text)


async def test_a_post_without_comments_is_summarised_from_the_post() -> None:
    text = (await LocalProvider(max_summary_chars=2000).complete(_prompt(thread()))).text
    assert text.startswith("How often should I water tomatoes in pots? ")
    assert "Comments:" not in text
    assert "tomato plants" in text


async def test_a_link_post_without_body_names_the_site() -> None:
    link = thread(title="Rust 2.0 announced", body="", url="https://www.example.com/rust?x=1")
    text = (await LocalProvider(max_summary_chars=2000).complete(_prompt(link))).text
    assert text == "Rust 2.0 announced (link to example.com)."


async def test_threads_in_other_languages_get_a_summary() -> None:
    for title, body, reply in [
        (
            "Welche Tomatensorte für den Balkon?",
            "Ich habe einen kleinen Balkon mit Südseite. Welche Sorten wachsen gut in Töpfen?",
            "Cocktailtomaten sind viel einfacher im Topf. Fleischtomaten brauchen viel Platz.",
        ),
        (
            "ベランダでトマトを育てる",
            "南向きのベランダがあります。鉢植えに向いている品種はどれですか？",  # noqa: RUF001
            "ミニトマトが簡単です。水やりは朝がいいです。",
        ),
        ("كم مرة أسقي الطماطم؟", "أزرع الطماطم في أصص على الشرفة.", "اسقها صباحا كل يومين."),
        ("Как поливать томаты?", "Томаты растут в горшках на балконе.", "Поливайте утром."),
    ]:
        subject = thread(comment(1, reply, score=4), title=title, body=body)
        text = (await LocalProvider(max_summary_chars=2000).complete(_prompt(subject))).text
        assert text.startswith(title)
        assert reply.split()[0][:4] in text


async def test_a_thread_of_symbols_or_an_empty_title_still_answers() -> None:
    odd = thread(comment(1, "+1", score=3), comment(2, "!!!", score=1), title="", body="???")
    text = (await LocalProvider(max_summary_chars=2000).complete(_prompt(odd))).text
    assert text == "Untitled post."


async def test_a_huge_thread_gives_a_short_bounded_summary() -> None:
    prompt = _prompt(big_thread(2000))
    text = (await LocalProvider(max_summary_chars=300).complete(prompt)).text
    assert 0 < len(text) <= 300
    assert len(summarise(prompt).split()) <= prompt.max_words


def test_better_scored_comments_win_the_few_places() -> None:
    subject = thread(
        comment(1, "Blue buckets collect rainwater for the balcony tomatoes nicely.", score=40),
        comment(2, "Purple gnomes guard the balcony tomatoes against the pigeons.", score=-5),
        *[comment(n, f"Filler remark number {n} about tomatoes.", score=0) for n in range(3, 30)],
    )
    text = summarise(_prompt(subject, max_output_tokens=64))
    assert "Blue buckets" in text
    assert "Purple gnomes" not in text


def test_the_same_thread_gives_the_same_summary_whatever_the_hash_seed() -> None:
    script = (
        "from services.summarizer.prompt import build_prompt\n"
        "from services.summarizer.providers.local import summarise\n"
        "from tests.summarizer_threads import big_thread\n"
        "print(summarise(build_prompt(big_thread(300), input_token_budget=6000, "
        "max_output_tokens=512)))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip()
