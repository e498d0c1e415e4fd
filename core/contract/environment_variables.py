"""Every environment variable llmpulse reads or sets, one constant each (standard library only).

Only the entry points read the environment (``autostart()``, ``instrument()`` without
``settings``, ``llmpulse serve`` and the other CLI commands, ``llmpulse up``); everything else
receives settings objects. Each constant's value is the variable's name, as in
``opentelemetry.sdk.environment_variables``; the docstring under it says who reads it, its values
and its default. ``tests/contract/test_environment_variables.py`` checks that every ``LLMPULSE_*``
name in the source tree and the shipped config files is defined here, and that each one is
documented in ``docs/`` (or the README).

Groups: the instrumentation (the application's process), the processor (``llmpulse serve`` and
its engines), the quality CLI, the local stack and the collector config it fills in, and the
compose deployment.
"""

from __future__ import annotations

from typing import Final

# --- instrumentation (read in the application's process) ------------------------------------

LLMPULSE_ENABLED: Final = "LLMPULSE_ENABLED"
"""
.. envvar:: LLMPULSE_ENABLED

``1``, ``true``, ``yes`` or ``on`` (any case) turns on zero-code instrumentation: the
``llmpulse-autoinstrument.pth`` start-up hook imports ``llmpulse._autostart``, which starts the
instrumentation when the process first imports ``openai``, ``anthropic`` or
``llmpulse.instrumentation``. Unset (the default), ``0``, ``false``, ``no`` or ``off``: nothing
happens. Any other value (``ture``): nothing happens, and one warning line on stderr names the
accepted values.
"""

OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: Final = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
)
"""
.. envvar:: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT

Message content capture, the variable of the OpenTelemetry GenAI instrumentations. Unset,
``NO_CONTENT``, ``false``, ``0``, ``no``, ``off``: no content (the default). ``true``, ``1``,
``yes``, ``on``, ``span_only``, ``span_and_event``, ``event_only``: content on every LLM span.
``sampled`` (llmpulse's own value, the one setting that turns quality monitoring on): redacted
content only on the traces the deterministic sampler selects at :data:`LLMPULSE_SAMPLE_RATE`
(10% by default). Any other value: content stays off, with a warning.
"""

LLMPULSE_SAMPLE_RATE: Final = "LLMPULSE_SAMPLE_RATE"
"""
.. envvar:: LLMPULSE_SAMPLE_RATE

Share of traces (``0`` to ``1``, clamped) that carry content when content capture is
``sampled``. Default ``0.1`` (above the judge's default rate of 0.05, so every trace the judge
samples has content). Not a number: the default, with a warning.
"""

LLMPULSE_CONTENT_MAX_CHARS: Final = "LLMPULSE_CONTENT_MAX_CHARS"
"""
.. envvar:: LLMPULSE_CONTENT_MAX_CHARS

Characters kept per content attribute after redaction; longer text is cut and ends with the
truncation marker (:data:`llmpulse.contract.content.TRUNCATION_MARKER`). A positive number;
default ``8192``.
"""

LLMPULSE_HASH_USER_IDS: Final = "LLMPULSE_HASH_USER_IDS"
"""
.. envvar:: LLMPULSE_HASH_USER_IDS

``0``, ``false``, ``no`` or ``off`` records ``context(user_id=...)`` as the raw ``enduser.id``.
Default: hashed into ``enduser.pseudo.id`` (HMAC-SHA256 under the deployment salt).
"""

LLMPULSE_USER_ID_SALT: Final = "LLMPULSE_USER_ID_SALT"
"""
.. envvar:: LLMPULSE_USER_ID_SALT

Salt of the user-id pseudonym (HMAC-SHA256 key); set the same value on every instance so one user
has one pseudonym everywhere. Default: a random salt created once in
``$XDG_STATE_HOME/llmpulse/user-id-salt`` (mode 0600) and reused by every process on the machine.
"""

