"""A throwaway PostgreSQL cluster as a child process on a loopback port.

The tests start one per session for the PostgreSQL store; the local stack starts one for
``llmpulse up --replicas``. :meth:`PostgresCluster.start` runs ``initdb`` (trust authentication
on loopback only, superuser ``llmpulse``) into a fresh directory and the ``postgres`` server on
the given port, its socket in that directory; :meth:`PostgresCluster.stop` stops it (fast
shutdown, then kill) and removes the directory.

``initdb`` and ``postgres`` refuse to run as root. As root, both run as the unprivileged
``postgres`` OS user that Debian's package creates (the children take its uid and gid), and
the directory (made under the system temp dir, which every user can traverse) is handed to
that user.

Binaries: ``$LLMPULSE_PG_BIN``, else the newest ``/usr/lib/postgresql/<major>/bin`` (Debian),
else ``initdb`` on PATH. Missing: :class:`~llmpulse.stack.components.ComponentMissing` saying
how to install it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from llmpulse.contract.environment_variables import LLMPULSE_PG_BIN as PG_BIN_ENV
from llmpulse.stack.components import ComponentError, ComponentMissing, free_port, log_tail

__all__ = ["PG_BIN_ENV", "PostgresCluster", "find_postgres_bin"]

_SERVICE_USER = "postgres"
_INSTALL_HINT = (
    "PostgreSQL is not installed: run `scripts/bootstrap.sh` (or `make setup`), or "
    "`apt-get update && apt-get install postgresql` (Debian's PostgreSQL 15), or point "
    f"${PG_BIN_ENV} at the directory holding initdb, pg_ctl and postgres"
)


def find_postgres_bin(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get(PG_BIN_ENV):
        candidates.append(Path(env[PG_BIN_ENV]))
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name or 0))
    candidates.extend(reversed(debian))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise ComponentMissing(_INSTALL_HINT)


class PostgresCluster:
    """One PostgreSQL server on ``127.0.0.1:port`` with its data in a fresh temporary directory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        bin_dir: Path | None = None,
        root: Path | None = None,
        detach: bool = False,
    ) -> None:
        """``root`` keeps the cluster in that directory (kept by :meth:`stop`, reused by the next
        :meth:`start`: the local stack's database); it must be one the ``postgres`` OS user can
        reach when running as root. Unset: a fresh temporary directory. ``detach`` starts the
        server in a session of its own, so it outlives the process that started it."""
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = port or free_port()
        self.user = "llmpulse"
        self.root: Path | None = None
        self._keep_root = root
        self._detach = detach
        self._process: subprocess.Popen[bytes] | None = None
        self._account: pwd.struct_passwd | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "server.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def url(self, database: str = "postgres") -> str:
        """A connection URL for ``database`` (trust authentication: no password)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        account = self._account
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=120,
                cwd=self.root,  # one the service user can enter
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        except OSError as exc:
            raise ComponentError(f"{Path(argv[0]).name} could not run: {exc}") from None
        if done.returncode != 0:
            raise ComponentError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> PostgresCluster:
        """initdb, start the server, wait until it accepts connections."""
        if self._keep_root is not None:
            self.root = self._keep_root
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="llmpulse-pg-"))
        if os.geteuid() == 0:
            try:
                self._account = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                raise ComponentMissing(
                    f"running as root, PostgreSQL needs the unprivileged OS user {_SERVICE_USER!r}"
                    " that Debian's postgresql package creates: " + _INSTALL_HINT
                ) from None
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        # The server runs as the service user itself (no wrapper process), so its pid is the
        # postmaster's: a signal to it reaches the server, which the local stack relies on.
        account = self._account
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",  # a throwaway cluster: durability is not what is tested
                    "-c",
                    "max_connections=100",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,  # one the service user can enter
                start_new_session=self._detach,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ComponentError(
                    f"postgres exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise ComponentError(
            f"postgres not ready on port {self.port} after {timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Fast shutdown (SIGINT to the server), SIGKILL after ``timeout``; remove the directory."""
        process, code = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(subprocess.SubprocessError, ComponentError):
                    self._run(
                        str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"
                    )
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
            code = process.returncode
            self._process = None
        if self.root is not None and self._keep_root is None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        return code

    def __enter__(self) -> PostgresCluster:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
