"""Readable English-like text for titles, bodies and comments, from pools made once.

Search must find things and stemming must have real words to work on, so the
text is drawn from a fixed vocabulary of common English words (the harness's
search queries use the same words). Composing a million bodies word by word
would dominate the generator's time, so sentences are made once into a pool
and bodies pick from it.
"""

from __future__ import annotations

import random

_WORDS = """
    python garden board game coffee music guitar piano movie book novel poetry history science
    physics chemistry biology space rocket planet galaxy star telescope camera photo travel city
    mountain river ocean forest desert island weather storm winter summer autumn spring recipe
    bread pasta pizza soup salad cheese wine beer tea cooking baking kitchen knife oven grill
    bicycle running marathon football soccer tennis chess puzzle strategy card dice dragon
    castle wizard sword battle army empire kingdom village farmer market price money budget
    savings invest stock bond bank loan house apartment rent furniture paint wood metal tool
    hammer engine car truck train plane airport ticket hotel museum gallery painting sculpture
    theater concert festival holiday birthday wedding family friend neighbour teacher student
    school college university lecture exam homework language grammar word sentence story chapter
    author editor review critic opinion debate argument question answer problem solution idea
    theory experiment data model network server database query cache index latency memory
    processor keyboard screen laptop phone battery charger software hardware program function
    variable loop bug error test release version update feature design pattern interface library
    framework compiler kernel linux window browser website page link search privacy security
    password account login email message letter post comment thread vote karma community
    moderator rule policy tomato potato carrot onion garlic pepper basil mint rose tulip orchid
    seed soil compost water sunlight shade harvest fruit apple orange banana cherry grape lemon
    dog cat bird fish horse rabbit turtle hamster parrot owl eagle whale dolphin shark bee ant
    butterfly spider insect winter lake valley bridge tower road street park bench fountain
    clock watch calendar morning evening night weekend monday friday january july december quick
    slow bright dark quiet loud simple complex cheap expensive modern ancient strange lovely
    useful broken fixed better worse favourite popular rare common fresh old young
"""
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(_WORDS.split()))

_CONNECTIVES = ("and", "but", "so", "because", "while", "although", "then", "or")
_VERBS = (
    "is", "was", "seems", "feels", "looks", "became", "needs", "makes", "keeps", "beats",
    "loves", "hates", "fixed", "broke", "found", "lost", "built", "tried", "recommend", "prefer",
)  # fmt: skip


def _phrase(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def sentence(rng: random.Random) -> str:
    first = f"the {_phrase(rng, rng.randint(1, 3))} {rng.choice(_VERBS)} {_phrase(rng, 2)}"
    if rng.random() < 0.5:
        first += f" {rng.choice(_CONNECTIVES)} the {_phrase(rng, rng.randint(1, 4))}"
    return first[0].upper() + first[1:] + rng.choice((".", ".", ".", "!", "?"))


def title(rng: random.Random) -> str:
    text = _phrase(rng, rng.randint(3, 10))
    return text[0].upper() + text[1:] + rng.choice(("", "", "?", "!"))


class TextPool:
    """Pre-made titles and sentences; bodies are a few sentences picked from the pool."""

    def __init__(self, rng: random.Random, *, titles: int = 20_000, sentences: int = 40_000):
        self._rng = rng
        self.titles = [title(rng) for _ in range(titles)]
        self.sentences = [sentence(rng) for _ in range(sentences)]

    def title(self) -> str:
        return self._rng.choice(self.titles)

    def body(self, low: int, high: int) -> str:
        """low..high sentences (0 gives an empty body)."""
        count = self._rng.randint(low, high)
        return " ".join(self._rng.choices(self.sentences, k=count))
