"""The documents name tests as proof: every named test exists, so a renamed or dropped one shows here."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`(test_[a-z0-9_]+\.py|…)::([A-Za-z0-9_]+)")


def functions_in(name: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / name).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("doc", ["docs/security.md"])
def test_every_test_a_document_names_exists(doc):
    missing, current = [], None
    references = REFERENCE.findall((ROOT / doc).read_text())
    for file, test in references:
        current = current if file == "…" else file
        if current is None or test not in functions_in(current):
            missing.append(f"{current}::{test}")
    assert references and missing == []
