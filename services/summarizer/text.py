"""Turning whatever a provider answered into the plain text we store and show.

Summaries are shown as plain text by every client, and a model's answer is as
untrusted as the thread it read, so the answer is cleaned the same way for
every provider: markdown and HTML go (their text stays), HTML entities are
decoded, control and invisible characters go, whitespace is collapsed, and the
result is bounded at a sentence end (or a word, with an ellipsis). An answer
that is no summary at all (empty, no letters, a bare refusal) raises
InvalidCompletion, so the chain tries the next provider instead of storing it.
"""

from __future__ import annotations

import html
import re

from services.summarizer.providers.base import InvalidCompletion

_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]{0,500}>")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$", re.MULTILINE)
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_QUOTE = re.compile(r"^\s{0,3}>\s?", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+(.*)$", re.MULTILINE)
# Spans are bounded (one line, 300 characters): unbounded lazy spans backtrack
# quadratically, and one hostile post ("**a " x 10,000) froze the process for 20 s.
_STRONG = re.compile(r"(\*\*|__)(?=\S)([^\n]{1,300}?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<!\w)([*_])(?=\S)([^\n]{1,300}?)(?<=\S)\1(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)([^\n]{1,300}?)(?<=\S)~~")
_CODE = re.compile(r"`([^`]*)`")
# Control characters (tab and newline are whitespace, handled below) and
# invisible format characters; joiners (U+200C, U+200D) stay: scripts need them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_LABEL = re.compile(r"^(?:summary|tl;?dr)\s*[:\-–—]\s*", re.IGNORECASE)  # noqa: RUF001
_REFUSAL = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry,|i can(?:not|'t)|i'?m unable|i am unable|as an ai)",
    re.IGNORECASE,
)
# A refusal is short; a real summary that happens to start like one is not.
_REFUSAL_MAX_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)|[。！？]")  # noqa: RUF001
_ENDS_CLAUSE = tuple(".!?…:;,。！？")  # noqa: RUF001
_ELLIPSIS = "…"


def clean_summary(raw: str | None, *, max_chars: int, provider: str) -> str:
    """Plain, bounded text from a model's answer; InvalidCompletion if it is no summary."""
    text = plain_text(raw or "")
    if not any(char.isalpha() for char in text):
        raise InvalidCompletion(provider, "answer has no text")
    if len(text) <= _REFUSAL_MAX_CHARS and _REFUSAL.match(text):
        raise InvalidCompletion(provider, "answer is a refusal")
    return bound(text, max_chars)


def plain_text(text: str) -> str:
    """Markdown and HTML reduced to their text, on one line with single spaces."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _HTML_COMMENT.sub("", html.unescape(text))
    text = _HTML_TAG.sub(" ", text)
    text = _FENCE.sub("", text)
    text = _RULE.sub("", text)
    text = _HEADER.sub(lambda m: _as_clause(m.group(1), ":"), text)
    text = _QUOTE.sub("", text)
    text = _LIST_ITEM.sub(lambda m: _as_clause(m.group(1), "."), text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _STRIKE.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _CODE.sub(r"\1", text)
    return _LABEL.sub("", " ".join(text.split()))


def _as_clause(line: str, end: str) -> str:
    """A heading or list item that will run on in a paragraph needs punctuation of its own."""
    line = line.strip()
    return line if not line or line.endswith(_ENDS_CLAUSE) else line + end


def bound(text: str, max_chars: int) -> str:
    """`text` within `max_chars`: cut after the last whole sentence, else at a word, with '…'."""
    if len(text) <= max_chars:
        return text
    window = text[:max_chars]
    ends = [match.end() for match in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= max_chars // 2:
        return window[: ends[-1]]
    cut = window.rfind(" ", 0, max_chars - len(_ELLIPSIS))
    if cut < max_chars // 2:
        cut = max_chars - len(_ELLIPSIS)
    return window[:cut].rstrip(" ,;:-") + _ELLIPSIS
