"""Small helpers that turn SDK payloads into span attributes without raising."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A

_SERVER_CACHE = "_llmpulse_server"


def copy_params(body: Mapping[str, Any], params: Mapping[str, str], attrs: dict[str, AttributeValue]) -> None:
    """Copy request parameters that are present and have an attribute-compatible type.

    ``params`` maps body fields to attribute keys. The body is walked (it holds a few fields,
    the table a dozen); when two fields map to one key (``max_tokens`` and
    ``max_completion_tokens``), the first in the body wins.
    """
    for field, value in body.items():
        key = params.get(field)
        if key is None or value is None or key in attrs:
            continue
        if isinstance(value, (bool, int, float, str)):
            attrs[key] = [value] if key == A.GEN_AI_REQUEST_STOP_SEQUENCES else value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            attrs[key] = list(value)


def server_attributes(client: Any, provider: Callable[[Any, Any], str]) -> dict[str, AttributeValue]:
    """``server.address``, ``server.port`` and the provider name, computed once per base URL.

    Reads the client's ``_base_url`` field when it has one: the openai SDK's ``base_url``
    property imports a helper module on every access (about 1.5 us per call).
    """
    base_url = client.__dict__.get("_base_url") or client.base_url
    cached = client.__dict__.get(_SERVER_CACHE)
    if cached is not None and cached[0] is base_url:
        return cached[1]
    attrs: dict[str, AttributeValue] = {A.GEN_AI_PROVIDER_NAME: provider(client, base_url)}
    if base_url.host:
        attrs[A.SERVER_ADDRESS] = base_url.host
    port = base_url.port or (443 if base_url.scheme == "https" else 80)
    attrs[A.SERVER_PORT] = port
    client.__dict__[_SERVER_CACHE] = (base_url, attrs)
    return attrs


def usage_attributes(
    usage: Any, names: tuple[str, str | None, str | None, str | None], attrs: dict[str, AttributeValue]
) -> None:
    """Token counts from an OpenAI-style usage object: (input, output, input details, output details)."""
    if usage is None:
        return
    input_name, output_name, input_details, output_details = names
    value = getattr(usage, input_name, None)
    if isinstance(value, int):
        attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = value
    if output_name is not None:
        value = getattr(usage, output_name, None)
        if isinstance(value, int):
            attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = value
    if input_details is not None:
        cached = getattr(getattr(usage, input_details, None), "cached_tokens", None)
        if isinstance(cached, int) and cached:
            attrs[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    if output_details is not None:
        reasoning = getattr(getattr(usage, output_details, None), "reasoning_tokens", None)
        if isinstance(reasoning, int) and reasoning:
            attrs[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
