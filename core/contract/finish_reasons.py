"""The one finish-reason normalisation: providers' raw stop reasons onto llmpulse's small set.

The instrumentation writes the result as ``llmpulse.finish_reason``; the processor applies the
same table to spans from other producers (``gen_ai.response.finish_reasons``,
OpenInference's ``llm.finish_reason``, the anthropic SDK's ``anthropic.message.stop_reason``).
One table, so both sides agree.

Anthropic's ``pause_turn`` maps to :data:`FINISH_OTHER`: the server paused a long-running turn
and the client is expected to send it back to continue, so the response is not a completed
answer (``stop``), not cut by a limit (``length``) and not a request for client tools
(``tool_calls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from llmpulse.contract.attributes import (
    FINISH_CONTENT_FILTER,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_OTHER,
    FINISH_REFUSAL,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
)

__all__ = ["FINISH_OTHER", "RAW_FINISH_REASONS", "normalize_finish_reason"]

_TABLE: dict[str, str] = {}
for _normal, _raws in (
    # OpenAI chat ("stop"), Anthropic, Bedrock Converse, Gemini (upper case, matched lowered),
    # Cohere ("complete"), OpenAI-compatible servers ("eos", "finished")
    (FINISH_STOP, ("stop", "end_turn", "stop_sequence", "complete", "eos", "finished")),
    (FINISH_LENGTH, ("length", "max_tokens", "max_output_tokens", "model_context_window_exceeded")),
    (
        FINISH_CONTENT_FILTER,
        ("content_filter", "safety", "recitation", "blocklist", "prohibited_content", "spii"),
    ),
    (FINISH_TOOL_CALLS, ("tool_calls", "tool_use", "function_call", "tool_call")),
    (FINISH_REFUSAL, ("refusal",)),
    (FINISH_ERROR, ("error", "malformed_function_call")),
    (FINISH_OTHER, ("pause_turn",)),
):
    for _raw in _raws:
        _TABLE[_raw] = _normal
del _normal, _raws, _raw

RAW_FINISH_REASONS: Final[Mapping[str, str]] = MappingProxyType(_TABLE)
"""Raw reason (lower case) -> normalised reason. Read-only."""


def normalize_finish_reason(raw: str, default: str = FINISH_OTHER) -> str:
    """The normalised reason for a provider's ``raw`` finish/stop reason (case-insensitive).

    ``default`` is returned for a reason the table does not know: the processor keeps
    :data:`FINISH_OTHER`; the instrumentation passes ``FINISH_STOP`` for the unknown reasons of
    a call that completed (its adapters handle errors and refusals before they get here).
    """
    normal = _TABLE.get(raw)
    if normal is None:
        normal = _TABLE.get(raw.lower(), default)
    return normal