LLMPULSE_PRICING_FILE: Final = "LLMPULSE_PRICING_FILE"
"""
.. envvar:: LLMPULSE_PRICING_FILE

Path of a JSON pricing table (the format of the shipped ``pricing.json``) whose models and
aliases override or extend the shipped table, model by model. Read by the instrumentation at
start and by the processor (``llmpulse serve --pricing-file``, ``pricing_file`` in the
``[processor]`` table), which reloads it without a restart when its modification time changes
(checked at most once a second). A file the processor cannot use is reported in one log line
(``event=pricing_override_rejected``) and in ``/api/status``, and the previous table stays in
force. Default: the shipped table only.
"""

LLMPULSE_REQUEST_STREAM_USAGE: Final = "LLMPULSE_REQUEST_STREAM_USAGE"
"""
.. envvar:: LLMPULSE_REQUEST_STREAM_USAGE

``0``, ``false``, ``no`` or ``off`` stops adding ``stream_options.include_usage`` to streamed
OpenAI chat/completions calls. Default: added (and the usage chunk hidden from the caller).
"""

LLMPULSE_ANTHROPIC_SDK_SPANS: Final = "LLMPULSE_ANTHROPIC_SDK_SPANS"
"""
.. envvar:: LLMPULSE_ANTHROPIC_SDK_SPANS

``keep`` leaves the ``anthropic`` package's own call spans on (as children of llmpulse's).
Default ``suppress``: llmpulse turns them off for the clients it records.
"""

OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
"""
.. envvar:: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL

The OpenTelemetry SDK's variable, read by ``autostart()`` when it installs its own tracer
provider: ``grpc`` or ``http/protobuf`` (anything starting with ``http``). Default: the value
of :data:`OTEL_EXPORTER_OTLP_PROTOCOL`.
"""

OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""
.. envvar:: OTEL_EXPORTER_OTLP_PROTOCOL

