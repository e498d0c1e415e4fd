"""The layout's import directions, checked on the source with ``ast``.

Rules (the README's Layout section states them for readers):

* ``llmpulse.contract`` imports only the standard library and itself.
* ``llmpulse.instrumentation`` never imports ``llmpulse.processor``, and vice versa.
* The engines (``llmpulse.processor.{quality,drift,spc,metrics,pipeline}``) never import
  ``llmpulse.processor.ingest``.
* Only ``llmpulse.cli`` imports ``llmpulse.demo`` or ``llmpulse.stack``; inside them the demo may
  use the stack, the stack never the demo.
* ``llmpulse.console`` (the triage console) reads the processor's store and names; the
  processor, the instrumentation and the contract never import the console.
* ``llmpulse.testing`` holds test doubles of the outside world (fake provider, webhook sink,
  OTLP span builders): it imports only the contract and itself, and only the CLI (``llmpulse
  fake-provider``) and the demo (its simulated provider) import it; product code never does.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, ``from x import y``
where ``y`` is a submodule, and module names given as string literals in a module that calls
``importlib.import_module`` or ``__import__`` (how the CLI loads its subcommands).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINES = tuple(
    f"llmpulse.processor.{name}" for name in ("quality", "drift", "agents", "spc", "metrics", "pipeline")
)


def source_roots() -> dict[str, Path]:
    """Package name -> source folder, from ``[tool.setuptools] package-dir`` in pyproject.toml."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {name: REPO / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    found: dict[str, Path] = {}
    for package, root in source_roots().items():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@dataclass(frozen=True)
class Import:
    """One import of ``target`` by ``module`` at ``line``."""

    module: str
    target: str
    line: int


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, name] if name else base)


def imports_of(module: str, source: str, known: Iterable[str], *, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (the text of ``module``); ``known`` are the package's module names."""
    known = frozenset(known)
    tree = ast.parse(source)
    found: list[Import] = []
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            if len(submodules) < len(node.names):  # some names are attributes of ``base`` itself
                found.append(Import(module, base, node.lineno))
            found += [Import(module, target, node.lineno) for target in submodules]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            dynamic = dynamic or name in ("import_module", "__import__")
    if dynamic:
        found += [
            Import(module, node.value, node.lineno)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known
        ]
    return found


@dataclass(frozen=True)
class Rule:
    """Modules matching ``applies`` must not import a target for which ``forbids`` holds."""

    text: str
    applies: Callable[[str], bool]
    forbids: Callable[[str, str], bool]  # (importer, target) -> forbidden


def _is_stdlib(target: str) -> bool:
    return target.split(".", maxsplit=1)[0] in sys.stdlib_module_names


RULES = (
    Rule(
        "llmpulse.contract imports only the standard library and llmpulse.contract",
        lambda m: within(m, "llmpulse.contract"),
        lambda m, t: not (_is_stdlib(t) or within(t, "llmpulse.contract")),
    ),
    Rule(
        "llmpulse.instrumentation never imports llmpulse.processor",
        lambda m: within(m, "llmpulse.instrumentation"),
        lambda m, t: within(t, "llmpulse.processor"),
    ),
    Rule(
        "llmpulse.processor never imports llmpulse.instrumentation",
        lambda m: within(m, "llmpulse.processor"),
        lambda m, t: within(t, "llmpulse.instrumentation"),
    ),
    Rule(
        "engines (llmpulse.processor.{quality,drift,spc,metrics,pipeline}) never import "
        "llmpulse.processor.ingest",
        lambda m: any(within(m, engine) for engine in ENGINES),
        lambda m, t: within(t, "llmpulse.processor.ingest"),
    ),
    Rule(
        "only llmpulse.cli imports llmpulse.console (and the console itself)",
        lambda m: m != "llmpulse.cli" and not within(m, "llmpulse.console"),
        lambda m, t: within(t, "llmpulse.console"),
    ),
    Rule(
        "only llmpulse.cli imports llmpulse.demo (and the demo itself)",
        lambda m: m != "llmpulse.cli" and not within(m, "llmpulse.demo"),
        lambda m, t: within(t, "llmpulse.demo"),
    ),
    Rule(
        "only llmpulse.cli and llmpulse.demo import llmpulse.stack (and the stack itself)",
        lambda m: m != "llmpulse.cli" and not within(m, "llmpulse.demo") and not within(m, "llmpulse.stack"),
        lambda m, t: within(t, "llmpulse.stack"),
    ),
    Rule(
        "only llmpulse.cli and llmpulse.demo import llmpulse.testing (and the test doubles themselves)",
        lambda m: (
            m != "llmpulse.cli" and not within(m, "llmpulse.demo") and not within(m, "llmpulse.testing")
        ),
        lambda m, t: within(t, "llmpulse.testing"),
    ),
    Rule(
        "llmpulse.testing imports only llmpulse.contract and llmpulse.testing of the package",
        lambda m: within(m, "llmpulse.testing"),
        lambda m, t: (
            within(t, "llmpulse")
            and t != "llmpulse"
            and not within(t, "llmpulse.contract")
            and not within(t, "llmpulse.testing")
        ),
    ),
)


def violations(found: Iterable[Import], files: dict[str, Path] | None = None) -> list[str]:
    """One line per forbidden import: where, what, and the rule it breaks."""
    out = []
    for imp in found:
        for rule in RULES:
            if rule.applies(imp.module) and rule.forbids(imp.module, imp.target):
                where = files[imp.module].relative_to(REPO) if files else imp.module
                out.append(f"{where}:{imp.line}: {imp.module} imports {imp.target}: breaks '{rule.text}'")
    return out


def all_imports(files: dict[str, Path]) -> Iterator[Import]:
    for module, path in files.items():
        yield from imports_of(module, path.read_text(), files, is_package=path.name == "__init__.py")


def test_the_tree_has_every_source_folder() -> None:
    files = module_files()
    for package in ("llmpulse.contract", "llmpulse.instrumentation", "llmpulse.processor.ingest", *ENGINES):
        assert package in files, f"{package} not found: is pyproject's package-dir up to date?"
    assert "llmpulse.cli" in files


def test_imports_follow_the_layers() -> None:
    files = module_files()
    broken = violations(all_imports(files), files)
    assert not broken, "forbidden imports:\n" + "\n".join(broken)


# --- the checker itself: each rule catches a forbidden import ---------------------------------

KNOWN = frozenset(
    {
        "llmpulse",
        "llmpulse.cli",
        "llmpulse.console",
        "llmpulse.console.app",
        "llmpulse.contract",
        "llmpulse.contract.attributes",
        "llmpulse.demo",
        "llmpulse.demo.runner",
        "llmpulse.instrumentation",
        "llmpulse.instrumentation.hook",
        "llmpulse.processor",
        "llmpulse.processor.ingest",
        "llmpulse.processor.ingest.otlp_grpc",
        "llmpulse.processor.quality",
        "llmpulse.processor.quality.engine",
        "llmpulse.stack",
        "llmpulse.stack.components",
        "llmpulse.testing",
        "llmpulse.testing.fake_provider",
    }
)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("llmpulse.contract.extra", "import grpc\n", "llmpulse.contract imports only"),
        (
            "llmpulse.processor.service",
            "def f():\n    from llmpulse.instrumentation.hook import x\n",
            "llmpulse.processor never imports llmpulse.instrumentation",
        ),
        (
            "llmpulse.processor.quality.engine",
            "from llmpulse.processor import ingest\n",
            "never import llmpulse.processor.ingest",
        ),
        (
            "llmpulse.instrumentation.hook",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import llmpulse.processor\n",
            "llmpulse.instrumentation never imports llmpulse.processor",
        ),
        (
            "llmpulse.processor.cli",
            "import importlib\nMODULES = ('llmpulse.stack.components',)\n"
            "def load(name):\n    return importlib.import_module(name)\n",
            "import llmpulse.stack",
        ),
        (
            "llmpulse.processor.quality.engine",
            "from llmpulse.console import app\n",
            "only llmpulse.cli imports llmpulse.console",
        ),
        (
            "llmpulse.stack.local",
            "from llmpulse.demo import runner\n",
            "only llmpulse.cli imports llmpulse.demo",
        ),
        (
            "llmpulse.processor.quality.engine",
            "from llmpulse.testing.fake_provider import FakeProvider\n",
            "import llmpulse.testing",
        ),
        (
            "llmpulse.testing.fake_provider",
            "import llmpulse.processor.quality.engine\n",
            "llmpulse.testing imports only",
        ),
    ],
)
def test_the_checker_reports_a_forbidden_import(module: str, source: str, expected: str) -> None:
    broken = violations(imports_of(module, source, KNOWN))
    assert len(broken) == 1, broken
    assert module in broken[0] and expected in broken[0], broken[0]


