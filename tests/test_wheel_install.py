"""From a wheel installed in a fresh venv outside the checkout: ``llmpulse up`` starts a stack that
answers (processor metrics, Prometheus with the packaged llmpulse rules), ``llmpulse down`` stops
it, ``llmpulse demo --help`` works, and a missing binary is one clear line.

The venv gets the wheel alone (``--no-deps``); its dependencies come from the test interpreter's
site-packages through a ``.pth`` written *after* the install, so they sort after the wheel's own
files on ``sys.path`` (and pip never sees the checkout's editable install as an installed
``llmpulse`` to replace). Installing the dependencies from the package index instead works too
but takes about 27 s against about 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from llmpulse.stack import components, files
from llmpulse.stack.local import Stack
from llmpulse.testing.polling import wait_until
from tests.test_packaging import build_wheel

pytestmark = pytest.mark.components


@dataclass(frozen=True)
class Installed:
    """A venv with the wheel installed, and a working directory outside the checkout."""

    env_dir: Path
    work: Path

    @property
    def llmpulse(self) -> str:
        return str(self.env_dir / "bin" / "llmpulse")

    @property
    def package(self) -> Path:
        """Where the wheel's ``llmpulse`` package lives in the venv."""
        (found,) = self.env_dir.glob("lib/python*/site-packages/llmpulse")
        return found

    def run(self, *args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.llmpulse, *args], cwd=self.work, env=env, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel-install")
    wheel = build_wheel(tmp)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    (site_packages,) = env_dir.glob("lib/python*/site-packages")
    (site_packages / "00-llmpulse-test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    assert not work.resolve().is_relative_to(components.REPO_ROOT.resolve())
    return Installed(env_dir, work)


def _env(installed: Installed, path: str, **extra: str) -> dict[str, str]:
    """A clean environment: state under the test's own XDG_STATE_HOME and HOME."""
    return {
        "PATH": path,
        "HOME": str(installed.work / "home"),
        "XDG_STATE_HOME": str(installed.work / "state"),
        "LANG": "C.UTF-8",
        **extra,
    }


def _state_dir(installed: Installed) -> Path:
    return installed.work / "state" / "llmpulse" / "stack"


def test_the_venv_runs_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = (
        "from llmpulse.stack import files; import llmpulse; "
        "print(llmpulse.__file__); print(files.root()); print(files.checkout_root())"
    )
    python = str(installed.env_dir / "bin" / "python")
    out = subprocess.run(
        [python, "-c", probe], cwd=installed.work, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    module, root, checkout = out.stdout.split()
    assert Path(module).parent == installed.package
    assert Path(root) == installed.package / "stack" / "data"
    assert checkout == "None"


def test_the_wheel_carries_the_c_reader(installed: Installed) -> None:
    probe = "from llmpulse.processor.pipeline import wire; print(wire.ACCELERATED, wire._otlp.__file__)"
    python = str(installed.env_dir / "bin" / "python")
    out = subprocess.run(
        [python, "-c", probe], cwd=installed.work, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    accelerated, path = out.stdout.split()
    assert accelerated == "True", "the wheel was built without the C reader (gcc, python3-dev)"
    assert Path(path).parent == installed.package / "processor" / "pipeline"


def _shipped_rule_groups() -> dict[str, set[str]]:
    """Rule file name -> its group names, from the checkout's alerting/rules."""
    return {
        path.name: {group["name"] for group in yaml.safe_load(path.read_text())["groups"]}
        for path in (components.REPO_ROOT / "alerting" / "rules").glob("*.yml")
    }


def _alive(pid: int) -> bool:
    """Running: a zombie waiting for init to reap it (``up`` has exited) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_up_down_and_demo_help_from_the_wheel(installed: Installed) -> None:
    # Found from the checkout (components' lookup), handed to the wheel's command.
    try:
        collector = components.find_collector()
        components.prometheus_binary()
        components.alertmanager_binary()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    env = _env(installed, os.environ["PATH"], LLMPULSE_COLLECTOR_BIN=str(collector))
    state = _state_dir(installed)

    up = installed.run("up", "--free-ports", env=env, timeout=300)
    pids: list[int] = []
    try:
        recorded = json.loads((state / "stack.json").read_text()) if (state / "stack.json").exists() else {}
        pids = [int(s["pid"]) for s in recorded.get("services", [])]
        assert up.returncode == 0, up.stdout + up.stderr
        assert "llmpulse stack is up" in up.stdout
        assert "make down" not in up.stdout  # no Makefile outside a checkout
        ports = recorded["ports"]

        metrics = httpx.get(f"http://127.0.0.1:{ports['processor_admin']}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "llmpulse_" in metrics.text

        rules = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/rules", timeout=5).json()
        loaded: dict[str, set[str]] = {}
        for group in rules["data"]["groups"]:
            loaded.setdefault(group["file"], set()).add(group["name"])
        rules_dir = installed.package / "stack" / "data" / "alerting" / "rules"
        assert loaded == {str(rules_dir / name): groups for name, groups in _shipped_rule_groups().items()}

        def scraped() -> bool:
            response = httpx.get(
                f"http://127.0.0.1:{ports['prometheus']}/api/v1/query",
                params={"query": 'up{job="llmpulse-processor"} == 1'},
                timeout=5,
            ).json()
            return bool(response["data"]["result"])

        wait_until(scraped, timeout=60, interval=0.5, message="Prometheus never scraped the processor")

        # The store commands and status find the stack's processor and store with no flags.
        triage = installed.run("triage", env=env)
        assert triage.returncode == 0, triage.stdout + triage.stderr
        assert "no quality database" not in triage.stderr, triage.stderr
        status = installed.run("status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "window 5m" in status.stdout, status.stdout
    finally:
        down = installed.run("down", env=env, timeout=120)
        left = [pid for pid in pids if _alive(pid)]
        for pid in left:  # do not leak a broken run's processes into the machine
            os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stdout + down.stderr
    assert pids and not left, f"still running after `llmpulse down`: {left}"
    assert down.stdout.startswith("stopped ")
    assert not (state / "stack.json").exists()

    demo = installed.run("demo", "--help", env=env)
    assert demo.returncode == 0, demo.stderr
    # Not the stub the CLI puts in place of a subcommand whose module fails to import.
    assert "--speed" in demo.stdout and "--free-ports" in demo.stdout, demo.stdout + _import_error(
        installed, "llmpulse.demo.runner"
    )


def _import_error(installed: Installed, module: str) -> str:
    python = str(installed.env_dir / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", f"import {module}"], cwd=installed.work, capture_output=True, text=True, timeout=60
    )
    return probe.stderr[-2000:]


def test_demo_says_which_binary_is_missing(installed: Installed, tmp_path: Path) -> None:
    env = _env(installed, _bin_dir(tmp_path, "alertmanager"))
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = installed.run("demo", "--free-ports", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output + _import_error(installed, "llmpulse.demo.runner")
    assert "Traceback" not in output, output
    assert [line for line in output.splitlines() if "prometheus is not installed: " in line] == [
        "llmpulse up failed: prometheus is not installed: install Prometheus (Debian/Ubuntu: "
        "`apt-get install prometheus`; elsewhere a release from https://prometheus.io/download/) "
        "and put `prometheus` on PATH"
    ], output


_BINARIES = {"prometheus": components.prometheus_binary, "alertmanager": components.alertmanager_binary}


def _bin_dir(tmp_path: Path, *names: str) -> str:
    """A PATH of one directory holding only ``names`` (links to the real binaries)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        target = _BINARIES[name]()
        (bin_dir / target.name).symlink_to(target)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("on_path", "extra_env", "expected"),
    [
        pytest.param(
            (),
            {},
            [
                "prometheus-alertmanager is not installed: ",
                "apt-get install prometheus-alertmanager",
                "prometheus.io/download",
                "on PATH",
            ],
            id="alertmanager",
        ),
        pytest.param(
            ("alertmanager",),
            {},
            [
                "prometheus is not installed: ",
                "apt-get install prometheus",
                "prometheus.io/download",
                "`prometheus` on PATH",
            ],
            id="prometheus",
        ),
        pytest.param(
            ("alertmanager", "prometheus"),
            {},
            [
                "the llmpulse collector (llmpulse-otelcol) is not installed: ",
                "go install go.opentelemetry.io/collector/cmd/builder@v",
                "LLMPULSE_COLLECTOR_BIN",
                "builder --config {package}/stack/data/collector/builder-config.yaml`",
            ],
            id="collector",
        ),
        pytest.param(
            ("alertmanager", "prometheus"),
            {"LLMPULSE_COLLECTOR_BIN": "/nonexistent/otelcol"},
            ["LLMPULSE_COLLECTOR_BIN=/nonexistent/otelcol is not an executable file: "],
            id="collector-env",
        ),
    ],
)
def test_a_missing_binary_is_one_clear_line(
    installed: Installed,
    tmp_path: Path,
    on_path: tuple[str, ...],
    extra_env: dict[str, str],
    expected: list[str],
) -> None:
    env = _env(installed, _bin_dir(tmp_path, *on_path), **extra_env)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = installed.run("up", "--free-ports", env=env)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("llmpulse up failed: "), line
    for piece in (p.format(package=installed.package) for p in expected):
        assert piece in line, f"{piece!r} not in {line!r}"
    assert "bootstrap.sh" not in line  # there is no repository to run it from
    state = tmp_path / "state" / "llmpulse" / "stack"
    assert not (state / "stack.json").exists()
    assert not list(state.glob("*.log")), "a component was started before the check"


def test_missing_stack_files_are_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "root", lambda: tmp_path / "broken-install")
    lines: list[str] = []
    assert Stack(tmp_path / "state").up(lines.append) == 1
    assert lines == [
        f"llmpulse up failed: {tmp_path / 'broken-install' / files.ALERTMANAGER_CONFIG} is missing: "
        "this llmpulse install lacks its stack files; reinstall it (pip install --force-reinstall "
        "llmpulse) or run from a checkout"
    ]
    assert not list((tmp_path / "state").glob("*.log"))


def test_up_replicas_from_the_wheel_says_where_to_get_kafka_and_leaves_nothing(
    installed: Installed, tmp_path: Path
) -> None:
    """Outside a checkout there is no bootstrap script to fetch the broker's jars: the one line
    names a Kafka release and LLMPULSE_KAFKA_LIB, and what started before it is stopped. PATH
    without /usr/sbin, as a user's often is: PostgreSQL still starts as its service user."""
    try:
        collector = components.find_collector()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    env = _env(installed, "/usr/local/bin:/usr/bin:/bin", LLMPULSE_COLLECTOR_BIN=str(collector))
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = installed.run("up", "--replicas", "2", "--free-ports", env=env, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out, out
    assert "==> starting kafka ..." in out, out  # PostgreSQL, before it, started
    last = out.splitlines()[-1]
    assert last.startswith("llmpulse up failed: the Kafka broker's jars are not found: "), last
    assert "https://kafka.apache.org/downloads" in last and "LLMPULSE_KAFKA_LIB=" in last, last
    assert "bootstrap.sh" not in last, last
    assert not (tmp_path / "state" / "llmpulse" / "stack" / "stack.json").exists()
    again = installed.run("status", env=env, timeout=60)  # nothing recorded as running
    assert "local stack" not in again.stdout, again.stdout