As :data:`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, for every signal. Default ``grpc``.
"""

OTEL_BSP_MAX_QUEUE_SIZE: Final = "OTEL_BSP_MAX_QUEUE_SIZE"
"""
.. envvar:: OTEL_BSP_MAX_QUEUE_SIZE

Spans the batch span processor holds while an export waits. When llmpulse installs the tracer
provider the default is 32768 (the SDK's is 2048), enough for a 30 s collector outage at
1000 spans/s (see :mod:`llmpulse.instrumentation.export`).
"""

# --- processor (llmpulse serve) ---------------------------------------------------------------

SETTING_PREFIX: Final = "LLMPULSE_"
"""Not a variable: the prefix of the processor's settings, ``LLMPULSE_`` + the setting's name in
upper case (``llmpulse.processor.settings.FIELDS``). Each one is listed below."""

LLMPULSE_CONFIG: Final = "LLMPULSE_CONFIG"
"""
.. envvar:: LLMPULSE_CONFIG

Path of the TOML file ``llmpulse serve`` reads when ``--config`` is not given: its
``[processor]`` table holds the settings below, ``[quality]``, ``[canary]`` and ``[drift]`` the
engines'. Default: no file.
"""

LLMPULSE_HOST: Final = "LLMPULSE_HOST"
"""
.. envvar:: LLMPULSE_HOST

Address the OTLP receivers bind to (``--host``). Default ``127.0.0.1``; ``0.0.0.0`` for all.
"""

LLMPULSE_GRPC_PORT: Final = "LLMPULSE_GRPC_PORT"
"""
.. envvar:: LLMPULSE_GRPC_PORT

OTLP/gRPC port (``--grpc-port``), ``0`` to ``65535`` (``0`` picks a free port). Default ``4317``.
"""

LLMPULSE_HTTP_PORT: Final = "LLMPULSE_HTTP_PORT"
"""
.. envvar:: LLMPULSE_HTTP_PORT

OTLP/HTTP port (``--http-port``, ``POST /v1/traces``). Default ``4318``.
"""

LLMPULSE_ADMIN_HOST: Final = "LLMPULSE_ADMIN_HOST"
"""
.. envvar:: LLMPULSE_ADMIN_HOST

Address of the admin endpoints (``--admin-host``). Default ``127.0.0.1``.
"""

LLMPULSE_ADMIN_PORT: Final = "LLMPULSE_ADMIN_PORT"
"""
.. envvar:: LLMPULSE_ADMIN_PORT

Admin port (``--admin-port``): ``/metrics``, ``/api/status``, ``/healthz``, ``/readyz``; no auth,
no TLS. Default ``9464``.
"""

LLMPULSE_AUTH_TOKEN: Final = "LLMPULSE_AUTH_TOKEN"
"""
.. envvar:: LLMPULSE_AUTH_TOKEN

Bearer token both OTLP receivers and the admin port's state-changing endpoints require
(``--auth-token``). Prefer this variable or :envvar:`LLMPULSE_AUTH_TOKEN_FILE` to the flag, which
any local user can read in ``/proc/<pid>/cmdline``. Default: unset, no auth.
"""

LLMPULSE_AUTH_TOKEN_FILE: Final = "LLMPULSE_AUTH_TOKEN_FILE"
"""
.. envvar:: LLMPULSE_AUTH_TOKEN_FILE

File holding the auth token (``--auth-token-file``; surrounding whitespace ignored), e.g. a
mounted secret. Set this or :envvar:`LLMPULSE_AUTH_TOKEN`, not both. Default: unset.
"""

LLMPULSE_ADMIN_ALLOWED_HOSTS: Final = "LLMPULSE_ADMIN_ALLOWED_HOSTS"
"""
.. envvar:: LLMPULSE_ADMIN_ALLOWED_HOSTS

Comma-separated host names the admin port answers to (``Host`` header, port ignored), e.g.
``processor,llmpulse.internal``. Default: loopback names only when the admin port binds to
loopback; any host when it binds beyond loopback.
"""

LLMPULSE_TLS_CERT: Final = "LLMPULSE_TLS_CERT"
"""
.. envvar:: LLMPULSE_TLS_CERT

PEM certificate (``--tls-cert``); with :data:`LLMPULSE_TLS_KEY` both receivers serve TLS.
Default: unset.
"""

LLMPULSE_TLS_KEY: Final = "LLMPULSE_TLS_KEY"
"""
.. envvar:: LLMPULSE_TLS_KEY

PEM private key for :data:`LLMPULSE_TLS_CERT` (``--tls-key``). Default: unset.
"""

LLMPULSE_MAX_REQUEST_BYTES: Final = "LLMPULSE_MAX_REQUEST_BYTES"
"""
.. envvar:: LLMPULSE_MAX_REQUEST_BYTES

Largest export request accepted, after decompression (``--max-request-bytes``). Default 8 MiB.
"""

LLMPULSE_QUEUE_SPANS: Final = "LLMPULSE_QUEUE_SPANS"
"""
.. envvar:: LLMPULSE_QUEUE_SPANS

Capacity of the processing queue, in spans (``--queue-spans``). Default ``65536``.
"""

LLMPULSE_QUEUE_MAX_DELAY: Final = "LLMPULSE_QUEUE_MAX_DELAY"
"""
.. envvar:: LLMPULSE_QUEUE_MAX_DELAY

Longest an export waits in the processing queue (``--queue-max-delay``): one that would wait
longer, at the processing rate the processor measures, is refused at once with a retry hint, and
one still queued after that long is refused then, uncounted. Default ``1``: an overloaded
processor answers within about a second, far inside the exporters' 10 s timeout.
"""

LLMPULSE_RETRY_AFTER: Final = "LLMPULSE_RETRY_AFTER"
"""
.. envvar:: LLMPULSE_RETRY_AFTER

Seconds a client is told to wait when the queue is full (``--retry-after``). Default ``1``.
"""

LLMPULSE_DRAIN_TIMEOUT: Final = "LLMPULSE_DRAIN_TIMEOUT"
"""
.. envvar:: LLMPULSE_DRAIN_TIMEOUT

Seconds shutdown waits for the queue to drain (``--drain-timeout``). Default ``10``.
"""

LLMPULSE_MAX_LABEL_VALUES: Final = "LLMPULSE_MAX_LABEL_VALUES"
"""
.. envvar:: LLMPULSE_MAX_LABEL_VALUES

Distinct values per metric label before new ones become ``__other__``
(``--max-label-values``). Default ``100``.
"""

LLMPULSE_MAX_SERIES: Final = "LLMPULSE_MAX_SERIES"
"""
.. envvar:: LLMPULSE_MAX_SERIES

LLM label sets (series) before a new one is folded into all-``__other__`` (``--max-series``).
Default ``2000``.
"""

LLMPULSE_LABEL_IDLE_SECONDS: Final = "LLMPULSE_LABEL_IDLE_SECONDS"
"""
.. envvar:: LLMPULSE_LABEL_IDLE_SECONDS

Seconds a label value or series may go unseen before it frees its slot under the caps
(``--label-idle-seconds``). Default ``3600``.
"""

LLMPULSE_C_READER: Final = "LLMPULSE_C_READER"
"""
.. envvar:: LLMPULSE_C_READER

``0`` makes the processor read OTLP requests with upb alone, not with its C reader
(``llmpulse.processor.pipeline.wire``); the figures are the same, only slower. For
benchmarks (the same build with and without) and to rule the reader out in a bug report.
Default: the C reader when it is built.
"""

LLMPULSE_DEDUP_HOLD: Final = "LLMPULSE_DEDUP_HOLD"
"""
.. envvar:: LLMPULSE_DEDUP_HOLD

Seconds an anthropic-SDK span waits for its twin before it is counted (``--dedup-hold``).
Default ``2``.
"""

LLMPULSE_LATENCY_SAMPLES: Final = "LLMPULSE_LATENCY_SAMPLES"
"""
.. envvar:: LLMPULSE_LATENCY_SAMPLES

Latency samples kept per status-window slot (``--latency-samples``). Default ``1000``.
"""

LLMPULSE_LOG_FORMAT: Final = "LLMPULSE_LOG_FORMAT"
"""
.. envvar:: LLMPULSE_LOG_FORMAT

Log line format (``--log-format``): ``text`` (``key=value``, the default) or ``json``.
"""

LLMPULSE_JUDGE_BASE_URL: Final = "LLMPULSE_JUDGE_BASE_URL"
"""
.. envvar:: LLMPULSE_JUDGE_BASE_URL

Base URL of the OpenAI-compatible endpoint the quality judge calls; wins over
``[quality.judge] base_url``. Default: unset; without either the judge is off (logged).
"""

LLMPULSE_JUDGE_MODEL: Final = "LLMPULSE_JUDGE_MODEL"
"""
.. envvar:: LLMPULSE_JUDGE_MODEL

Judge model; wins over ``[quality.judge] model``. Default: the config's (``gpt-4o-mini``).
"""

LLMPULSE_JUDGE_API_KEY: Final = "LLMPULSE_JUDGE_API_KEY"
"""
.. envvar:: LLMPULSE_JUDGE_API_KEY

API key sent to the judge endpoint; wins over ``[quality.judge] api_key``. Default: unset.
"""

LLMPULSE_EMBEDDINGS_API_KEY: Final = "LLMPULSE_EMBEDDINGS_API_KEY"
"""
.. envvar:: LLMPULSE_EMBEDDINGS_API_KEY

API key of the ``openai`` drift embedder when ``[drift.embedder]`` has no ``api_key``.
Default: unset.
"""

# --- quality CLI (triage, label, export, spc) ---------------------------------------------------

LLMPULSE_QUALITY_DB: Final = "LLMPULSE_QUALITY_DB"
"""
.. envvar:: LLMPULSE_QUALITY_DB

Quality database the ``triage``, ``label``, ``export`` and ``spc`` commands open when ``--db``
is not given. Default ``llmpulse-quality.db``.
"""

LLMPULSE_STORE_URL: Final = "LLMPULSE_STORE_URL"
"""
.. envvar:: LLMPULSE_STORE_URL

A ``postgresql://`` URL of the shared state store (flagged samples, labels, SPC charts, the judge
budget). ``llmpulse serve`` uses it over ``[quality] store_url``; ``triage``, ``label``,
``export`` and ``spc`` open it when ``--store-url`` is not given (and ``--db`` is not either).
Unset: the SQLite file (``[quality] db_path``, ``--db``).
"""

LLMPULSE_POSTGRES_PASSWORD: Final = "LLMPULSE_POSTGRES_PASSWORD"
"""
.. envvar:: LLMPULSE_POSTGRES_PASSWORD

Password of the PostgreSQL store in ``docker-compose.yml``'s ``replicas`` profile (read by
Compose, which puts it in the ``postgres`` service and in the replicas'
:data:`LLMPULSE_STORE_URL`). Default ``llmpulse``. Not read by llmpulse itself.
"""

LLMPULSE_PG_BIN: Final = "LLMPULSE_PG_BIN"
"""
.. envvar:: LLMPULSE_PG_BIN

Directory holding PostgreSQL's ``initdb``, ``pg_ctl`` and ``postgres``, for the throwaway
clusters the tests (and the local stack) start. Default: the newest ``/usr/lib/postgresql/*/bin``.
"""

LLMPULSE_KAFKA_LIB: Final = "LLMPULSE_KAFKA_LIB"
"""
.. envvar:: LLMPULSE_KAFKA_LIB

Directory holding the Apache Kafka broker's jars (``kafka_2.13-*.jar``, ``kafka-tools-*.jar`` and
their dependencies), for the throwaway brokers the tests and benchmarks start. Default: the
checkout's ``.cache/kafka/lib``, which ``scripts/bootstrap.sh`` fills from Maven Central.
"""

LLMPULSE_VICTORIAMETRICS_BIN: Final = "LLMPULSE_VICTORIAMETRICS_BIN"
"""
.. envvar:: LLMPULSE_VICTORIAMETRICS_BIN

Path of a ``victoria-metrics`` (single-node) binary, the remote-write store of the tests of
docs/kafka.md's ``remote_write`` snippet. Default: the checkout's
``.cache/victoriametrics/bin/victoria-metrics``, which ``scripts/bootstrap.sh`` builds from the
Go module proxy, then ``victoria-metrics`` on PATH.
"""

# --- the triage console (llmpulse console) ----------------------------------------------------

LLMPULSE_CONSOLE_TOKEN: Final = "LLMPULSE_CONSOLE_TOKEN"
"""
.. envvar:: LLMPULSE_CONSOLE_TOKEN

Access token of ``llmpulse console``: when set, every page and API call needs it
(``Authorization: Bearer <token>``, or the cookie that ``/login`` sets). Required when the
console binds beyond loopback. Default: unset (loopback only, no token).
"""

LLMPULSE_CONSOLE_TOKEN_FILE: Final = "LLMPULSE_CONSOLE_TOKEN_FILE"
"""
.. envvar:: LLMPULSE_CONSOLE_TOKEN_FILE

File holding the console's access token (first line), e.g. a mounted secret. Set this or
:envvar:`LLMPULSE_CONSOLE_TOKEN`, not both. Default: unset.
"""

LLMPULSE_CONSOLE_URL: Final = "LLMPULSE_CONSOLE_URL"
"""
.. envvar:: LLMPULSE_CONSOLE_URL

The console's external URL, used in the links of forwarded alert notifications
(``--external-url``). Default: ``http://<host>:<port>`` the console listens on.
"""

LLMPULSE_PROMETHEUS_URL: Final = "LLMPULSE_PROMETHEUS_URL"
"""
.. envvar:: LLMPULSE_PROMETHEUS_URL

Prometheus the console queries (``--prometheus-url``). Default ``http://127.0.0.1:9090``.
"""

LLMPULSE_ALERTMANAGER_URL: Final = "LLMPULSE_ALERTMANAGER_URL"
"""
.. envvar:: LLMPULSE_ALERTMANAGER_URL

Alertmanager whose firing alerts the console lists (``--alertmanager-url``). Default
``http://127.0.0.1:9093``.
"""

LLMPULSE_TRACE_URL_TEMPLATE: Final = "LLMPULSE_TRACE_URL_TEMPLATE"
"""
.. envvar:: LLMPULSE_TRACE_URL_TEMPLATE

Link from a flagged sample to its trace, with ``{trace_id}`` (and optionally ``{span_id}``)
filled in, e.g. ``http://127.0.0.1:16686/trace/{trace_id}`` for Jaeger. Default: unset (no link).
"""

LLMPULSE_CONSOLE_FORWARD_URL: Final = "LLMPULSE_CONSOLE_FORWARD_URL"
"""
.. envvar:: LLMPULSE_CONSOLE_FORWARD_URL

Where the console's Alertmanager webhook (``POST /api/alertmanager``) forwards each enriched
notification (``--forward-url``). Default: unset (bundles are built and kept, not forwarded).
"""

LLMPULSE_CONSOLE_FORWARD_FORMAT: Final = "LLMPULSE_CONSOLE_FORWARD_FORMAT"
"""
.. envvar:: LLMPULSE_CONSOLE_FORWARD_FORMAT

Format of forwarded notifications: ``webhook`` (generic JSON, the default) or ``slack`` (a Slack
incoming-webhook message with blocks).
"""

# --- local stack (llmpulse up / demo) and the collector config --------------------------------

LLMPULSE_PROMETHEUS3: Final = "LLMPULSE_PROMETHEUS3"
"""
.. envvar:: LLMPULSE_PROMETHEUS3

``1`` in a pytest run (the Makefile's second one in ``make test``, ``pytest -m prometheus3``, or
``make test-prometheus3``; both also put ``.cache/prometheus3/bin`` first on ``PATH``): the tests fail
unless every Prometheus, promtool, Alertmanager and amtool they find is the Prometheus 3 and
Alertmanager 0.35 that ``make setup`` builds there (``scripts/build_prometheus3.sh``), so that
run cannot pass on Debian's 2.42 and 0.25. Default: unset, the binaries on ``PATH``.
"""

LLMPULSE_COLLECTOR_BIN: Final = "LLMPULSE_COLLECTOR_BIN"
"""
.. envvar:: LLMPULSE_COLLECTOR_BIN

Path of the OpenTelemetry Collector binary ``llmpulse up``, ``llmpulse demo`` and
``benchmarks/bench_processor.py`` run. Default: in a checkout its
``.cache/collector/llmpulse-otelcol``, then ``llmpulse-otelcol`` on ``PATH``.
"""

LLMPULSE_COLLECTOR_GRPC_ENDPOINT: Final = "LLMPULSE_COLLECTOR_GRPC_ENDPOINT"
"""
.. envvar:: LLMPULSE_COLLECTOR_GRPC_ENDPOINT

Read by ``otel-collector.yaml`` (set by ``llmpulse up``): where applications send OTLP/gRPC.
Default ``127.0.0.1:4317``.
"""

LLMPULSE_COLLECTOR_HTTP_ENDPOINT: Final = "LLMPULSE_COLLECTOR_HTTP_ENDPOINT"
"""
.. envvar:: LLMPULSE_COLLECTOR_HTTP_ENDPOINT

Read by ``otel-collector.yaml``: where applications send OTLP/HTTP. Default ``127.0.0.1:4318``.
"""

LLMPULSE_COLLECTOR_HEALTH_ENDPOINT: Final = "LLMPULSE_COLLECTOR_HEALTH_ENDPOINT"
"""
.. envvar:: LLMPULSE_COLLECTOR_HEALTH_ENDPOINT

Read by ``otel-collector.yaml``: the collector's health check. Default ``127.0.0.1:13133``.
"""

LLMPULSE_COLLECTOR_METRICS_HOST: Final = "LLMPULSE_COLLECTOR_METRICS_HOST"
"""
.. envvar:: LLMPULSE_COLLECTOR_METRICS_HOST

Read by ``otel-collector.yaml``: address of the collector's own metrics. Default
``127.0.0.1`` (``0.0.0.0`` in containers).
"""

LLMPULSE_COLLECTOR_METRICS_PORT: Final = "LLMPULSE_COLLECTOR_METRICS_PORT"
"""
.. envvar:: LLMPULSE_COLLECTOR_METRICS_PORT

Read by ``otel-collector.yaml``: port of the collector's own metrics. Default ``8888``.
"""

LLMPULSE_PROCESSOR_ENDPOINT: Final = "LLMPULSE_PROCESSOR_ENDPOINT"
"""
.. envvar:: LLMPULSE_PROCESSOR_ENDPOINT

Read by ``otel-collector.yaml``: the llmpulse processor's OTLP/gRPC address the collector
forwards to. Default ``127.0.0.1:14317``.
"""

LLMPULSE_COLLECTOR_QUEUE_DIR: Final = "LLMPULSE_COLLECTOR_QUEUE_DIR"
"""
.. envvar:: LLMPULSE_COLLECTOR_QUEUE_DIR

Read by ``otel-collector.yaml``: directory of the ``file_storage`` extension holding the
processor exporter's sending queue, so undelivered batches survive a collector restart
(created if missing). Default ``/tmp/llmpulse-collector-queue``; ``llmpulse up`` uses
``collector-queue`` in its data directory.
"""

LLMPULSE_TRACE_BACKEND_ENDPOINT: Final = "LLMPULSE_TRACE_BACKEND_ENDPOINT"
"""
.. envvar:: LLMPULSE_TRACE_BACKEND_ENDPOINT

Read by ``otel-collector.yaml``: OTLP/gRPC address of a trace backend (Jaeger, Tempo).
Default ``127.0.0.1:24317``; used only when :data:`LLMPULSE_TRACE_EXPORTER` is ``otlp/traces``.
"""

LLMPULSE_TRACE_EXPORTER: Final = "LLMPULSE_TRACE_EXPORTER"
"""
.. envvar:: LLMPULSE_TRACE_EXPORTER

Read by ``otel-collector.yaml``: ``otlp/traces`` sends traces on to the trace backend, ``nop``
(the default) drops them after the processor has them.
"""

# --- compose deployment (docker-compose.yml, alerting/) --------------------------------------

LLMPULSE_ALERT_WEBHOOK_URL: Final = "LLMPULSE_ALERT_WEBHOOK_URL"
"""
.. envvar:: LLMPULSE_ALERT_WEBHOOK_URL

Read by ``docker-compose.yml``: where Alertmanager posts notifications. Default the compose
``webhook-sink`` service (``http://webhook-sink:9099/alerts``).
"""

LLMPULSE_SLACK_WEBHOOK_URL: Final = "LLMPULSE_SLACK_WEBHOOK_URL"
"""
.. envvar:: LLMPULSE_SLACK_WEBHOOK_URL

Compose secret for ``alerting/alertmanager.receivers.example.yml``: the Slack webhook URL.
No default.
"""

LLMPULSE_PAGERDUTY_ROUTING_KEY: Final = "LLMPULSE_PAGERDUTY_ROUTING_KEY"
"""
.. envvar:: LLMPULSE_PAGERDUTY_ROUTING_KEY

Compose secret for ``alerting/alertmanager.receivers.example.yml``: the PagerDuty routing key.
No default.
"""

LLMPULSE_SMTP_PASSWORD: Final = "LLMPULSE_SMTP_PASSWORD"
"""
.. envvar:: LLMPULSE_SMTP_PASSWORD

Compose secret for ``alerting/alertmanager.receivers.example.yml``: the SMTP password.
No default.
"""

LLMPULSE_KAFKA_BROKERS: Final = "LLMPULSE_KAFKA_BROKERS"
"""
.. envvar:: LLMPULSE_KAFKA_BROKERS

Comma-separated Kafka bootstrap servers (``host:port``). Set: ``llmpulse serve`` also reads OTLP
traces from :data:`LLMPULSE_KAFKA_TOPIC` as one member of the consumer group
:data:`LLMPULSE_KAFKA_GROUP` (``--kafka-brokers``; docs/kafka.md). The shipped
``otel-collector-kafka.yaml`` reads the same variable for its kafka exporter. Default: unset (no
Kafka source; the OTLP receivers only).
"""

LLMPULSE_KAFKA_TOPIC: Final = "LLMPULSE_KAFKA_TOPIC"
"""
.. envvar:: LLMPULSE_KAFKA_TOPIC

The Kafka topic of OTLP protobuf traces (``--kafka-topic``, and the collector's kafka exporter in
``otel-collector-kafka.yaml``). Default ``llmpulse-traces``.
"""

LLMPULSE_KAFKA_GROUP: Final = "LLMPULSE_KAFKA_GROUP"
"""
.. envvar:: LLMPULSE_KAFKA_GROUP

The consumer group id the processor replicas share (``--kafka-group``); Kafka splits the topic's
partitions among the group's members. Default ``llmpulse-processors``.
"""

LLMPULSE_KAFKA_OWNER_TOPIC: Final = "LLMPULSE_KAFKA_OWNER_TOPIC"
"""
.. envvar:: LLMPULSE_KAFKA_OWNER_TOPIC

A second Kafka topic (``--kafka-owner-topic``): each replica's router re-keys the collector's
traces by (service, feature) onto it, exactly once, and the replicas count from it, so every
feature has one owner (its SPC charts, drift state, judge sampling, rolling windows). Default:
unset (count straight from :data:`LLMPULSE_KAFKA_TOPIC`).
"""

LLMPULSE_KAFKA_SESSION_TIMEOUT: Final = "LLMPULSE_KAFKA_SESSION_TIMEOUT"
"""
.. envvar:: LLMPULSE_KAFKA_SESSION_TIMEOUT

Seconds without a heartbeat before Kafka declares a replica dead and moves its partitions to the
group's other members (``--kafka-session-timeout``). Default ``10`` (the broker's
``group.min.session.timeout.ms`` allows 6 or more).
"""

PROCESSOR_SETTINGS: Final = (
    LLMPULSE_HOST,
    LLMPULSE_GRPC_PORT,
    LLMPULSE_HTTP_PORT,
    LLMPULSE_ADMIN_HOST,
    LLMPULSE_ADMIN_PORT,
    LLMPULSE_AUTH_TOKEN,
    LLMPULSE_AUTH_TOKEN_FILE,
    LLMPULSE_ADMIN_ALLOWED_HOSTS,
    LLMPULSE_TLS_CERT,
    LLMPULSE_TLS_KEY,
    LLMPULSE_MAX_REQUEST_BYTES,
    LLMPULSE_QUEUE_SPANS,
    LLMPULSE_QUEUE_MAX_DELAY,
    LLMPULSE_RETRY_AFTER,
    LLMPULSE_DRAIN_TIMEOUT,
    LLMPULSE_MAX_LABEL_VALUES,
    LLMPULSE_MAX_SERIES,
    LLMPULSE_LABEL_IDLE_SECONDS,
    LLMPULSE_DEDUP_HOLD,
    LLMPULSE_LATENCY_SAMPLES,
    LLMPULSE_LOG_FORMAT,
    LLMPULSE_PRICING_FILE,
    LLMPULSE_KAFKA_BROKERS,
    LLMPULSE_KAFKA_TOPIC,
    LLMPULSE_KAFKA_GROUP,
    LLMPULSE_KAFKA_OWNER_TOPIC,
    LLMPULSE_KAFKA_SESSION_TIMEOUT,
)
"""The variables of ``llmpulse serve``'s settings, in the order of ``processor.settings.FIELDS``."""
