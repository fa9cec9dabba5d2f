"""The local extractive summariser: always there, no network, no model, same answer every time.

It is the chain's last resort (and the only provider on a machine without API
keys), so it must answer any thread: a post with no comments, a link with no
body, a thread in a language it has no stop words for.

How it picks (a small TF-IDF over the thread, as classic extractive
summarisers do):
1. Split the post body and the comments the prompt chose into sentences.
2. Weigh each word by how often the thread uses it times how few sentences
   use it (inverse sentence frequency), English stop words excluded. Words
   from the title count extra: they name what the thread is about.
3. A sentence scores the summed weight of its distinct words, damped by its
   length, times its source's weight (the post most; a comment by its votes)
   and a bonus for coming early in its text, where people make their point.
4. Lead with the title and the post's best sentences, then the best comment
   sentences, near-duplicates skipped, within the prompt's word bound, in
   thread order.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.summarizer.prompt import Prompt, estimate_tokens
from services.summarizer.providers.base import Completion
from services.summarizer.text import bound, clean_summary, plain_text

MODEL = "extractive-v1"

# Sentence ends: Latin and CJK punctuation, or a line break (lists, paragraphs).
_SENTENCES = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])|\n+")  # noqa: RUF001
# Words, with their apostrophes (straight or typographic) kept: "don't", "l'eau".
_WORDS = re.compile(r"\w+(?:['\u2019]\w+)*")
_CJK_ENDS = ("。", "！", "？")  # noqa: RUF001
_LONG_SENTENCE_CHARS = 300
_MIN_SENTENCE_CHARS = 12
_TITLE_WEIGHT = 2.0
_POST_WEIGHT = 2.0
# Extracts read worse the longer they get, so this stays under what models may write.
_MAX_WORDS = 100
# Share of the word bound the post may take before comments get a say.
_POST_WORD_SHARE = 0.4
_POSITION_DECAY = 0.15
# Sentences sharing this much of their vocabulary say the same thing.
_DUPLICATE_OVERLAP = 0.7

# Common English words that say nothing about a topic.
_STOP_WORDS_TEXT = """
a about above after again against all also am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do does
doesn't doing don't down during each even few for from further get got had hadn't has
hasn't have haven't having he her here hers herself him himself his how i i'm if in into is
isn't it it's its itself just let's like lot make many may me might more most much must
mustn't my myself no nor not now of off on once one only or other ought our ours ourselves
out over own people pretty really same say says she should shouldn't so some such than that
that's the their theirs them themselves then there there's these they they're thing things
think this those though through to too under until up us use used using very was wasn't way
we we're well were weren't what what's when where which while who whom why will with won't
would wouldn't yeah yes yet you you're your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    # Where it stands in the thread: post first, then comments as the prompt showed them.
    order: tuple[int, int]
    weight: float
    words: frozenset[str]
    from_post: bool


class LocalProvider:
    """Extractive summaries from the thread inside the prompt; costs nothing, never fails."""

    name = "local"
    model = MODEL

    def __init__(self, *, max_summary_chars: int) -> None:
        self._max_chars = max_summary_chars

    async def complete(self, prompt: Prompt) -> Completion:
        # CPU work on whole threads: off the event loop, so RPCs, consumers and
        # lease renewals keep going while it runs.
        text = await asyncio.to_thread(self._summary, prompt)
        return Completion(
            text=text,
            provider=self.name,
            model=self.model,
            input_tokens=prompt.estimated_input_tokens,
            output_tokens=estimate_tokens(text),
        )

    def _summary(self, prompt: Prompt) -> str:
        return clean_summary(summarise(prompt), max_chars=self._max_chars, provider=self.name)


def summarise(prompt: Prompt) -> str:
    """The summary text: title first, then the best sentences in thread order."""
    thread = prompt.thread
    lead = _lead(thread.title, thread.url, has_body=bool(thread.body.strip()))
    sentences = _sentences(prompt)
    weights = _word_weights(sentences, title=thread.title)
    scored = sorted(
        ((_score(sentence, weights), sentence) for sentence in sentences),
        key=lambda item: (-item[0], item[1].order),
    )
    budget = max(min(prompt.max_words, _MAX_WORDS) - _word_count(lead), 0)
    post_budget = int(budget * _POST_WORD_SHARE)
    chosen: list[_Sentence] = []
    used = post_used = 0
    for _, sentence in scored:
        words = _word_count(sentence.text)
        if used + words > budget or (sentence.from_post and post_used + words > post_budget):
            continue
        if any(_same_point(sentence, other) for other in chosen):
            continue
        chosen.append(sentence)
        used += words
        post_used += words if sentence.from_post else 0
    chosen.sort(key=lambda sentence: sentence.order)
    post_part = [s.text for s in chosen if s.from_post]
    comment_part = [s.text for s in chosen if not s.from_post]
    parts = [lead, *post_part]
    if comment_part:
        parts.append("Comments: " + _join(comment_part))
    return _join(parts)


