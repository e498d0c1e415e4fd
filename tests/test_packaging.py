"""The built wheel installs one `llmpulse` package, its command, its start-up hook and the
stack files; an sdist carries what building that wheel needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from llmpulse.stack import components, files

STACK_DATA = "llmpulse/stack/data/"


def source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored) copied to ``dest``.

    Building from a copy keeps the checkout's own ``build/`` (which setuptools never cleans, so
    modules moved away linger there) out of the wheel, and the build out of the checkout.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=components.REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = components.REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not listed as gone
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def build(source: Path, out: Path, *kinds: str) -> None:
    """``python -m build`` ``kinds`` (``--wheel``, ``--sdist``; none: sdist, then wheel from it)."""
    result = subprocess.run(
        [sys.executable, "-m", "build", *kinds, "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def build_wheel(tmp: Path) -> Path:
    """A wheel built from a copy of the checkout, in ``tmp``."""
    build(source_copy(tmp / "src"), tmp / "dist", "--wheel")
    (built,) = (tmp / "dist").glob("llmpulse-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _stack_files_in_checkout() -> dict[str, bytes]:
    """What llmpulse.stack.files reads in the checkout, by path relative to the checkout."""
    paths = [
        *files.rule_files(),
        files.alertmanager_config(),
        files.collector_config(),
        files.collector_kafka_config(),
        files.collector_manifest(),
    ]
    return {str(p.relative_to(components.REPO_ROOT)): p.read_bytes() for p in paths}


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


def test_wheel_carries_the_stack_files_llmpulse_stack_files_reads(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    shipped = {
        name.removeprefix(STACK_DATA): archive.read(name)
        for name in archive.namelist()
        if name.startswith(STACK_DATA)
    }
    expected = _stack_files_in_checkout()
    assert set(shipped) == set(expected), "setup_hooks.STACK_FILES and llmpulse.stack.files disagree"
    assert shipped == expected
    # The start-up hook is at the root of site-packages only, not also inside the package.
    assert [n for n in archive.namelist() if n.endswith("llmpulse-autoinstrument.pth")] == [
        "llmpulse-autoinstrument.pth"
    ]


def test_a_wheel_built_from_the_sdist_has_the_stack_files_too(tmp_path: Path) -> None:
    build(source_copy(tmp_path / "src"), tmp_path / "dist")  # sdist, then the wheel from it
    (sdist,) = (tmp_path / "dist").glob("llmpulse-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup_hooks.py", *_stack_files_in_checkout()} <= members
    (wheel_from_sdist,) = (tmp_path / "dist").glob("llmpulse-*.whl")
    shipped = {n.removeprefix(STACK_DATA) for n in zipfile.ZipFile(wheel_from_sdist).namelist()}
    assert set(_stack_files_in_checkout()) <= shipped
