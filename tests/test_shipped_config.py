"""etc/mikolicd.toml lists every key of mikolicd.config with its built-in default, or marks the shipped
value that differs; docs/configuration.md describes every key. A key added to the code fails here until
both files have it."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mikolicd import config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "etc" / "mikolicd.toml"
MARK = re.compile(r"#\s*shipped; default: (.+)$")


@dataclass(frozen=True)
class Key:
    """One configuration key: its section, name, built-in default and how the daemon reads it."""

    section: str
    name: str
    default: object
    parse: Callable[[object], object]


def keys() -> Iterator[Key]:
    for section, table in config.SECTIONS.items():
        for name, parse in config.PARSERS[table].items():
            yield Key(section, name, table._field_defaults[name], parse)


KEYS = list(keys())


def marks(text: str) -> dict[tuple[str, str], str]:
    """(section, key) → the built-in default its line's `# shipped; default: …` comment states."""
    found, section = {}, ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]")
        elif "=" in stripped and not stripped.startswith("#") and (mark := MARK.search(stripped)):
            found[(section, stripped.split("=", 1)[0].strip())] = mark.group(1)
    return found


@pytest.fixture(scope="module")
def shipped() -> tuple[dict, dict]:
    text = SHIPPED.read_text()
    return tomllib.loads(text), marks(text)


def test_the_shipped_file_loads_as_the_daemon_reads_it():
    config.parse(SHIPPED.read_text(), str(SHIPPED))


@pytest.mark.parametrize("key", KEYS, ids=[f"{k.section}.{k.name}" for k in KEYS])
def test_every_key_is_shipped_with_its_default_or_marked_with_the_true_default(shipped, key):
    values, marked = shipped
    section = key.section
    assert key.name in values.get(section, {}), f"etc/mikolicd.toml lacks [{section}] {key.name}"
    parse = key.parse
    value = parse(values[section][key.name])
    mark = marked.get((section, key.name))
    if mark is None:
        assert value == key.default, (f"[{section}] {key.name} = {value!r} differs from the default "
                                      f"{key.default!r}: mark it '# shipped; default: …' or ship the default")
    else:
        stated = parse(tomllib.loads(f"v = {mark}")["v"])
        assert stated == key.default, f"[{section}] {key.name}: the mark says {stated!r}, the code {key.default!r}"
        assert value != key.default, f"[{section}] {key.name} is marked but ships the default"


@pytest.mark.parametrize("key", KEYS, ids=[f"{k.section}.{k.name}" for k in KEYS])
def test_every_key_is_described_in_the_configuration_docs(key):
    assert f"| `[{key.section}] {key.name}` |" in (ROOT / "docs" / "configuration.md").read_text()
