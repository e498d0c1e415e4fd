"""The processor service: wires settings, pipeline, receivers and admin endpoints together.

Lifecycle: :meth:`ProcessorService.startup` (the extensions, then the servers) -> run until told
to stop -> :meth:`ProcessorService.shutdown`, which refuses new exports (UNAVAILABLE / 503),
drains the queue within ``drain_timeout``, closes the servers and then stops the extensions.
The engines plug in as :class:`~llmpulse.processor.extension.Extension` objects. Signal
handling lives in the CLI.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse import __version__
from llmpulse.contract.pricing import PricingSource
from llmpulse.errors import LLMPulseError
from llmpulse.processor.admin.guard import AdminGuard, is_loopback
from llmpulse.processor.admin.handler import AdminHandler, MetricsUnavailable
from llmpulse.processor.extension import Extension
from llmpulse.processor.http_server import Handler, HttpServer
from llmpulse.processor.ingest.otlp_grpc import GrpcReceiver
from llmpulse.processor.ingest.otlp_http import OtlpHttpHandler
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.exposition import MetricsCollector, ScrapeEndpoint, build_registry
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.dedup import Deduplicator
from llmpulse.processor.pipeline.pricing import CallPricer
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.processor.settings import ConfigError, Settings

logger = logging.getLogger(__name__)


class StartupError(LLMPulseError, RuntimeError):
    """The service could not start (a port is taken, TLS files do not load, ...)."""


class ProcessorService:
    """One running processor. Build it, ``await startup()``, later ``await shutdown()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        extensions: Sequence[Extension] = (),
    ) -> None:
        """``extensions`` are the engines (quality, drift, ...): their listeners get every counted
        call and feedback, their collectors add metric families to ``/metrics``, their admin
        routes add path-prefix routes to the admin port, their status sections add top-level
        keys to ``/api/status``, and they start and stop with the service (see
        :mod:`~llmpulse.processor.extension`)."""
        self._extensions = tuple(extensions)
        self._status_sections = _status_sections(self._extensions)
        self._running: list[Extension] = []  # started, not stopped yet
        self.settings = settings
        self.accounting = Accounting(settings.queue_spans)
        self.derived = DerivedMetrics(
            max_label_values=settings.max_label_values,
            max_series=settings.max_series,
            idle_seconds=settings.label_idle_seconds,
        )
        self.windows = RollingWindows(latency_samples_per_slot=settings.latency_samples, clock=clock)
        self.pipeline = Pipeline(
            capacity=settings.queue_spans,
            max_delay=settings.queue_max_delay,
            derived=self.derived,
            accounting=self.accounting,
            windows=self.windows,
            dedup=Deduplicator(hold_seconds=settings.dedup_hold),
            retry_after=settings.retry_after,
            listeners=[listener for extension in self._extensions for listener in extension.listeners],
            pricer=CallPricer(PricingSource(settings.pricing_file)),
        )
        # in-process readers see every count at once; the scrape endpoint shows a new series
        # at zero first, so that rate() sees its first events (metrics.exposition). Not with
        # the Kafka source: a scrape commits the offsets of every count it shows, and a series
        # shown at zero would commit counts nobody saw (lost if the replica then died). It
        # remembers what each scrape showed instead, to withhold what a zombie counted and
        # could not commit (metrics.shown).
        self.registry = build_registry(self.derived, self.accounting)
        engines = CollectorRegistry(auto_describe=False)
        for extension in self._extensions:
            for collector in extension.collectors:
                self.registry.register(collector)
                engines.register(collector)
        self.scrape = ScrapeEndpoint(
            MetricsCollector(
                self.derived,
                self.accounting,
                announce_new_series=not settings.kafka_brokers,
                withholding=bool(settings.kafka_brokers),
            ),
            engines,
        )
        # The Kafka source (None without kafka_brokers): it commits what a scrape is about to show.
        self.kafka = _kafka_source(
            settings,
            self.pipeline,
            [e.owner for e in self._extensions if e.owner is not None],
            self.scrape.withhold_unshown,
        )
        if self.kafka is not None:
            engines.register(self.kafka.registry)
            self.registry.register(self.kafka.registry)
        self._clock = clock
        self._started_at = 0.0
        self.state = "new"
        tls_pair, ssl_context = self._load_tls(settings)
        self.grpc = GrpcReceiver(
            self.pipeline,
            host=settings.host,
            port=settings.grpc_port,
            auth_token=settings.auth_token,
            max_request_bytes=settings.max_request_bytes,
            tls=tls_pair,
        )
        otlp_http = self._otlp_http = OtlpHttpHandler(
            self.pipeline, auth_token=settings.auth_token, max_request_bytes=settings.max_request_bytes
        )
        self.http = HttpServer(
            otlp_http,
            host=settings.host,
            port=settings.http_port,
            max_body_bytes=settings.max_request_bytes,
            ssl_context=ssl_context,
            name="otlp_http",
            on_too_large=otlp_http.too_large,
            precheck=otlp_http.precheck,
            refusal=otlp_http.refusal,
        )
        admin = AdminHandler(
            self._scrape,
            status=self.status,
            ready=lambda: self.state == "running",
            routes=_admin_routes(self._extensions),
            guard=AdminGuard(
                bind_host=settings.admin_host,
                auth_token=settings.auth_token,
                allowed_hosts=settings.admin_allowed_hosts,
            ),
        )
        self.admin = HttpServer(
            admin, host=settings.admin_host, port=settings.admin_port, max_body_bytes=0, name="admin"
        )

    def _scrape(self, accept: str) -> tuple[bytes, str]:
        if self.kafka is not None:
            try:
                self.kafka.commit_counted()
            except Exception as exc:  # CommitFailed, or the client failing in a way of its own
                raise MetricsUnavailable(f"counts not shown: {exc}") from None
        return self.scrape(accept)

    @staticmethod
    def _load_tls(settings: Settings) -> tuple[tuple[bytes, bytes] | None, ssl.SSLContext | None]:
        if settings.tls_cert is None or settings.tls_key is None:
            return None, None
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
            pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_cert/tls_key do not load as a PEM certificate and key: {exc}") from None
        return pair, context

    async def startup(self) -> None:
        """Start the extensions, the worker, the admin port, then both receivers.

        Raises :class:`StartupError` when a port cannot be bound (the extensions started are
        stopped again); an extension's own failure to start propagates as it is.
        """
        # Extensions first, so the first spans find them running.
        await self._start_extensions()
        self.pipeline.start()
        try:
            await self.admin.startup()
            await self.grpc.startup()
            await self.http.startup()
        except (OSError, RuntimeError) as exc:
            await self._close_servers(0.0)
            await self._stop_extensions()
            raise StartupError(
                f"cannot bind the processor's ports ({exc}); is another instance running? "
                "choose others with --grpc-port/--http-port/--admin-port"
            ) from None
        if self.kafka is not None:
            try:
                await self.kafka.start()
            except Exception as exc:  # KafkaUnavailable: brokers unreachable, bad settings
                await self.kafka.close()
                await self._close_servers(0.0)
                await self._stop_extensions()
                raise StartupError(str(exc)) from None
        self._started_at = self._clock()
        self.state = "running"
        logger.info(
            "event=processor_started version=%s grpc_port=%d http_port=%d admin_port=%d settings=%s",
            __version__,
            self.grpc.port,
            self.http.port,
            self.admin.port,
            self.settings.redacted(),
        )
        if not is_loopback(self.settings.admin_host):
            logger.warning(
                "event=admin_port_not_loopback admin_host=%s auth=%s effect=/metrics and /api/status are "
                "readable by anyone who can reach the port hint=bind it to 127.0.0.1 or firewall it%s",
                self.settings.admin_host,
                "token" if self.settings.auth_token else "none",
                "" if self.settings.auth_token else "; set LLMPULSE_AUTH_TOKEN so state changes need a token",
            )

    async def shutdown(self) -> None:
        """Refuse new exports, drain the queue within the bound, close the servers, then stop
        the extensions (after the drain, so they see every accepted record)."""
        if self.state in ("stopping", "stopped"):
            return
        self.state = "stopping"
        logger.info("event=processor_stopping queued_spans=%d", self.pipeline.queued_spans)
        if self.kafka is not None:
            await self.kafka.stop_reading()
        drained = await self.pipeline.drain(self.settings.drain_timeout)
        await self._close_servers(1.0)
        if self.kafka is not None:
            await self.kafka.close()
        await self._stop_extensions()
        self.state = "stopped"
        a = self.accounting
        logger.info(
            "event=processor_stopped drained=%s received=%d accepted=%d rejected=%d refused=%d",
            drained,
            sum(a.received.values()),
            sum(a.accepted.values()),
            sum(a.rejected.values()),
            sum(a.refused_spans.values()),
        )

    async def _start_extensions(self) -> None:
        for extension in self._extensions:
            try:
                await extension.start()
            except BaseException:
                await self._stop_extensions()  # the ones already running
                raise
            self._running.append(extension)

    async def _stop_extensions(self) -> None:
        while self._running:
            extension = self._running.pop()
            try:
                await extension.stop()
            except Exception:  # one engine failing to stop must not keep the others running
                logger.exception("event=engine_stop_failed extension=%s", extension.name)

    async def _close_servers(self, grace: float) -> None:
        await self.grpc.shutdown(grace)
        await self.http.shutdown(grace)
        self._otlp_http.close()
        await self.admin.shutdown(grace)

    def _pricing_status(self) -> dict[str, Any]:
        source = self.pipeline.pricer.source
        return {
            "version": self.pipeline.pricer.version,
            "override_file": str(source.path) if source.path else None,
            "error": source.error,
        }

    def status(self) -> dict[str, Any]:
        """The ``/api/status`` document."""
        a = self.accounting
        return {
            "version": __version__,
            "state": self.state,
            "uptime_s": round(self._clock() - self._started_at, 3) if self._started_at else 0.0,
            "spans": {
                "received": sum(a.received.values()),
                "accepted": dict(a.accepted),
                "rejected": {k: v for k, v in a.rejected.items() if v},
                "refused": sum(a.refused_spans.values()),
            },
            "queue": {"spans": a.queue_spans, "capacity": a.queue_capacity},
            "services": self.windows.snapshot(),
            "pricing": self._pricing_status(),
            **({"kafka": self.kafka.status()} if self.kafka is not None else {}),
            **{name: section() for name, section in self._status_sections.items()},
        }


