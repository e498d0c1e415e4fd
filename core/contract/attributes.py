"""The span contract: every attribute key that crosses the wire.

The instrumentation (``llmpulse.instrumentation``) writes these keys, the processor
(``llmpulse.processor``) reads them. Both import them from here, so a renamed key is
one edit. ``docs/span-contract.md`` documents type, unit and producer of each key;
``tests/test_span_contract.py`` keeps that page and this module in step.

Three groups:

* OpenTelemetry GenAI semantic conventions (v1.41) and the general conventions
  they lean on (``server.*``, ``error.type``, ``enduser.*``, ``session.id``).
* Names used by other producers that the processor also understands (pre-1.37
  semconv, OpenInference, OpenLLMetry). The instrumentation never writes these.
* ``llmpulse.*`` keys for what the conventions do not cover.
"""

from __future__ import annotations

from typing import Final

# --- GenAI semantic conventions -------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = "gen_ai.retrieval.query.text"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = (
    "gen_ai.tool.call.arguments"  # opt-in content: the call's arguments (JSON)
)
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"  # function | extension | datastore
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # metric attribute: input | output

SERVICE_NAME: Final = "service.name"  # resource attribute
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"  # resource attribute (semconv >= 1.27)
LEGACY_DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment"  # resource attribute, older name
UNKNOWN_SERVICE: Final = "unknown_service"  # the OpenTelemetry SDKs' default service.name

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
SESSION_ID: Final = "session.id"
ENDUSER_ID: Final = "enduser.id"  # raw user id, only when the app opts out of hashing
ENDUSER_PSEUDO_ID: Final = "enduser.pseudo.id"  # hashed user id (the default)

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_RETRIEVAL: Final = "retrieval"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
LLM_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_EMBEDDINGS, OP_GENERATE_CONTENT})

# --- other producers (read by the processor, never written by us) -----------------------
LEGACY_GEN_AI_SYSTEM: Final = "gen_ai.system"  # pre-1.37 name of gen_ai.provider.name
LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
OPENLLMETRY_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
OPENLLMETRY_GEN_AI_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"
OPENLLMETRY_REQUEST_TYPE: Final = "llm.request.type"
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_MODEL_NAME: Final = "llm.model_name"
OPENINFERENCE_PROVIDER: Final = "llm.provider"
OPENINFERENCE_SYSTEM: Final = "llm.system"
OPENINFERENCE_FINISH_REASON: Final = "llm.finish_reason"
OPENINFERENCE_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OPENINFERENCE_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OPENINFERENCE_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
ANTHROPIC_SDK_STOP_REASON: Final = "anthropic.message.stop_reason"
ANTHROPIC_SDK_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
ANTHROPIC_SDK_SCOPE: Final = "com.anthropic.sdk.python"
OPENLLMETRY_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
OPENINFERENCE_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
OPENINFERENCE_TOKEN_COUNT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
OPENINFERENCE_AGENT_NAME: Final = "agent.name"
OPENINFERENCE_TOOL_NAME: Final = "tool.name"
OPENINFERENCE_INPUT_VALUE: Final = "input.value"  # a TOOL span's arguments (JSON text)
# OpenInference span kinds (openinference.span.kind) that describe agents and their steps
OPENINFERENCE_KIND_AGENT: Final = "AGENT"
OPENINFERENCE_KIND_CHAIN: Final = "CHAIN"
OPENINFERENCE_KIND_TOOL: Final = "TOOL"
OPENLLMETRY_SPAN_KIND: Final = "traceloop.span.kind"  # workflow | task | agent | tool
OPENLLMETRY_ENTITY_NAME: Final = "traceloop.entity.name"
OPENLLMETRY_ENTITY_INPUT: Final = "traceloop.entity.input"  # a tool span's input (JSON text)
OPENLLMETRY_WORKFLOW_NAME: Final = "traceloop.workflow.name"
# Traceloop.set_association_properties({...}) writes traceloop.association.properties.<key>
OPENLLMETRY_SESSION_ID: Final = "traceloop.association.properties.session_id"
OPENLLMETRY_CONVERSATION_ID: Final = "traceloop.association.properties.conversation_id"
OPENLLMETRY_CHAT_ID: Final = "traceloop.association.properties.chat_id"
OPENLLMETRY_QUERY_CATEGORY: Final = "traceloop.association.properties.query_category"
OPENLLMETRY_PROMPT_VERSION: Final = "traceloop.prompt.version"  # Traceloop's prompt registry
OPENINFERENCE_PROMPT_TEMPLATE_VERSION: Final = "llm.prompt_template.version"
SERVICE_VERSION: Final = "service.version"  # resource attribute: the app's version when no span names one

# --- llmpulse keys ----------------------------------------------------------------------
SPAN_KIND: Final = "llmpulse.span.kind"  # what the span is to llmpulse: llm | step | feedback
SPAN_KIND_LLM: Final = "llm"
SPAN_KIND_STEP: Final = "step"
SPAN_KIND_FEEDBACK: Final = "feedback"

FEATURE: Final = "llmpulse.feature"
APP_VERSION: Final = "llmpulse.app.version"
PROMPT_VERSION: Final = "llmpulse.prompt.version"
QUERY_CATEGORY: Final = "llmpulse.query.category"
"""The app's own category of the request (``billing``, ``refunds``, ...): a small, fixed set."""
RAG_INDEX_VERSION: Final = "llmpulse.rag.index.version"
"""The version of the retrieval index the request's context came from."""