def _lead(title: str, url: str, *, has_body: bool) -> str:
    """The title as a sentence, with the linked site for a link post."""
    lead = plain_text(title).rstrip() or "Untitled post"
    if not lead.endswith((".", "!", "?", "…", "。", "！", "？")):  # noqa: RUF001
        lead += "."
    host = urlsplit(url.strip()).hostname if url.strip() else None
    if host and not has_body:
        lead = f"{lead[:-1]} (link to {host.removeprefix('www.')}){lead[-1]}"
    return lead


def _sentences(prompt: Prompt) -> list[_Sentence]:
    thread = prompt.thread
    texts: list[tuple[str, float, bool]] = [(thread.body, _POST_WEIGHT, True)]
    by_id = {comment.comment_id: comment for comment in thread.comments}
    for comment_id in prompt.comment_ids:
        comment = by_id.get(comment_id)
        if comment is not None:
            # Votes count, with diminishing returns; downvoted comments still speak, softly.
            weight = 1.0 + math.log1p(comment.score) / 2 if comment.score >= 0 else 0.5
            texts.append((comment.body, weight, False))
    sentences = []
    for index, (text, weight, from_post) in enumerate(texts):
        for position, raw in enumerate(_split(text)):
            words = frozenset(w for w in _tokens(raw) if w not in STOP_WORDS)
            if words:
                sentences.append(
                    _Sentence(
                        text=raw,
                        order=(index, position),
                        weight=weight / (1 + _POSITION_DECAY * position),
                        words=words,
                        from_post=from_post,
                    )
                )
    return sentences


def _split(text: str) -> list[str]:
    """Sentences of `text` as plain text, overlong ones cut at a word, fragments dropped."""
    sentences = []
    for part in _SENTENCES.split(text):
        sentence = plain_text(part)
        if len(sentence) < _MIN_SENTENCE_CHARS and not _is_cjk(sentence):
            continue
        if len(sentence) > _LONG_SENTENCE_CHARS:
            sentence = bound(sentence, _LONG_SENTENCE_CHARS)
        if sentence and not sentence.endswith((".", "!", "?", "…", "。", "！", "？")):  # noqa: RUF001
            sentence += "."
        if sentence.strip("."):
            sentences.append(sentence)
    return sentences


def _join(sentences: list[str]) -> str:
    """Sentences run on: a space after Latin punctuation, none after CJK full stops."""
    text = ""
    for sentence in sentences:
        text += sentence if not text or text.endswith(_CJK_ENDS) else " " + sentence
    return text


def _is_cjk(text: str) -> bool:
    """CJK sentences are short in characters; the length floor is for alphabetic scripts."""
    return any("\u3040" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" for char in text)


def _tokens(text: str) -> list[str]:
    words = _WORDS.findall(text.lower().replace("\u2019", "'"))
    return [word for word in words if not word.isdigit()]


def _word_weights(sentences: list[_Sentence], *, title: str) -> dict[str, float]:
    """TF-IDF-like weight of every content word, over the sentences of the thread."""
    frequency: Counter[str] = Counter()
    spread: Counter[str] = Counter()
    for sentence in sentences:
        frequency.update(_tokens(sentence.text))
        spread.update(sentence.words)
    count = max(len(sentences), 1)
    title_words = set(_tokens(title)) - STOP_WORDS
    return {
        word: (1 + math.log(frequency[word]))
        * math.log(1 + count / spread[word])
        * (_TITLE_WEIGHT if word in title_words else 1.0)
        for word in spread
    }


def _score(sentence: _Sentence, weights: dict[str, float]) -> float:
    # Damped by length, so long rambling sentences do not win by size alone, nor
    # three-word ones by luck. fsum is exact, so set order (hash seeds) cannot
    # tip a tie between two sentences from one run to the next.
    total = math.fsum(weights.get(word, 0.0) for word in sentence.words)
    return sentence.weight * total / math.pow(len(sentence.words), 0.7)


def _same_point(a: _Sentence, b: _Sentence) -> bool:
    overlap = len(a.words & b.words) / max(min(len(a.words), len(b.words)), 1)
    return overlap >= _DUPLICATE_OVERLAP


def _word_count(text: str) -> int:
    """Words for the length bound; a CJK character counts as one, as it reads like one."""
    cjk = sum(1 for char in text if _is_cjk(char))
    return len(text.split()) + cjk
