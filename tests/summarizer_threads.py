"""Threads for the summarizer's tests: small realistic ones and a 2,000-comment one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.summarizer.thread import Thread, ThreadComment

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def comment(number: int, body: str, *, score: int = 1, parent: int | None = None) -> ThreadComment:
    """Comment `number`, written `number` minutes after the post."""
    return ThreadComment(
        comment_id=f"comment-{number}",
        parent_id="" if parent is None else f"comment-{parent}",
        body=body,
        score=score,
        depth=0 if parent is None else 1,
        created_at=START + timedelta(minutes=number),
    )


def thread(
    *comments: ThreadComment,
    title: str = "How often should I water tomatoes in pots?",
    body: str = (
        "My tomato plants grow in 20 litre pots on a sunny balcony. The leaves curl in the "
        "afternoon heat. I water them every morning. Is that too much or too little?"
    ),
    url: str = "",
) -> Thread:
    return Thread(
        post_id="post-1",
        title=title,
        body=body,
        url=url,
        score=12,
        comment_count=len(comments),
        comments=tuple(sorted(comments, key=lambda c: -c.score)),
    )


def tomato_thread() -> Thread:
    return thread(
        comment(
            1,
            "Water deeply every morning in summer. Pots dry out much faster than garden beds, "
            "especially on a sunny balcony. Curling leaves in the afternoon heat are normal.",
            score=15,
        ),
        comment(
            2,
            "I disagree: daily watering rots the roots. Check the soil with a finger and water "
            "only when the top few centimetres are dry.",
            score=8,
            parent=1,
        ),
        comment(
            3,
            "Mulch the pots with straw. It keeps the moisture in and you can water less often.",
            score=5,
        ),
    )


def big_thread(count: int = 2000, *, body_words: int = 120) -> Thread:
    """`count` comments of about `body_words` words each; comment i scores i % 97."""
    words = ("compost", "pots", "balcony", "water", "shade", "roots", "soil", "sun", "mulch")
    comments = []
    for number in range(1, count + 1):
        text = " ".join(words[(number + i) % len(words)] for i in range(body_words))
        body = f"Comment {number} starts here. {text}. Comment {number} ends here."
        parent = number // 2 if number > 1 and number % 3 == 0 else None
        comments.append(comment(number, body, score=number % 97, parent=parent))
    return thread(*comments)