FINISH_REASON: Final = "llmpulse.finish_reason"  # normalised (FINISH_REASONS) by contract.finish_reasons
FINISH_STOP: Final = "stop"
FINISH_LENGTH: Final = "length"
FINISH_CONTENT_FILTER: Final = "content_filter"
FINISH_TOOL_CALLS: Final = "tool_calls"
FINISH_REFUSAL: Final = "refusal"
FINISH_ERROR: Final = "error"
FINISH_OTHER: Final = "other"  # e.g. anthropic pause_turn; see llmpulse.contract.finish_reasons
FINISH_REASONS: Final = (
    FINISH_STOP,
    FINISH_LENGTH,
    FINISH_CONTENT_FILTER,
    FINISH_TOOL_CALLS,
    FINISH_REFUSAL,
    FINISH_ERROR,
    FINISH_OTHER,
)
REFUSAL: Final = "llmpulse.refusal"

COST_USD: Final = "llmpulse.cost.usd"
PRICING_VERSION: Final = "llmpulse.cost.pricing_version"
UNPRICED: Final = "llmpulse.cost.unpriced"
CACHE_CREATION_1H_INPUT_TOKENS: Final = "llmpulse.usage.cache_creation_1h.input_tokens"
"""The part of ``gen_ai.usage.cache_creation.input_tokens`` written with Anthropic's 1-hour TTL
(priced at the model's ``cache_write_1h`` rate; the rest at the 5-minute ``cache_write`` rate)."""

SAMPLED: Final = "llmpulse.sampled"
SAMPLE_RATE: Final = "llmpulse.sample.rate"

STEP_NAME: Final = "llmpulse.step.name"
RUN_AGENT_NAME: Final = "llmpulse.agent.name"
"""The ``gen_ai.agent.name`` of the agent run a span is part of (``llmpulse.agent``), on every span
started inside it: its LLM calls, tools and steps (semconv puts the agent's name only on its
``invoke_agent`` span, which ends, and so arrives, last), so a run still open can be named."""
RUN_AGENT_ID: Final = "llmpulse.agent.id"
"""The ``gen_ai.agent.id`` of that run, when it has one."""
OFFICIAL_OPENAI_AGENTS_PLACEHOLDER: Final = "OpenAI Agent"
"""The ``gen_ai.agent.name`` that ``opentelemetry-instrumentation-openai-agents-v2`` (0.1.0) writes
on every child span of a run whatever the agent is called (``tests/fixtures/agents/official.json``):
not a name."""
TOOL_ARGUMENTS_HASH: Final = "llmpulse.tool.arguments_hash"
"""Hex digest of a tool call's arguments (``llmpulse.tool``): repeated identical calls are found
without the arguments leaving the process (``gen_ai.tool.call.arguments`` is opt-in content)."""
TOOL_CALLS_COUNT: Final = "llmpulse.tool_calls.count"
"""Tool calls the model asked for in an LLM call's response (the openai and anthropic adapters;
0 when it asked for none). With :data:`TOOL_CALLS_HASHES` and :data:`TOOL_RESULTS_COUNT` the
processor recognises a hand-rolled tool-call loop as a run without agent spans, and without
content capture (the calls themselves are in ``gen_ai.output.messages``, which is content)."""
TOOL_CALLS_NAMES: Final = "llmpulse.tool_calls.names"
"""The names of the tools the model asked for, in order (string array)."""
TOOL_CALLS_HASHES: Final = "llmpulse.tool_calls.hashes"
"""Per requested tool call, 16 hex digits of the SHA-256 of its name and arguments (keys
sorted): repeated identical requests are found without the arguments leaving the process."""
TOOL_RESULTS_COUNT: Final = "llmpulse.tool_results.count"
"""Tool results the request ends with (its trailing OpenAI ``role: tool`` messages or Responses
``function_call_output`` items, the ``tool_result`` blocks of its last Anthropic user message):
the call continues a tool loop."""
TOOL_LOOP_ID: Final = "llmpulse.tool_loop.id"
"""16 hex digits naming the tool-call loop an LLM call belongs to, read from the provider's id of
the loop's first requested tool call (the response's, on the call that opens the loop; the
request's earliest tool result after the last user message, on every call that continues it).
The same on every call of one loop, so the processor groups a loop whose calls are the roots of
separate traces (a script with no span around its loop) without any state in the app."""
STEP_DOCUMENT_COUNT: Final = "llmpulse.step.document_count"
STEP_TOP_SCORE: Final = "llmpulse.step.top_score"

FEEDBACK_KIND: Final = "llmpulse.feedback.kind"
FEEDBACK_VALUE: Final = "llmpulse.feedback.value"
FEEDBACK_COMMENT: Final = "llmpulse.feedback.comment"
FEEDBACK_THUMBS: Final = "thumbs"
FEEDBACK_RATING: Final = "rating"
FEEDBACK_COMMENT_KIND: Final = "comment"
FEEDBACK_CORRECTION: Final = "correction"
FEEDBACK_FOLLOW_UP: Final = "follow_up"
FEEDBACK_ABANDONED: Final = "abandoned"
FEEDBACK_KINDS: Final = (
    FEEDBACK_THUMBS,
    FEEDBACK_RATING,
    FEEDBACK_COMMENT_KIND,
    FEEDBACK_CORRECTION,
    FEEDBACK_FOLLOW_UP,
    FEEDBACK_ABANDONED,
)
