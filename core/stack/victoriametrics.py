"""VictoriaMetrics single-node as a child process: the remote-write store of docs/kafka.md.

Prometheus keeps what it scrapes on one disk; with several processor replicas a team usually
also ships the samples to a store that scales out. ``remote_write`` in Prometheus' config does
that (the tested snippet is in docs/kafka.md, "Remote write to a horizontally scalable store");
this module runs the receiving end for the tests: VictoriaMetrics single-node, whose
``/api/v1/write`` takes Prometheus remote write and whose ``/api/v1/query`` answers PromQL
(MetricsQL) like Prometheus' own API. The cluster version (vminsert / vmselect / vmstorage)
takes the same protocol at another path.

Binary: ``$LLMPULSE_VICTORIAMETRICS_BIN``, else ``.cache/victoriametrics/bin/victoria-metrics``
in a checkout (``scripts/build_victoriametrics.sh``, run by ``scripts/bootstrap.sh``, builds it
from the Go module proxy), else ``victoria-metrics`` on PATH; missing:
:class:`~llmpulse.stack.components.ComponentMissing` saying how to build it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llmpulse.contract.environment_variables import LLMPULSE_VICTORIAMETRICS_BIN as BIN_ENV
from llmpulse.stack.components import ComponentMissing, ManagedProcess, first_executable

__all__ = ["BIN_ENV", "find_victoriametrics", "victoriametrics"]

NAME = "victoria-metrics"
_HINT = (
    "VictoriaMetrics is not built: run `scripts/bootstrap.sh` (or `make setup`, or "
    "`bash scripts/build_victoriametrics.sh`), which builds "
    "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics from the Go module proxy into "
    f".cache/victoriametrics/bin, or set ${BIN_ENV} to a victoria-metrics binary"
)


def find_victoriametrics(environ: Mapping[str, str] | None = None) -> Path:
    """The ``victoria-metrics`` binary: ``$LLMPULSE_VICTORIAMETRICS_BIN``, the checkout's cache, PATH."""
    env = os.environ if environ is None else environ
    found = first_executable(env.get(BIN_ENV), ("victoriametrics", "bin", NAME), NAME)
    if found is not None:
        return found
    raise ComponentMissing(_HINT)


def victoriametrics(data_dir: Path, port: int, *, host: str = "127.0.0.1") -> ManagedProcess:
    """VictoriaMetrics single-node on ``host:port`` with its data in ``data_dir``.

    Queries see samples as soon as they are written (``-search.latencyOffset=0s``; the default
    hides the last 30 s) and are not served from the rollup cache, as a test needs."""
    argv = [
        str(find_victoriametrics()),
        f"-httpListenAddr={host}:{port}",
        f"-storageDataPath={data_dir / 'data'}",
        "-retentionPeriod=1d",
        "-search.latencyOffset=0s",
        "-search.disableCache",
    ]
    return ManagedProcess("victoriametrics", argv, f"http://{host}:{port}/health", data_dir / "vm.log")
