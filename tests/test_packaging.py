"""The built wheel installs one `llmpulse` package, its command and its start-up hook."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from llmpulse.stack import components


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(components.REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("llmpulse-*.whl")
    return built


def test_wheel_layout(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert "instrumentation" not in top_level and "processor" not in top_level, top_level
    assert "llmpulse-autoinstrument.pth" in names
    for module in ("llmpulse/__init__.py", "llmpulse/contract/attributes.py", "llmpulse/cli.py"):
        assert module in names
    assert "llmpulse/instrumentation/__init__.py" in names
    assert "llmpulse/processor/__init__.py" in names
    assert "llmpulse/testing/__init__.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "llmpulse = llmpulse.cli:main" in text
    assert "[opentelemetry_instrumentor]" in text


def test_wheel_installs_into_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[processor]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    probe = (
        "import sys, llmpulse.instrumentation as i, llmpulse.processor as p; "
        "print(i.__file__); print(p.__file__)"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.split():
        assert "site-packages/llmpulse/" in line, line

    # With LLMPULSE_ENABLED unset the start-up hook reads the variable and does nothing else.
    quiet = subprocess.run(
        [str(python), "-c", "import sys; print('llmpulse' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert quiet.stdout.strip() == "False", quiet.stderr

    cli = subprocess.run(
        [str(env_dir / "bin" / "llmpulse"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0, cli.stderr
    assert "serve" in cli.stdout
