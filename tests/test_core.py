"""The pure core stays pure: importing it loads no I/O module, and nothing imports in a circle."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mikolicd"
PURE = ["mikolicd.lifecycle", "mikolicd.trust", "mikolicd.schedule", "mikolicd.license", "mikolicd.alerts",
        "mikolicd.fingerprint.binding", "mikolicd.forms", "mikolicd.offlinecode", "mikolicd.views"]
IO_MODULES = {"socket", "ssl", "subprocess", "selectors", "asyncio", "urllib3", "dmidecode",
              "http.client", "mikolicd.store", "mikolicd.atomic", "mikolicd.client", "mikolicd.clock",
              "mikolicd.fingerprint.reader", "mikolicd.fingerprint.host", "mikolicd.fingerprint.dmi",
              "mikolicd.fingerprint.snapshot", "mikolicd.journal", "mikolicd.httpserver"}


def loaded_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", PURE)
def test_importing_the_pure_core_loads_no_io_module(module):
    bare = loaded_after("pass")
    assert (loaded_after(f"import {module}") - bare) & IO_MODULES == set()


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """The package's own modules that a module imports anywhere in it, deferred imports included."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("mikolicd"):
                found |= {f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mikolicd")}
    return found - {module}


def test_no_module_of_the_package_imports_itself_in_a_circle():
    graph = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): _imports(p)
             for p in PACKAGE.rglob("*.py")}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif len(path) < 30:
                visit(nxt, path + [nxt])
    for start in graph:
        visit(start, [start])
    assert sorted(set(cycles))[:5] == []
