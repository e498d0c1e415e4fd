"""Judge calibration: how far the judge agrees with the human labels, as it ran or replayed.

Two sources of judge verdicts, one set of figures (:mod:`~llmpulse.processor.quality.agreement`,
the same the console's judge page shows):

* **stored**: the verdicts the running judge recorded with each labelled sample;
* **replay**: the labelled samples sent again through a judge configuration (endpoint, model,
  system prompt, few-shot examples drawn from the labels), so a judge change is measured
  against the humans before it ships. Few-shot examples are left out of the samples they are
  measured on: a judge is never scored on the answers it was shown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmpulse.processor.quality.agreement import Agreement
from llmpulse.processor.quality.judge import JudgeError, JudgeExample, LLMJudge, verdict_is_bad
from llmpulse.processor.quality.settings import JudgeSettings
from llmpulse.processor.quality.store import StoredSample
from llmpulse.processor.quality.types import QualitySample

__all__ = ["Replay", "agreement_rows", "pick_examples", "quality_sample", "replay"]


@dataclass
class Replay:
    """What a replay gave: the samples with the replayed verdict in their record, and the cost."""

    samples: list[StoredSample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    """Samples without a verdict, by the judge-error reason (``http``, ``timeout``, ...)."""
    first_error: str | None = None
    skipped_no_content: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0


def quality_sample(stored: StoredSample) -> QualitySample:
    """The :class:`QualitySample` a stored sample was judged as (content as stored, redacted)."""
    r = stored.record
    messages: Any = None
    if r.input:
        try:
            messages = json.loads(r.input)
        except ValueError:
            messages = [{"role": "user", "parts": [{"type": "text", "content": r.input}]}]
    if not isinstance(messages, list):
        messages = None
    return QualitySample(
        trace_id=r.trace_id,
        span_id=r.span_id,
        feature=r.feature,
        model=r.model,
        provider=r.provider,
        response_id=r.response_id,
        input_messages=messages,
        output_text=r.output,
        system_instructions=r.system_instructions,
        timestamp=r.created,
        service=r.service,
    )


def pick_examples(samples: Sequence[StoredSample], n: int) -> tuple[list[StoredSample], list[StoredSample]]:
    """``n`` few-shot examples drawn from the labelled samples with content, bad and good in
    turn (oldest first, so a later run over more labels keeps its examples), and the rest."""
    if n <= 0:
        return [], list(samples)
    oldest_first = sorted(samples, key=lambda s: (s.record.created, s.id))
    pools = {
        label: [s for s in oldest_first if s.label == label and s.record.output] for label in ("bad", "good")
    }
    chosen: list[StoredSample] = []
    while len(chosen) < n and (pools["bad"] or pools["good"]):
        for label in ("bad", "good"):
            if pools[label] and len(chosen) < n:
                chosen.append(pools[label].pop(0))
    taken = {s.id for s in chosen}
    return chosen, [s for s in samples if s.id not in taken]


async def replay(
    samples: Sequence[StoredSample],
    settings: JudgeSettings,
    *,
    judge: LLMJudge | None = None,
    system_prompt: str | None = None,
    examples: Sequence[StoredSample] = (),
    concurrency: int = 2,
) -> Replay:
    """Judge every labelled sample with content again; ``judge`` defaults to one built from
    ``settings``, ``system_prompt`` and ``examples``."""
    own = judge is None
    if judge is None:
        shots = [JudgeExample(quality_sample(s), str(s.label), s.label_note) for s in examples]
        kwargs: dict[str, Any] = {"examples": shots}
        if system_prompt is not None:
            kwargs["system_prompt"] = system_prompt
        judge = LLMJudge(settings, **kwargs)
    result = Replay()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(stored: StoredSample) -> StoredSample | None:
        sample = quality_sample(stored)
        async with gate:
            try:
                verdict = await judge.evaluate(sample)
            except JudgeError as exc:
                result.errors[exc.reason] += 1
                result.first_error = result.first_error or str(exc)
                return None
        result.input_tokens += verdict.input_tokens
        result.output_tokens += verdict.output_tokens
        result.usd += verdict.cost_usd
        record = dataclasses.replace(
            stored.record,
            scores=dict(verdict.scores),
            judge_verdict="bad" if verdict_is_bad(verdict, settings) else "good",
            explanation=verdict.explanation,
        )
        return dataclasses.replace(stored, record=record)

    try:
        wanted = [s for s in samples if s.label is not None]
        with_content = [s for s in wanted if s.record.output]
        result.skipped_no_content = len(wanted) - len(with_content)
        judged = await asyncio.gather(*(one(s) for s in with_content))
        result.samples = [s for s in judged if s is not None]
    finally:
        if own:
            await judge.aclose()
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def agreement_rows(table: Sequence[Agreement]) -> list[dict[str, Any]]:
    """The agreement table as JSON-ready rows (the figures of the console's judge page)."""
    rows = []
    for a in table:
        c = a.confusion
        rows.append(
            {
                "service": a.service,
                "feature": a.feature,
                "dimension": a.dimension,
                "n": c.total,
                "judge_bad_human_bad": c.both_bad,
                "judge_bad_human_good": c.judge_bad_human_good,
                "judge_good_human_bad": c.judge_good_human_bad,
                "judge_good_human_good": c.both_good,
                "kappa": _round(c.kappa),
                "precision_bad": _round(c.precision),
                "recall_bad": _round(c.recall),
                "disagreements": [s.id for s in a.disagreements],
            }
        )
    return rows
