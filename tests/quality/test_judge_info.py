"""The judge configuration in use is exported (``llmpulse_judge_info``): which judge produced which scores."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.judge import SYSTEM_PROMPT, JudgeExample, LLMJudge, prompt_version
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings
from tests.quality.conftest import make_sample


def _info(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.labels[Q.JUDGE_MODEL], s.labels[Q.JUDGE_PROMPT_VERSION]): s.value
        for family in registry.collect()
        if family.name == Q.JUDGE_INFO
        for s in family.samples
    }


def test_the_engine_exports_its_judge_model_and_prompt_version(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    settings = QualitySettings(db_path=str(tmp_path / "q.db"), judge=JudgeSettings(model="judge-mini"))
    engine = QualityEngine(settings, registry=registry)
    assert _info(registry) == {("judge-mini", prompt_version(SYSTEM_PROMPT)): 1.0}
    engine.metrics.set_judge("judge-large", "abc")  # a new configuration replaces the series
    assert _info(registry) == {("judge-large", "abc"): 1.0}


def test_the_prompt_version_follows_the_prompt_and_the_examples() -> None:
    shipped = prompt_version(SYSTEM_PROMPT)
    assert len(shipped) == 12 and shipped == prompt_version(SYSTEM_PROMPT)
    edited = SYSTEM_PROMPT.replace("strict", "lenient")
    assert edited != SYSTEM_PROMPT and prompt_version(edited) != shipped
    example = JudgeExample(make_sample(), "bad", "made up a refund policy")
    assert prompt_version(SYSTEM_PROMPT, [example]) != shipped
    judge = LLMJudge(JudgeSettings(), system_prompt=edited, examples=[example])
    assert judge.prompt_version == prompt_version(edited, [example])
