"""Agreement between the judge and the human labels: confusion matrix, Cohen's kappa,
precision and recall of the judge on "bad".

Every judged sample with a human label counts once per (service, feature) and dimension. The
human label is about the whole answer (``good``/``bad``); the judge says ``bad`` overall when
its stored verdict is ``bad``, and on one dimension when that dimension's score is at or below
``fail_at_or_below`` (the judge's own threshold for a failing dimension, default 2).

Cohen's kappa: ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of samples where judge and
human agree and ``p_e`` the agreement expected by chance from each rater's own share of
``bad``. It is undefined (None) when ``p_e`` is 1 (both raters said one thing throughout).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.quality.store import StoredSample

__all__ = ["OVERALL", "Agreement", "Confusion", "agreement_table", "cohens_kappa"]

OVERALL = "overall"


@dataclass
class Confusion:
    """Counts of (judge, human) verdicts; "bad" is the positive class."""

    both_bad: int = 0
    judge_bad_human_good: int = 0
    judge_good_human_bad: int = 0
    both_good: int = 0

    def add(self, judge_bad: bool, human_bad: bool) -> None:
        if judge_bad and human_bad:
            self.both_bad += 1
        elif judge_bad:
            self.judge_bad_human_good += 1
        elif human_bad:
            self.judge_good_human_bad += 1
        else:
            self.both_good += 1

    @property
    def total(self) -> int:
        return self.both_bad + self.judge_bad_human_good + self.judge_good_human_bad + self.both_good

    @property
    def kappa(self) -> float | None:
        return cohens_kappa(
            self.both_bad, self.judge_bad_human_good, self.judge_good_human_bad, self.both_good
        )

    @property
    def precision(self) -> float | None:
        """Of the samples the judge called bad, the share the humans called bad."""
        called = self.both_bad + self.judge_bad_human_good
        return self.both_bad / called if called else None

    @property
    def recall(self) -> float | None:
        """Of the samples the humans called bad, the share the judge caught."""
        bad = self.both_bad + self.judge_good_human_bad
        return self.both_bad / bad if bad else None


def cohens_kappa(both_bad: int, judge_only: int, human_only: int, both_good: int) -> float | None:
    """Cohen's kappa of a 2x2 table; None when chance agreement is total (or no samples)."""
    n = both_bad + judge_only + human_only + both_good
    if n == 0:
        return None
    observed = (both_bad + both_good) / n
    judge_bad = (both_bad + judge_only) / n
    human_bad = (both_bad + human_only) / n
    expected = judge_bad * human_bad + (1 - judge_bad) * (1 - human_bad)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


@dataclass
class Agreement:
    """One (service, feature, dimension): its table and the samples where the raters disagree."""

    service: str
    feature: str
    dimension: str
    confusion: Confusion = field(default_factory=Confusion)
    disagreements: list[StoredSample] = field(default_factory=list)


def agreement_table(samples: Iterable[StoredSample], *, fail_at_or_below: float = 2.0) -> list[Agreement]:
    """Per (service, feature) and dimension (``overall`` first), from labelled judged samples."""
    table: dict[tuple[str, str, str], Agreement] = {}
    for sample in samples:
        r = sample.record
        if sample.label is None or r.judge_verdict is None:
            continue
        service = r.service or UNKNOWN_SERVICE
        human_bad = sample.label == "bad"
        judged = {OVERALL: r.judge_verdict == "bad"}
        judged.update({d: score <= fail_at_or_below for d, score in sorted(r.scores.items())})
        for dimension, judge_bad in judged.items():
            key = (service, r.feature, dimension)
            entry = table.setdefault(key, Agreement(*key))
            entry.confusion.add(judge_bad, human_bad)
            if judge_bad != human_bad:
                entry.disagreements.append(sample)
    return [table[k] for k in sorted(table, key=lambda k: (k[0], k[1], k[2] != OVERALL, k[2]))]
