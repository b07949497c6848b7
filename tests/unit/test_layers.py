"""The import rule of vxlan_evt's layers, checked on every module's imports.

A module may import from its own layer and from the tiers below it, never from one above
and never from a sibling of its own tier. Every module lives in a layer; only the package
root (`vxlan_evt/__init__.py`: the version and the rule, importing nothing) and
`__main__` (the entry point, on top of everything) stand outside. Each entry of `ALLOWED`
is an exception with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vxlan_evt"
# Bottom first, one tier per row; a layer may import itself and the tiers before its own,
# never a sibling of its tier (the edges do not know each other).
TIERS: tuple[tuple[str, ...], ...] = (
    ("model",),
    ("kernel", "etcd", "disk"),
    ("driver",),
    ("ipam",),
    ("peers",),
    ("resolve",),
    ("observe",),
    ("daemon",),
    ("cli",),
    ("testing",),  # rigs for tests and tools; nothing in the package imports it
)
LAYERS = tuple(layer for tier in TIERS for layer in tier)
RANK = {layer: rank for rank, tier in enumerate(TIERS) for layer in tier}
ROOT = "(root)"
ROOT_MODULES = frozenset({"vxlan_evt", "vxlan_evt.__main__", "vxlan_evt.__version__"})
ALLOWED: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    """The layer a module belongs to; ROOT for the package root; "" for a stray module."""
    if module in ROOT_MODULES:
        return ROOT
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "vxlan_evt" and parts[1] in LAYERS:
        return parts[1]
    return ""


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every vxlan_evt module this file imports, at any depth (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "vxlan_evt"}


def violations(module: str, imported: set[str]) -> list[str]:
    here = layer_of(module)
    if not here:
        return [f"{module} is in no layer: move it into one of {', '.join(LAYERS)}"]
    if module == "vxlan_evt.__main__":
        return []  # the entry point stands on top of everything
    wrong = []
    for target in sorted(imported):
        there = layer_of(target)
        if (there in (here, ROOT) and module != "vxlan_evt") or (module, target) in ALLOWED:
            continue
        if here == ROOT or not there or RANK[there] >= RANK[here]:
            wrong.append(f"{module} ({here}) imports {target} ({there or 'no layer'})")
    return wrong


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    assert violations(module_name(path), imports_of(path)) == []


def test_the_rule_itself_catches_an_upward_import() -> None:
    assert violations("vxlan_evt.model.tables", {"vxlan_evt.driver.plan"}) != []
    assert violations("vxlan_evt.model.tables", {"vxlan_evt.model.addresses"}) == []
    assert violations("vxlan_evt.driver.plan", {"vxlan_evt.model.addresses"}) == []
    assert violations("vxlan_evt.cli.main", {"vxlan_evt.__version__"}) == []
    assert layer_of("vxlan_evt.model") == "model"


def test_the_rule_itself_catches_siblings_strays_and_a_busy_root() -> None:
    assert violations("vxlan_evt.kernel.links", {"vxlan_evt.disk.atomicfile"}) != []
    assert violations("vxlan_evt.kernel.links", {"vxlan_evt.kernel.worker"}) == []
    assert violations("vxlan_evt.options", set()) != []  # a module outside every layer
    assert violations("vxlan_evt", {"vxlan_evt.model.errors"}) != []
    assert violations("vxlan_evt.__main__", {"vxlan_evt.cli.main"}) == []


def test_every_layer_is_a_package_with_its_reason() -> None:
    """Each layer says in its docstring what it holds and what it may import."""
    for layer in LAYERS:
        init = PACKAGE / layer / "__init__.py"
        assert init.is_file(), layer
        assert ast.get_docstring(ast.parse(init.read_text())), f"{layer}/__init__.py: no docstring"


UNIT_TESTS = PACKAGE.parent / "tests" / "unit"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in UNIT_TESTS.rglob("test_*.py") if p.parent != UNIT_TESTS),
    ids=lambda p: str(p.relative_to(UNIT_TESTS)),
)
def test_unit_tests_mirror_the_layout(path: Path) -> None:
    """tests/unit/<layer>/.../test_<module>.py tests vxlan_evt/<layer>/.../<module>.py."""
    relative = path.relative_to(UNIT_TESTS)
    assert relative.parts[0] in LAYERS, f"{relative}: {relative.parts[0]} is not a layer"
    module = PACKAGE / relative.parent / (path.stem.removeprefix("test_") + ".py")
    assert module.is_file(), f"{relative} tests no module ({module.relative_to(PACKAGE.parent)})"


def test_every_allowed_exception_still_exists() -> None:
    """A stale exception would hide the next real violation."""
    by_module = {module_name(path): imports_of(path) for path in MODULES}
    for module, target in ALLOWED:
        assert target in by_module.get(module, set()), (module, target)
