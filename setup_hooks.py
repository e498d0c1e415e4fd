"""Build hooks: files the wheel needs from outside the package folders.

Setuptools has no declarative way to put a file at the root of site-packages, nor to take
package data from outside a package's folder. ``build_py`` therefore copies, into the build
tree (so they land in the wheel):

* ``core/llmpulse-autoinstrument.pth`` to the root of site-packages;
* the stack files ``llmpulse up`` and ``llmpulse demo`` read, which stay at the top of the
  repository (``alerting/``, ``otel-collector.yaml``, ``collector/``), to
  ``llmpulse/stack/data/`` with the same relative paths (``llmpulse.stack.files`` reads them
  there; a test checks that both name the same files).

``editable_wheel`` writes the ``.pth`` into editable wheels; the stack files need nothing
there, since an editable install reads them from the checkout. The ``.pth`` sorts after
setuptools' ``__editable__`` finder, so the editable import mapping is in place when it runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

ROOT = Path(__file__).parent
PTH_SOURCE = ROOT / "core" / "llmpulse-autoinstrument.pth"
STACK_DATA = Path("llmpulse") / "stack" / "data"
# Globs relative to the repository root; each must match at least one file.
STACK_FILES = (
    "alerting/rules/*.yml",
    "alerting/alertmanager.yml",
    "otel-collector.yaml",
    "otel-collector-kafka.yaml",
    "collector/builder-config.yaml",
)


def stack_files() -> list[Path]:
    """The stack files, relative to the repository root; fails if a pattern matches nothing."""
    found: list[Path] = []
    for pattern in STACK_FILES:
        matches = sorted(p.relative_to(ROOT) for p in ROOT.glob(pattern) if p.is_file())
        if not matches:
            # An sdist without them (see MANIFEST.in) would build a wheel whose `llmpulse up` fails.
            raise FileNotFoundError(f"no {pattern} under {ROOT}: the wheel would lack the stack files")
        found.extend(matches)
    return found


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        for source, target in self._extra_files():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def _extra_files(self) -> list[tuple[Path, Path]]:
        build_lib = Path(self.build_lib)
        extra = [(PTH_SOURCE, build_lib / PTH_SOURCE.name)]
        extra += [(ROOT / rel, build_lib / STACK_DATA / rel) for rel in stack_files()]
        return extra

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *(str(t) for _, t in self._extra_files())]

    def exclude_data_files(self, package: str, src_dir: str, files: list[str]) -> list[str]:
        # MANIFEST.in lists the .pth for the sdist, which makes it package data of `llmpulse`
        # too; its one place in the wheel is the root of site-packages.
        kept = super().exclude_data_files(package, src_dir, files)
        return [f for f in kept if Path(f).name != PTH_SOURCE.name]


class _WithPth:
    """Wraps setuptools' editable strategy and adds the start-up ``.pth``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, wheel: Any, files: list[str], mapping: Any) -> None:
        self._inner(wheel, files, mapping)
        wheel.writestr(PTH_SOURCE.name, PTH_SOURCE.read_bytes())

    def __enter__(self) -> _WithPth:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)


class EditableWheel(editable_wheel):
    def _select_strategy(self, name: str, tag: str, build_lib: Any) -> Any:
        return _WithPth(super()._select_strategy(name, tag, build_lib))
