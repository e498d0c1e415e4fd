"""Activation: instrument()/uninstrument(), the entry point, coexistence, and zero-code start-up."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from importlib.metadata import entry_points
from pathlib import Path

import anthropic
import grpc
import openai
import pytest
import wrapt
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmpulse.contract import attributes as A
from llmpulse.instrumentation import LLMPulseInstrumentor, Settings, instrument, uninstrument
from llmpulse.testing.fake_provider import FakeProvider, FakeReply
from llmpulse.testing.otlp import span_attributes

MESSAGES = [{"role": "user", "content": "hi"}]


def test_instrument_is_idempotent_and_uninstrument_restores(make_spans, oai) -> None:
    original_sync = openai._base_client.SyncAPIClient.request
    spans = make_spans()
    instrument(tracer_provider=spans.tracer_provider)  # second call: no double hook
    assert openai._base_client.SyncAPIClient.request is not original_sync
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(spans.llm()) == 1
    uninstrument()
    assert openai._base_client.SyncAPIClient.request is original_sync
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(spans.llm()) == 1
    uninstrument()  # idempotent too
    instrument(tracer_provider=spans.tracer_provider, settings=Settings())  # and back on
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(spans.llm()) == 2


def test_uninstrument_gives_anthropic_clients_their_own_spans_back(
    make_spans, provider: FakeProvider
) -> None:
    spans = make_spans()
    client = anthropic.Anthropic(
        base_url=provider.base_url,
        api_key="t",
        max_retries=0,
        open_telemetry={"tracer_provider": spans.tracer_provider},
    )
    client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES)
    uninstrument()
    client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES)
    scopes = [s.instrumentation_scope.name for s in spans.all()]
    assert scopes == ["llmpulse.instrumentation", A.ANTHROPIC_SDK_SCOPE]
    client.close()


def test_entry_point_is_registered() -> None:
    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "llmpulse"]
    assert entry.load() is LLMPulseInstrumentor


def test_official_openai_instrumentation_is_annotated_not_duplicated(make_spans, oai, provider) -> None:
    try:
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    except ImportError as exc:  # a missing component fails with how to install it
        raise AssertionError("pip install opentelemetry-instrumentation-genai-openai (bench extra)") from exc
    spans = make_spans()
    official = OpenAIInstrumentor()
    official.instrument(tracer_provider=spans.tracer_provider)
    try:
        provider.enqueue(FakeReply(text="a b", input_tokens=5, output_tokens=2))
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        provider.enqueue(FakeReply(text="c d", input_tokens=6, output_tokens=2))
        list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    finally:
        official.uninstrument()
    all_spans = spans.all()
    assert len(all_spans) == 2, [(s.name, s.instrumentation_scope.name) for s in all_spans]
    for span in all_spans:
        assert span.instrumentation_scope.name != "llmpulse.instrumentation"
        assert span.attributes[A.SPAN_KIND] == A.SPAN_KIND_LLM
        assert A.COST_USD in span.attributes
    # the official package records no usage on streams; llmpulse's annotation adds it
    assert all_spans[1].attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 6


def test_failures_inside_the_hook_never_reach_the_caller(make_spans, oai, monkeypatch) -> None:
    spans = make_spans()
    from llmpulse.instrumentation import openai_wrappers

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in llmpulse")

    monkeypatch.setattr(openai_wrappers.OpenAIAdapter, "response_attributes", broken)
    result = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content
    assert spans.one_llm().end_time is not None
    monkeypatch.setattr(openai_wrappers.OpenAIAdapter, "start", broken)
    assert oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert len(spans.llm()) == 1


# --- zero-code start-up in a separate interpreter ---------------------------------------


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.arrived = threading.Event()

    def Export(self, request, context):  # the gRPC method name
        self.requests.append(request)
        self.arrived.set()
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, str, dict[str, object]]]:
        """(service.name, scope, attributes) per received span."""
        out = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attrs = span_attributes(span)
                        out.append((resource.get("service.name", ""), scope_spans.scope.name, attrs))
        return out


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, int]]:
    servicer = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


APP = textwrap.dedent(
    """
    import sys
    import anthropic, openai
    if len(sys.argv) > 2:  # the app configures OpenTelemetry itself
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        provider = TracerProvider(resource=Resource.create({"service.name": sys.argv[2]}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    url = sys.argv[1]
    openai.OpenAI(base_url=url + "/v1", api_key="t", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    anthropic.Anthropic(base_url=url, api_key="t", max_retries=0).messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    """
)


@pytest.mark.parametrize("app_service", [None, "app-configured"])
def test_env_var_alone_instruments_a_new_process(receiver, provider: FakeProvider, app_service) -> None:
    servicer, port = receiver
    provider.set_default(FakeReply(text="ok", input_tokens=7, output_tokens=1))
    env = {"LLMPULSE_ENABLED": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    args = [sys.executable, "-c", APP, provider.base_url] + ([app_service] if app_service else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    received = servicer.spans()
    assert [(scope, attrs[A.GEN_AI_PROVIDER_NAME]) for _, scope, attrs in received] == [
        ("llmpulse.instrumentation", "openai"),
        ("llmpulse.instrumentation", "anthropic"),
    ]
    (service,) = {service for service, _, _ in received}
    assert service == app_service if app_service else service.startswith("unknown_service")
    for _, _, attrs in received:
        assert attrs[A.SPAN_KIND] == A.SPAN_KIND_LLM
        assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 7


def test_without_the_env_var_nothing_is_instrumented(provider: FakeProvider) -> None:
    code = "import openai._base_client as b, sys; sys.exit(hasattr(b.SyncAPIClient.request, '__wrapped__'))"
    done = subprocess.run([sys.executable, "-c", code], env={}, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("value", "warned"), [("ture", True), ("false", False), ("0", False)])
def test_a_misspelled_enable_value_warns_once_and_the_app_runs(value: str, warned: bool) -> None:
    code = "import openai._base_client as b, sys; print(hasattr(b.SyncAPIClient.request, '__wrapped__'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"LLMPULSE_ENABLED": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    lines = done.stderr.strip().splitlines()
    if warned:
        assert len(lines) == 1, done.stderr
        assert "variable=LLMPULSE_ENABLED value='ture' reason=not_understood" in lines[0]
        assert "accepted='1|on|true|yes to turn on, 0|false|no|off to turn off'" in lines[0]
    else:
        assert lines == []


def test_exporter_fixture_in_memory_still_works() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("x").end()
    assert len(exporter.get_finished_spans()) == 1


def test_start_up_hook_imports_no_sdk_until_the_app_does() -> None:
    code = (
        "import sys; before = 'openai' in sys.modules or 'anthropic' in sys.modules; "
        "import openai._base_client as b; "
        "sys.exit(2 if before else 0 if hasattr(b.SyncAPIClient.request, '__wrapped__') else 3)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"LLMPULSE_ENABLED": "1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr)


def test_fallback_exporter_follows_the_otlp_protocol_variables() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from llmpulse.instrumentation.setup import _exporter

    assert isinstance(_exporter({}), Grpc)
    assert isinstance(_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}), Http)
    assert isinstance(
        _exporter(
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
        ),
        Grpc,
    )


def test_uninstrument_under_a_later_patch_leaves_it_and_stops_recording(make_spans, oai) -> None:
    """Another library wrapped ``request`` after llmpulse: uninstrument keeps its wrapper working."""
    sync_client = openai._base_client.SyncAPIClient
    spans = make_spans()
    ours = sync_client.__dict__["request"]
    seen: list[str] = []

    def theirs(wrapped, instance, args, kwargs):  # a typical wrapt wrapper
        seen.append("theirs")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(sync_client, "request", theirs)
    try:
        uninstrument()
        assert sync_client.__dict__["request"].__wrapped__ is ours  # their wrapper is intact
        reply = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert reply.choices[0].message.content
        assert seen == ["theirs"]
        assert spans.llm() == []  # ours only forwards
    finally:
        sync_client.request = sync_client.__dict__["request"].__wrapped__.__wrapped__


def test_start_up_defers_the_instrumentation_imports_until_a_trigger_module() -> None:
    """With the variable set, a process that never imports an SDK pays for no OpenTelemetry import."""
    heavy = ("wrapt", "opentelemetry.sdk.trace", "opentelemetry.instrumentation", "llmpulse.instrumentation")
    code = (
        f"import sys; heavy = {heavy!r}; loaded = [m for m in heavy if m in sys.modules]; "
        "assert not loaded, loaded; "
        "import llmpulse; llmpulse.context; "  # the app's API is a trigger too
        "from llmpulse.instrumentation.instrumentor import LLMPulseInstrumentor as I; "
        "assert I().is_instrumented_by_opentelemetry, 'not started'; "
        "assert not any(type(f).__name__ == 'ImportWatcher' for f in sys.meta_path), 'watcher left'"
    )
    env = {"LLMPULSE_ENABLED": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_import_watcher_fires_once_after_the_module_ran_and_restores_its_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import resources

    from llmpulse._autostart import ImportWatcher

    package = tmp_path / "watched_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 42\n")
    (package / "data.txt").write_text("payload")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []
    watcher = ImportWatcher(["watched_pkg"], lambda: seen.append(sys.modules["watched_pkg"].VALUE))
    watcher.install()
    try:
        import watched_pkg  # type: ignore[import-not-found]

        assert seen == [42]  # after the module body ran
        assert watcher not in sys.meta_path
        assert type(watched_pkg.__loader__).__name__ == "SourceFileLoader"
        assert watched_pkg.__spec__.loader is watched_pkg.__loader__
        assert resources.files("watched_pkg").joinpath("data.txt").read_text() == "payload"
        importlib.reload(watched_pkg)
        assert seen == [42]  # once
    finally:
        watcher.remove()
        sys.modules.pop("watched_pkg", None)
