"""The import rule of vxlan_evt's layers, checked on every module's imports.

A module may import from its own layer and from layers below it, never from one above.
The layers are being carved out of the flat tree (issue Layout): `model` is the bottom,
and modules not yet moved into a layer are `LEGACY`, allowed to import anything but
never imported by a layer. Each entry of `ALLOWED` is an exception with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vxlan_evt"
# Bottom first; a layer may import only itself and what stands before it.
LAYERS = ("model",)
LEGACY = "(legacy)"
ALLOWED: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "vxlan_evt" and parts[1] in LAYERS:
        return parts[1]
    return LEGACY


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
    if here == LEGACY:
        return []
    rank = LAYERS.index(here)
    wrong = []
    for target in sorted(imported):
        there = layer_of(target)
        if target == "vxlan_evt" or (module, target) in ALLOWED:
            continue
        if there == LEGACY or LAYERS.index(there) > rank:
            wrong.append(f"{module} ({here}) imports {target} ({there})")
    return wrong


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    assert violations(module_name(path), imports_of(path)) == []


def test_the_rule_itself_catches_an_upward_import() -> None:
    assert violations("vxlan_evt.model.tables", {"vxlan_evt.driver"}) != []
    assert violations("vxlan_evt.model.tables", {"vxlan_evt.model.addresses"}) == []
    assert violations("vxlan_evt.options", {"vxlan_evt.model.addresses"}) == []
    assert layer_of("vxlan_evt.model") == "model"


def test_every_allowed_exception_still_exists() -> None:
    """A stale exception would hide the next real violation."""
    by_module = {module_name(path): imports_of(path) for path in MODULES}
    for module, target in ALLOWED:
        assert target in by_module.get(module, set()), (module, target)
