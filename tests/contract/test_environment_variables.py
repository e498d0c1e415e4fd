"""Every environment variable is defined once, with a docstring, and documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from llmpulse.contract import environment_variables as E
from llmpulse.processor.settings import FIELDS

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "core" / "contract" / "environment_variables.py"
# Where a variable can be named: the source tree and the shipped config files.
SOURCES = ("core", "processor", "instrumentation", "benchmarks", "scripts", "collector", "alerting", "deploy")
CONFIG_FILES = ("otel-collector.yaml", "docker-compose.yml", "Dockerfile")
SUFFIXES = {".py", ".pth", ".yaml", ".yml", ".sh", ".toml"}
DOCS = (*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md")
NAME = re.compile(r"\bLLMPULSE_[A-Z0-9_]*[A-Z0-9]\b")


def _defined() -> dict[str, str]:
    """Constant name -> value for every upper-case string constant of the module."""
    return {k: v for k, v in vars(E).items() if k.isupper() and isinstance(v, str)}


def _variables() -> set[str]:
    prefix = E.SETTING_PREFIX
    return {v for v in _defined().values() if v != prefix}


def _source_files() -> list[Path]:
    files = [REPO / name for name in CONFIG_FILES]
    for top in SOURCES:
        files += [p for p in (REPO / top).rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    return [p for p in files if p.is_file() and p != MODULE]


def test_constants_are_named_after_their_variable() -> None:
    wrong = {k: v for k, v in _defined().items() if k not in (v, "SETTING_PREFIX")}
    assert not wrong, f"constant and variable name differ: {wrong}"


def test_every_constant_has_a_docstring() -> None:
    body = ast.parse(MODULE.read_text()).body
    undocumented = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            name = getattr(targets[0], "id", "")
            if name.isupper():
                documented = (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                    and following.value.value.strip()
                )
                if not documented:
                    undocumented.append(name)
    assert not undocumented, f"constants without a docstring under them: {undocumented}"


def test_every_llmpulse_variable_in_the_tree_is_defined_here() -> None:
    found: dict[str, set[str]] = {}
    for path in _source_files():
        for name in NAME.findall(path.read_text(errors="replace")):
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert len(found) > 20, "the scan found too few names: is SOURCES right?"
    missing = {name: sorted(paths) for name, paths in found.items() if name not in _variables()}
    assert not missing, f"LLMPULSE_* names not defined in llmpulse.contract.environment_variables: {missing}"


def test_every_processor_setting_has_its_variable() -> None:
    assert tuple(f.env for f in FIELDS) == E.PROCESSOR_SETTINGS
    assert set(E.PROCESSOR_SETTINGS) <= _variables()


def test_every_variable_is_documented() -> None:
    text = "\n".join(p.read_text() for p in DOCS)
    undocumented = sorted(v for v in _variables() if not re.search(rf"\b{v}\b", text))
    assert not undocumented, f"environment variables documented nowhere in docs/ or README.md: {undocumented}"


def test_the_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(MODULE.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "typing"}, imported
