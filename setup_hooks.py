"""Build hooks: ship the interpreter start-up ``.pth`` file beside the packages.

Setuptools has no declarative way to put a file at the root of site-packages.
``build_py`` copies ``core/llmpulse-autoinstrument.pth`` into the build tree (so it
lands in the wheel), and ``editable_wheel`` writes the same file into editable
wheels. The ``.pth`` sorts after setuptools' ``__editable__`` finder, so the
editable import mapping is in place when it runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH_SOURCE = Path(__file__).parent / "core" / "llmpulse-autoinstrument.pth"


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / PTH_SOURCE.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PTH_SOURCE, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH_SOURCE.name)]


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
