"""Start and stop the real components llmpulse works with: Prometheus, Alertmanager
and the llmpulse OpenTelemetry Collector.

Used by the tests (fixtures in ``tests/conftest.py``) and by the local stack. Each
component runs as a child process on loopback ports with its own data directory;
:meth:`ManagedProcess.start` waits until the component answers its readiness URL and
:meth:`ManagedProcess.stop` always ends it (terminate, then kill).

A missing binary raises :class:`ComponentMissing`, whose one-line message says how to
install it and where llmpulse looks for it (PATH; the collector also
``$LLMPULSE_COLLECTOR_BIN`` and, in a checkout, ``.cache/collector/``). In a checkout the
message also names ``scripts/bootstrap.sh``, which installs all of them.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from llmpulse.contract import environment_variables
from llmpulse.errors import LLMPulseError
from llmpulse.stack import files

# The checkout's root. Only meaningful in a checkout (the tests read the repository through
# it); what `llmpulse up` and `llmpulse demo` read is found through llmpulse.stack.files.
REPO_ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP_HINT = "run `scripts/bootstrap.sh` (or `make setup`) from the llmpulse repository"
COLLECTOR_ENV = environment_variables.LLMPULSE_COLLECTOR_BIN
COLLECTOR_NAME = "llmpulse-otelcol"
PROMETHEUS_DOWNLOAD = "https://prometheus.io/download/"


class ComponentError(LLMPulseError, RuntimeError):
    """A component could not be started or did not become ready."""


class ComponentMissing(ComponentError):
    """A component's binary is not installed; the message says how to install it."""


# Ports handed out come from below the kernel's ephemeral range: a port from that range can be
# taken as the source port of any outgoing connection between the moment it is chosen and the
# moment the server binds it (CI of e535f57: a collector's health port, chosen free, was in use a
# second later). None is handed out twice by one process.
_PORT_FLOOR = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()
_port_cursor: list[int] = []  # the next candidate, started at a random place per process


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _kernel_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now, outside the ephemeral range when
    the kernel leaves room below it, and never the same twice in one process."""
    with _ports_lock:
        span = _ephemeral_low() - _PORT_FLOOR
        if span >= 1000:
            if not _port_cursor:
                _port_cursor.append(random.randrange(span))
            for _ in range(span):
                port = _PORT_FLOOR + _port_cursor[0] % span
                _port_cursor[0] += 1
                if port not in _ports_handed_out and _bindable(host, port):
                    _ports_handed_out.add(port)
                    return port
        for _ in range(1000):
            port = _kernel_port(host)
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise ComponentError(f"no free TCP port on {host}")


def distinct_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` TCP ports free on ``host`` right now, all different."""
    return [free_port(host) for _ in range(count)]


def _with_bootstrap(hint: str) -> str:
    return f"{BOOTSTRAP_HINT}, or {hint}" if files.checkout_root() is not None else hint


def find_binary(name: str, install_hint: str, *, aliases: Sequence[str] = ()) -> Path:
    """Locate ``name`` (or one of ``aliases``) on PATH or raise :class:`ComponentMissing`."""
    for candidate in (name, *aliases):
        found = shutil.which(candidate)
        if found is not None:
            return Path(found)
    raise ComponentMissing(f"{name} is not installed: {_with_bootstrap(install_hint)}")


def _collector_hint() -> str:
    try:
        manifest = files.collector_manifest()
    except files.StackFilesMissing:
        return f"build it from collector/builder-config.yaml and set {COLLECTOR_ENV} to the binary"
    found = re.search(r"^\s*version:\s*v?([\w.-]+)\s*$", manifest.read_text(), re.MULTILINE)
    version = f"v{found.group(1)}" if found else "latest"  # the builder's version is the manifest's
    builder = f"go.opentelemetry.io/collector/cmd/builder@{version}"
    return (
        f"build it with the OpenTelemetry Collector Builder (Go >= 1.25: `go install {builder}`, "
        f"then `builder --config {manifest}`, which writes ./build/{COLLECTOR_NAME}), "
        f"then set {COLLECTOR_ENV} to the binary or put {COLLECTOR_NAME} on PATH"
    )


