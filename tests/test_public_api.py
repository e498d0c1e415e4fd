"""``__all__``: sorted, no duplicates, every name real; packages list their submodules; the
application API (``llmpulse``, ``llmpulse.instrumentation``) lists everything it offers."""

from __future__ import annotations

import ast
import importlib
import re
from types import ModuleType

import pytest

from tests.test_layout import REPO, module_files

FILES = module_files()
PACKAGES = sorted(m for m, p in FILES.items() if p.name == "__init__.py")
WITH_ALL = sorted(
    m
    for m, p in FILES.items()
    if any(
        isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        for node in ast.parse(p.read_text()).body
    )
)
APPLICATION_API = ("llmpulse", "llmpulse.instrumentation")


def isort_key(name: str) -> tuple[int, list[int | str]]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then the rest; natural."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    return category, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _dunder_all(module: str) -> list[str]:
    names = getattr(importlib.import_module(module), "__all__", None)
    assert names is not None, f"{module} ({FILES[module].relative_to(REPO)}) has no __all__"
    return list(names)


def _submodules(package: str) -> set[str]:
    """The public modules and sub-packages directly inside ``package``."""
    prefix = package + "."
    return {
        rest
        for m in FILES
        if m.startswith(prefix) and "." not in (rest := m[len(prefix) :]) and not rest.startswith("_")
    }


def test_the_scan_found_packages_and_modules() -> None:
    assert {"llmpulse", "llmpulse.contract", "llmpulse.instrumentation", "llmpulse.processor"} <= set(
        PACKAGES
    )
    assert "llmpulse.instrumentation" in WITH_ALL


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_has_an_all(package: str) -> None:
    _dunder_all(package)


@pytest.mark.parametrize("module", sorted(set(WITH_ALL) | set(PACKAGES)))
def test_all_is_sorted_unique_and_real(module: str) -> None:
    names = _dunder_all(module)
    assert names == sorted(names, key=isort_key), f"{module}.__all__ is not sorted: {names}"
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{module}.__all__ lists {duplicates} twice"
    imported = importlib.import_module(module)
    missing = [
        n
        for n in names
        if not hasattr(imported, n) and f"{module}.{n}" not in FILES  # a submodule counts before its import
    ]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    for name in names:
        if f"{module}.{name}" in FILES:
            importlib.import_module(f"{module}.{name}")


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_listing_submodules_lists_them_all(package: str) -> None:
    imported = importlib.import_module(package)
    submodules = _submodules(package)
    listed = {
        n
        for n in _dunder_all(package)
        if n in submodules and isinstance(getattr(imported, n, imported), ModuleType)
    }  # ``llmpulse.instrumentation.context`` is the class, not the module of that name
    if not listed:
        return  # this package's __all__ is an API, not a table of contents
    assert submodules <= listed, f"{package}.__all__ leaves out its submodules {sorted(submodules - listed)}"


def _offered(module: str) -> set[str]:
    """Public names ``module`` defines, or imports from the package on purpose (re-exports)."""
    tree = ast.parse(FILES[module].read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmpulse"):
            names |= {alias.asname or alias.name for alias in node.names}
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("module", APPLICATION_API)
def test_the_application_api_is_complete(module: str) -> None:
    names = set(_dunder_all(module))
    imported = importlib.import_module(module)
    lazy = set(getattr(imported, "_INSTRUMENTATION_EXPORTS", ()))  # llmpulse's on-first-use re-exports
    offered = _offered(module) | lazy
    assert offered <= names, f"{module} offers {sorted(offered - names)} outside __all__"
    assert {n for n in names if not n.startswith("__")} <= offered, (
        f"{module}.__all__ lists names it neither defines nor re-exports: {sorted(names - offered)}"
    )


def test_llmpulse_reexports_the_instrumentation_api() -> None:
    import llmpulse
    import llmpulse.instrumentation

    for name in set(llmpulse.__all__) - {"__version__"}:
        assert getattr(llmpulse, name) is getattr(llmpulse.instrumentation, name), name
