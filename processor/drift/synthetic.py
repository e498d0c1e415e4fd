"""Synthetic prompt streams with known topic mixtures, for the drift tests and benchmark.

Each topic has several templates with slots and the stream adds phrasing noise (greetings,
sign-offs, casing), so two prompts of one topic rarely repeat verbatim. A *shift* of ``s``
replaces a share ``s`` of the prompts, drawn independently, with a topic absent from the
baseline mixture: the power of a detector at shift ``s`` is measured on such windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["BASELINE_MIX", "TOPICS", "SyntheticCall", "SyntheticStream"]

_SLOTS: dict[str, tuple[str, ...]] = {
    "amount": ("$12.99", "$40", "79 euros", "twice", "$5", "an extra fee"),
    "card": ("visa", "mastercard", "amex", "debit", "paypal"),
    "plan": ("pro", "basic", "team", "annual", "family", "starter"),
    "month": ("january", "march", "june", "october", "last month", "december"),
    "item": ("headphones", "blender", "running shoes", "desk lamp", "backpack", "coffee maker"),
    "city": ("berlin", "chicago", "lyon", "osaka", "toronto", "madrid"),
    "days": ("three days", "a week", "two weeks", "ten days", "since monday"),
    "device": ("iphone", "android phone", "laptop", "tablet", "work computer"),
    "app": ("mobile app", "website", "desktop client", "browser extension"),
    "error": ("error 403", "a blank page", "an invalid code message", "a spinning wheel", "error 500"),
    "dish": ("lasagna", "banana bread", "pad thai", "risotto", "chili", "pancakes"),
    "ingredient": ("eggs", "butter", "gluten", "dairy", "sugar", "garlic"),
    "lang": ("python", "javascript", "rust", "java", "go"),
    "thing": ("list", "dictionary", "async function", "http request", "json file", "unit test"),
    "law": ("gdpr", "the privacy policy", "my data", "the terms of service", "data retention"),
}

TOPICS: dict[str, tuple[str, ...]] = {
    "billing": (
        "why was i charged {amount} on my {card} card",
        "can i get a refund for the {plan} plan",
        "my invoice for {month} looks wrong",
        "how do i change the {card} card on file",
        "cancel my {plan} subscription before the renewal",
        "what does the {plan} plan cost per month",
    ),
    "shipping": (
        "where is my order of {item}, it has been {days}",
        "can you ship {item} to {city}",
        "the tracking number for my {item} does not work",
        "my package arrived damaged, the {item} is broken",
        "how long does delivery to {city} take",
        "i want to return the {item} i bought in {month}",
    ),
    "account": (
        "i cannot log in on my {device}, i get {error}",
        "how do i reset my password in the {app}",
        "two factor code not arriving on my {device}",
        "the {app} shows {error} after the update",
        "how do i delete my account from the {app}",
        "change the email address of my account on {device}",
    ),
    "product": (
        "is the {item} compatible with my {device}",
        "what is the warranty on the {item}",
        "does the {item} come in other colors",
        "compare the {item} with the premium version",
        "is the {item} in stock in {city}",
    ),
    "cooking": (
        "give me a recipe for {dish} without {ingredient}",
        "how long should i bake {dish}",
        "what can i use instead of {ingredient} in {dish}",
        "how many calories are in a serving of {dish}",
        "can i freeze {dish} made with {ingredient}",
    ),
    "coding": (
        "how do i sort a {thing} in {lang}",
        "my {lang} {thing} throws {error}",
        "write a {lang} {thing} that reads a json file",
        "why is my {lang} {thing} so slow",
        "convert this {thing} from {lang} to rust",
    ),
    "privacy": (
        "how do you store {law} under {law}",
        "send me a copy of all {law} you hold",
        "who can see {law} in the {app}",
        "i want to object to processing under {law}",
    ),
}

BASELINE_MIX: dict[str, float] = {"billing": 0.4, "shipping": 0.3, "account": 0.2, "product": 0.1}
"""The in-control topic mixture; ``cooking``, ``coding`` and ``privacy`` never appear in it."""

_PREFIXES = ("", "", "hi, ", "hello team, ", "quick question: ", "please help: ", "hey ")
_SUFFIXES = ("", "", "?", ". thanks!", " asap", ". thank you", "??", " please")
_SLOT = re.compile(r"\{(\w+)\}")
_FINISH = {"billing": 0.02, "shipping": 0.02, "account": 0.03, "product": 0.02}


@dataclass(frozen=True, slots=True)
class SyntheticCall:
    """One generated call: topic, prompt, response length (chars) and finish reason."""

    topic: str
    text: str
    response_length: int
    finish_reason: str


class SyntheticStream:
    """A seeded generator of prompts from :data:`BASELINE_MIX`, optionally shifted to a new topic."""

    def __init__(self, seed: int, *, mix: dict[str, float] | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._mix = mix or BASELINE_MIX
        self._topics = list(self._mix)
        self._p = np.asarray([self._mix[t] for t in self._topics], dtype=np.float64)
        self._p /= self._p.sum()

    def _fill(self, template: str) -> str:
        rng = self._rng
        text = _SLOT.sub(lambda m: str(rng.choice(_SLOTS[m.group(1)])), template)
        text = str(rng.choice(_PREFIXES)) + text + str(rng.choice(_SUFFIXES))
        if rng.random() < 0.3:
            text = text.capitalize()
        return text

    def call(
        self, *, shift: float = 0.0, shift_topic: str = "cooking", long_answers: bool = False
    ) -> SyntheticCall:
        """One call; with probability ``shift`` from ``shift_topic`` instead of the baseline mix."""
        rng = self._rng
        topic = (
            shift_topic
            if rng.random() < shift
            else self._topics[int(rng.choice(len(self._topics), p=self._p))]
        )
        templates = TOPICS[topic]
        text = self._fill(templates[int(rng.integers(len(templates)))])
        scale = 900.0 if long_answers else 400.0
        length = int(rng.lognormal(np.log(scale), 0.4))
        finish = "length" if rng.random() < _FINISH.get(topic, 0.2) else "stop"
        return SyntheticCall(topic, text, length, finish)

    def calls(
        self, n: int, *, shift: float = 0.0, shift_topic: str = "cooking", long_answers: bool = False
    ) -> list[SyntheticCall]:
        """``n`` calls from :meth:`call` with the same arguments."""
        return [self.call(shift=shift, shift_topic=shift_topic, long_answers=long_answers) for _ in range(n)]
