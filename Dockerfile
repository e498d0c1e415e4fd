# syntax=docker/dockerfile:1
# Images of the llmpulse stack, one build target each (docker-compose.yml and deploy/kubernetes/ use them):
#   docker build --target processor -t llmpulse-processor .   # `llmpulse serve`
#   docker build --target collector -t llmpulse-otelcol .     # our OpenTelemetry Collector
# The collector is built here with the OpenTelemetry Collector Builder from the same manifest
# scripts/bootstrap.sh uses (collector/builder-config.yaml); keep BUILDER_VERSION equal to the
# bootstrap script's.

ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.25
ARG BUILDER_VERSION=v0.165.0

# --- collector ------------------------------------------------------------------------------
FROM golang:${GO_VERSION}-alpine AS collector-build
ARG BUILDER_VERSION
RUN go install go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION}
WORKDIR /src
COPY collector/builder-config.yaml ./
# A static binary, so it runs on the small alpine image below.
RUN CGO_ENABLED=0 builder --config builder-config.yaml

FROM alpine:3.21 AS collector
# wget (busybox) serves the compose health check.
# /var/lib/otelcol/queue: the file_storage sending queue (compose mounts the collector-queue
# volume there; a new volume takes the directory's owner, so the collector can write it).
RUN apk add --no-cache ca-certificates && adduser -D -H -u 10001 otel \
    && mkdir -p /var/lib/otelcol/queue && chown 10001 /var/lib/otelcol/queue
COPY --from=collector-build /src/build/llmpulse-otelcol /usr/local/bin/llmpulse-otelcol
COPY otel-collector.yaml otel-collector-kafka.yaml /etc/llmpulse/
USER 10001
EXPOSE 4317 4318 13133
ENTRYPOINT ["/usr/local/bin/llmpulse-otelcol"]
CMD ["--config=/etc/llmpulse/otel-collector.yaml"]

# --- processor ------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS processor-build
WORKDIR /src
COPY pyproject.toml README.md setup_hooks.py ./
COPY core core
COPY instrumentation instrumentation
COPY processor processor
# The wheel names every package (pyproject's package-dir), the console's too.
COPY console console
# The stack files the wheel carries as package data (setup_hooks.STACK_FILES; the build fails
# without them): `llmpulse up` in the image would need them, `serve` does not.
COPY otel-collector.yaml ./
COPY alerting/alertmanager.yml alerting/
COPY alerting/rules alerting/rules
COPY collector/builder-config.yaml collector/
# kafka and store: the clients of the replicas (compose profile `replicas`, deploy/kubernetes/),
# used only when LLMPULSE_KAFKA_BROKERS / LLMPULSE_STORE_URL are set.
RUN python -m venv /opt/llmpulse \
    && /opt/llmpulse/bin/pip install --no-cache-dir ".[processor,kafka,store]"

FROM python:${PYTHON_VERSION}-slim AS processor
COPY --from=processor-build /opt/llmpulse /opt/llmpulse
# /var/lib/llmpulse: state of the service (a named volume in compose takes this ownership).
RUN useradd --uid 10001 --no-create-home llmpulse \
    && mkdir -p /var/lib/llmpulse && chown 10001 /var/lib/llmpulse
# Settings are LLMPULSE_* environment variables (llmpulse serve --help lists them); in a
# container the receivers and the admin endpoint listen on every interface.
ENV PATH=/opt/llmpulse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LLMPULSE_HOST=0.0.0.0 \
    LLMPULSE_ADMIN_HOST=0.0.0.0
USER 10001
EXPOSE 4317 4318 9464
ENTRYPOINT ["llmpulse"]
CMD ["serve"]

# The triage console (`llmpulse console`): the processor's image plus the console extra.
FROM processor-build AS console-build
RUN /opt/llmpulse/bin/pip install --no-cache-dir ".[processor,kafka,store,console]"

FROM processor AS console
COPY --from=console-build /opt/llmpulse /opt/llmpulse
EXPOSE 9470
CMD ["console"]
