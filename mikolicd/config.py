"""The TOML configuration: every key typed, defaulted for a PBX box, and refused loudly when wrong."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable, NamedTuple
from urllib.parse import urlsplit

DEFAULT_PATH = Path("/etc/mikolicd/mikolicd.toml")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """Stops start-up; the message names the file, the key and what is expected."""


def duration(value: Any) -> float:
    """`30s`, `15m`, `6h`, `14d`, or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    raise ValueError("a duration such as 30s, 15m, 6h, 14d or a number of seconds")


def _positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise ValueError("a duration above zero, such as 30s, 15m, 6h or 14d")
    return seconds


def _fraction(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1:
        return float(value)
    raise ValueError("a fraction from 0 to below 1, such as 0.1 for ±10 %")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("a string")


def _path(value: Any) -> Path:
    if isinstance(value, str) and value:
        return Path(value)
    raise ValueError("a non-empty path string")


def _optional_path(value: Any) -> Path | None:
    return _path(value) if value != "" else None


def _https_url(value: Any) -> str:
    parts = urlsplit(_text(value))
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("an https:// URL (TLS verification is always on)")
    return value.rstrip("/")


def _proxy(value: Any) -> str:
    if _text(value) and urlsplit(value).scheme not in ("http", "https", "socks5", "socks5h"):
        raise ValueError('"" or a proxy URL such as http://proxy.example:3128')
    return value


def _mode(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    raise ValueError('a file mode such as "0660"')


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError('a list of group names, such as ["wheel", "www-data"]')


def _listen(value: Any) -> str:
    if _text(value) and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}", value):
        raise ValueError('"" (off) or HOST:PORT such as "127.0.0.1:8223"')
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


# One record per [section], named for it: none shares a name with what it configures (`httpserver.Server`,
# the fingerprint's `Hardware`).
class ServerSection(NamedTuple):
    url: str = "https://lic.miko.ru"
    trusted_keys: Path = Path("/etc/mikolicd/trusted_keys.pem")
    ca_file: Path | None = None
    timeout: float = 30.0
    proxy: str = ""


class StorageSection(NamedTuple):
    state_dir: Path = Path("/var/lib/mikolicd")


class ApiSection(NamedTuple):
    socket: Path = Path("/run/mikolicd.sock")
    socket_mode: int = 0o660
    socket_group: str = ""
    admin_groups: tuple[str, ...] = ()


class CompatSection(NamedTuple):
    listen: str = ""
    allow_remote: bool = False
    # The file the PBX writes for the closed daemon (<temp>/nats_cache/license.key): a number found there
    # is activated once when the agent has none.
    key_file: Path | None = None


class ScheduleSection(NamedTuple):
    check_interval: float = 6 * 3600.0
    jitter: float = 0.1
    retry_max_delay: float = 6 * 3600.0


class HardwareSection(NamedTuple):
    root: Path = Path("/")
    dmidecode: str = "dmidecode"
    snapshot: Path | None = None


class Config(NamedTuple):
    server: ServerSection = ServerSection()
    storage: StorageSection = StorageSection()
    api: ApiSection = ApiSection()
    compat: CompatSection = CompatSection()
    schedule: ScheduleSection = ScheduleSection()
    hardware: HardwareSection = HardwareSection()
    source: str = "(built-in defaults)"


# The sections of the file, and how each key of each is read: one table, so a reader finds every rule.
SECTIONS: dict[str, type] = {"server": ServerSection, "storage": StorageSection, "api": ApiSection,
                             "compat": CompatSection, "schedule": ScheduleSection, "hardware": HardwareSection}
PARSERS: dict[type, dict[str, Callable[[Any], Any]]] = {
    ServerSection: {"url": _https_url, "trusted_keys": _path, "ca_file": _optional_path,
                    "timeout": _positive_duration, "proxy": _proxy},
    StorageSection: {"state_dir": _path},
    ApiSection: {"socket": _path, "socket_mode": _mode, "socket_group": _text, "admin_groups": _names},
    CompatSection: {"listen": _listen, "allow_remote": _flag, "key_file": _optional_path},
    ScheduleSection: {"check_interval": _positive_duration, "jitter": _fraction, "retry_max_delay": _positive_duration},
    HardwareSection: {"root": _path, "dmidecode": _text, "snapshot": _optional_path},
}


def _line_of(text: str, section: str, key: str | None) -> str:
    """Best effort: the line where a key sits, so the admin can jump to it."""
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[] ")
            if key is None and current == section:
                return f":{number}"
        elif key and current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return f":{number}"
    return ""


def _toml(value: Any) -> str:
    """A value as it was written in the file: `true`, not Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def parse(text: str, source: str) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    built: dict[str, Any] = {}
    for name, table in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}{_line_of(text, name, None)}: unknown section [{name}]; "
                              f"known sections: {', '.join(SECTIONS)}")
        cls = SECTIONS[name]
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a [{name}] table")
        keys = PARSERS[cls]
        values = {}
        for key, raw in table.items():
            where = f"{source}{_line_of(text, name, key)}: [{name}] {key}"
            if key not in keys:
                raise ConfigError(f"{where}: unknown key; known keys: {', '.join(keys)}")
            try:
                values[key] = keys[key](raw)
            except ValueError as exc:
                raise ConfigError(f"{where}: expected {exc}, got {_toml(raw)}") from None
        built[name] = cls(**values)
    return Config(**built, source=source)


def load(path: Path) -> Config:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    return parse(text, str(path))