_RESERVED_STATUS = frozenset(
    {"version", "state", "uptime_s", "spans", "queue", "services", "pricing", "kafka"}
)


def _kafka_source(
    settings: Settings, pipeline: Pipeline, owners: Sequence[Any], withhold_unshown: Callable[[], int]
) -> Any:
    """The Kafka source when ``kafka_brokers`` is set (imported only then: the client is optional)."""
    if not settings.kafka_brokers:
        return None
    from llmpulse.processor.kafka import KafkaUnavailable, build_kafka_source

    try:
        return build_kafka_source(settings, pipeline, owners, withhold_unshown)
    except KafkaUnavailable as exc:
        raise StartupError(str(exc)) from None


def _status_sections(extensions: Sequence[Extension]) -> dict[str, Callable[[], Any]]:
    """name -> section of the extensions with a status; raises ValueError on a clash."""
    names = [e.name for e in extensions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"extension names {twice} are used twice; give each extension its own name")
    sections = {e.name: e.status for e in extensions if e.status is not None}
    clash = sorted(set(sections) & _RESERVED_STATUS)
    if clash:
        raise ValueError(f"status section names {clash} are taken by the processor's own status")
    return sections


def _admin_routes(extensions: Sequence[Extension]) -> dict[str, Handler]:
    """path prefix -> handler of every extension; raises ValueError when two claim one prefix."""
    routes: dict[str, Handler] = {}
    for extension in extensions:
        for prefix, handler in extension.admin_routes.items():
            if prefix in routes:
                raise ValueError(f"admin route {prefix} is claimed by two extensions; keep one")
            routes[prefix] = handler
    return routes