def test_the_checker_lets_allowed_imports_through() -> None:
    allowed = {
        "llmpulse.contract.extra": "import json, re\nfrom llmpulse.contract import attributes\n",
        "llmpulse.processor.quality.engine": "from llmpulse.contract import attributes\nimport numpy\n",
        "llmpulse.processor.ingest.otlp_grpc": "from llmpulse.processor.quality import engine\n",
        "llmpulse.cli": "import importlib\nX = ('llmpulse.demo.runner', 'llmpulse.stack.components')\n"
        "importlib.import_module(X[0])\n",
        "llmpulse.demo.runner": (
            "from llmpulse.stack import components\nfrom llmpulse.testing import fake_provider\n"
        ),
        "llmpulse.testing.fake_provider": "from llmpulse.contract import attributes\nimport httpx\n",
    }
    for module, source in allowed.items():
        assert violations(imports_of(module, source, KNOWN)) == [], module


def test_relative_imports_resolve_to_the_module_they_name() -> None:
    found = imports_of("llmpulse.processor.quality.engine", "from ..ingest import otlp_grpc\n", KNOWN)
    assert [i.target for i in found] == ["llmpulse.processor.ingest.otlp_grpc"]
    found = imports_of(
        "llmpulse.processor.quality", "from .engine import QualityEngine\n", KNOWN, is_package=True
    )
    assert [i.target for i in found] == ["llmpulse.processor.quality.engine"]


def test_the_test_doubles_import_without_the_processor_extra() -> None:
    """``llmpulse fake-provider`` needs only the base install: protobuf stays inside testing.otlp."""
    code = (
        "import sys\n"
        "for name in ('grpc', 'google.protobuf', 'opentelemetry.proto', 'prometheus_client', 'numpy'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import llmpulse.testing, llmpulse.testing.fake_provider, llmpulse.testing.webhook_sink\n"
        "import llmpulse.testing.clock, llmpulse.testing.polling, llmpulse.testing.cli\n"
        "try:\n"
        "    import llmpulse.testing.otlp\n"
        "except ImportError:\n"
        "    print('otlp needs protobuf')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == "otlp needs protobuf"
    )  # the blocker works, so the imports above ran without it
