"""`mikolicctl support-bundle`: one file a support engineer can read, safe to attach to a ticket.

What goes in is chosen (doctor, status, products, fingerprint verdicts, versions, the effective
configuration), and then the whole text is scrubbed once more, so a registration number, coupon,
e-mail address, MAC or UUID that some message quotes is replaced as well.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__, doctor
from ..config import SECTIONS, Config
from ..exits import OK, Failure
from .outfile import PrivateFile
from .render import fingerprint_text
from .invocation import Invocation

LIBRARIES = ("httptools", "py-dmidecode", "pynacl", "urllib3", "cryptography",
             "aiohttp")
LICENSE_KEYS = ("license_id", "state", "issued_at", "offline_until", "offline", "products")
SCRUB = (
    (re.compile(r"\bMIKOUPD(?:-[A-Z0-9*]{5}){1,4}", re.IGNORECASE), "<coupon>"),
    (re.compile(r"\bMIKO(?:-[A-Z0-9*]{5}){1,4}", re.IGNORECASE), "<registration number>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<e-mail address>"),
    (re.compile(r"\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b", re.IGNORECASE), "<MAC address>"),
    (re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", re.IGNORECASE), "<UUID>"),
)


def default_path(now: dt.datetime) -> Path:
    return Path(f"mikolicd-support-{now:%Y%m%d-%H%M%S}.txt")


def scrub(text: str) -> str:
    for pattern, placeholder in SCRUB:
        text = pattern.sub(placeholder, text)
    return text


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, Any]:
    try:
        os_release = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        os_release = ""
    return {"mikolicctl": __version__, "python": platform.python_version(), "os": os_release,
            "kernel": platform.platform(), "libraries": {name: _version(name) for name in LIBRARIES}}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps("" if value is None else str(value))


def configuration(config: Config | None) -> str:
    """Every key as the agent reads it, defaults included; a proxy's password masked."""
    if config is None:
        return "the configuration does not load: see the config check above"
    lines = [f"# {config.source}"]
    for name in SECTIONS:
        table = getattr(config, name)
        lines.append(f"\n[{name}]")
        for key, value in table._asdict().items():
            if key == "proxy":
                value = doctor.redact(value)
            elif key == "socket_mode":
                value = f"{value:04o}"
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def from_agent(ctl: Invocation, path: str, view: Any) -> str:
    """A section built from one agent answer, or why there is none."""
    try:
        code, answer = ctl.ask("GET", path)
    except Failure as failure:
        return f"not available: {failure.message}"
    if code != 200:
        return f"the agent answered HTTP {code}: {_json(answer.get('error', answer))}"
    return view(answer)


def status_view(status: dict[str, Any]) -> str:
    shown = dict(status, registration_number="(set)" if status.get("registration_number") else None)
    return _json(shown)


def license_view(lic: dict[str, Any]) -> str:
    owner = {k: "(set)" for k, v in (lic.get("owner") or {}).items() if v}
    return _json({**{k: lic[k] for k in LICENSE_KEYS if k in lic}, "owner": owner})


def build(ctl: Invocation, config_path: Path | None, sock: Path | None, now: dt.datetime) -> str:
    """`sock` None: the agent on the default socket, as doctor finds it."""
    report = doctor.examine(config_path, sock)
    agent = dataclasses.replace(ctl, socket=report.sock)
    details = {c.name: c.detail for c in report.checks if c.detail}
    sections = [
        ("versions", _json(versions())),
        ("doctor", f"{doctor.human(report.checks)}\n\ndetails: {_json(details)}"),
        ("status", from_agent(agent, "/v1/status", status_view)),
        ("license", from_agent(agent, "/v1/license", license_view)),
        ("fingerprint", from_agent(agent, "/v1/fingerprint", fingerprint_text)),
        ("configuration", configuration(report.config)),
    ]
    head = (f"mikolicd support bundle, {now.isoformat(timespec='seconds')}, agent socket {report.sock}\n"
            "Registration numbers, coupons, e-mail addresses and hardware ids are left out or replaced.\n")
    return scrub(head + "".join(f"\n===== {name} =====\n{body}\n" for name, body in sections))


def support_bundle(ctl: Invocation, args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    path = args.output or default_path(now)
    with PrivateFile(path, "the support bundle") as out:
        out.write(build(ctl, args.config, args.socket, now))
    ctl.show({"file": str(path)}, f"support bundle written to {path} (mode 0600): attach it to your ticket "
                 "for Miko support; it holds no registration number, coupon, e-mail address or hardware id")
    return OK