def first_executable(explicit: str | None, cache_path: Sequence[str], name: str) -> Path | None:
    """The first executable of: ``explicit`` (an env var's value), ``.cache/<cache_path>`` in a
    checkout, ``name`` on PATH; None when none is."""
    candidates = [Path(explicit)] if explicit else []
    checkout = files.checkout_root()
    if checkout is not None:
        candidates.append(checkout.joinpath(".cache", *cache_path))
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_collector() -> Path:
    """Locate the llmpulse collector: ``$LLMPULSE_COLLECTOR_BIN``, the checkout's cache, PATH."""
    explicit = os.environ.get(COLLECTOR_ENV)
    found = first_executable(explicit, ("collector", COLLECTOR_NAME), COLLECTOR_NAME)
    if found is not None:
        return found
    problem = (
        f"{COLLECTOR_ENV}={explicit} is not an executable file"
        if explicit
        else f"the llmpulse collector ({COLLECTOR_NAME}) is not installed"
    )
    raise ComponentMissing(f"{problem}: {_with_bootstrap(_collector_hint())}")


def _prometheus_hint(binary: str) -> str:
    return (
        f"install Prometheus (Debian/Ubuntu: `apt-get install prometheus`; elsewhere a release "
        f"from {PROMETHEUS_DOWNLOAD}) and put `{binary}` on PATH"
    )


def _alertmanager_hint(binary: str) -> str:
    return (
        "install Alertmanager (Debian/Ubuntu: `apt-get install prometheus-alertmanager`; elsewhere "
        f"a release from {PROMETHEUS_DOWNLOAD}#alertmanager) and put `{binary}` on PATH"
    )


def prometheus_binary() -> Path:
    return find_binary("prometheus", _prometheus_hint("prometheus"))


def promtool_binary() -> Path:
    return find_binary("promtool", _prometheus_hint("promtool"))


def alertmanager_binary() -> Path:
    """Debian names it ``prometheus-alertmanager``; the upstream release ``alertmanager``."""
    return find_binary(
        "prometheus-alertmanager",
        _alertmanager_hint("prometheus-alertmanager` or `alertmanager"),
        aliases=("alertmanager",),
    )


def amtool_binary() -> Path:
    return find_binary("amtool", _alertmanager_hint("amtool"))


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError):
        return False


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the log at ``path``, or ``(no log)``."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


@dataclass
class ManagedProcess:
    """A child process with a readiness URL and a log file."""

    name: str
    argv: Sequence[str]
    ready_url: str
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    detach: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        """Start the process and wait until ``ready_url`` answers 2xx."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=self.detach,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ComponentError(
                    f"{self.name} exited with code {self._process.returncode} during start-up; "
                    f"last log lines:\n{self.log_tail()}"
                )
            if http_ok(self.ready_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise ComponentError(
            f"{self.name} was not ready at {self.ready_url} after {timeout:.0f}s; "
            f"last log lines:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``); return its exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def __enter__(self) -> ManagedProcess:
        return self.start() if self._process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def prometheus(config: Path, data_dir: Path, port: int, *, host: str = "127.0.0.1") -> ManagedProcess:
    """A Prometheus server with exemplar storage, lifecycle API and fast alert resends."""
    argv = [
        str(prometheus_binary()),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--web.listen-address={host}:{port}",
        "--enable-feature=exemplar-storage",
        "--web.enable-lifecycle",
        "--rules.alert.resend-delay=2s",
    ]
    return ManagedProcess("prometheus", argv, f"http://{host}:{port}/-/ready", data_dir / "prometheus.log")


def alertmanager(config: Path, data_dir: Path, port: int, *, host: str = "127.0.0.1") -> ManagedProcess:
    """A single Alertmanager (clustering off) on ``host:port``."""
    argv = [
        str(alertmanager_binary()),
        f"--config.file={config}",
        f"--storage.path={data_dir / 'alertmanager'}",
        f"--web.listen-address={host}:{port}",
        "--cluster.listen-address=",
    ]
    return ManagedProcess(
        "alertmanager", argv, f"http://{host}:{port}/-/ready", data_dir / "alertmanager.log"
    )


def collector(config: Path, data_dir: Path, env: Mapping[str, str], health_endpoint: str) -> ManagedProcess:
    """The llmpulse collector running ``config``; ``env`` fills its ``${env:...}`` endpoints."""
    argv = [str(find_collector()), f"--config={config}"]
    return ManagedProcess(
        "collector", argv, f"http://{health_endpoint}/", data_dir / "collector.log", env=env
    )
