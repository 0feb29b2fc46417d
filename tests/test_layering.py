"""The dependency direction of DESIGN.md, checked by parsing imports."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED = {
    "search_space": set(),
    "controller": {"search_space"},
    "trainer": {"search_space"},
    "latency": {"search_space"},
    "nas": {"search_space", "controller", "trainer", "latency", "experiments"},
}
PROJECT = set(ALLOWED) | {"experiments"}


def _imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    for path in (ROOT / package).rglob("*.py"):
        used = (_imports(path) & PROJECT) - {package}
        assert used <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {sorted(used - ALLOWED[package])}"
