"""Fakes for in-process tests of the agent: a clock that moves when told, predictable randomness, and a
licensing client that answers like the server (signed documents echoing the request) or as told."""
from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from mikolicd import protocol
from mikolicd.agent import Agent, Setup
from mikolicd.client import Answer
from mikolicd.config import Config, StorageSection
from mikolicd.errors import ServerRefused, ServerUnreachable
from mikolicd.fingerprint.binding import Hardware, components
from mikolicd.installation import Installation
from mikolicd.jws import key_id, sign
from mikolicd.license import DOCUMENT_TYPE, REFUSAL_TYPE
from mikolicd.schedule import Policy
from mikolicd.store import Store
from mikolicd.trust import Reading

NOW = 1_800_000_000.0  # 2027-01-15
DAY = 86400.0
TTL = 14 * DAY
NUMBER = "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"
OTHER = "MIKO-EEEEE-FFFFF-GGGGG-HHHHH"
HOST = Hardware({"system_uuid": "4c4c4544-0042-3310-8057-b4c04f4a4e31", "system_serial": "5X2DKM2",
                 "board_serial": "CN7016355R0123", "disk_serial": "S4EWNX0N123456", "nic": ("00:1b:21:aa:bb:01",),
                 "machine_id": "0f9c4d2a8b7e4e61a1f3d5c7b9e2a4c6"}, {})
OTHER_HOST = Hardware({"system_uuid": "11111111-2222-3333-4444-555555555555", "system_serial": "ZZ99ZZ9",
                       "board_serial": "QQ1234567", "disk_serial": "WD-0000000001", "nic": ("00:1b:21:cc:dd:02",)},
                      {})


@dataclass
class FakeClock:
    """Time moves only when told to. `true` is the time the licensing server knows; the box's owner may
    set the wall clock anywhere (`wall = ...`), and it runs on from there."""

    true: float = NOW
    offset: float = 0.0
    boottime: float = 1000.0
    boot_id: str = "boot-1"

    @property
    def wall(self) -> float:
        return self.true + self.offset

    @wall.setter
    def wall(self, value: float) -> None:
        self.offset = value - self.true

    def read(self) -> Reading:
        return Reading(self.wall, self.boottime, self.boot_id)

    def advance(self, seconds: float) -> None:
        """Time passes: for the server, the wall clock and the boot clock alike."""
        self.true += seconds
        self.boottime += seconds

    def reboot(self) -> None:
        self.boottime = 10.0
        self.boot_id += "+"


class FakeEntropy:
    def __init__(self) -> None:
        self.count = itertools.count()

    def random(self) -> float:
        return 0.5

    def nonce(self) -> str:
        return f"nonce-{next(self.count):04d}-" + "x" * 32


Reply = Callable[[str, dict], Answer]


@dataclass
class FakeServer:
    """The licensing server's answers, made in process and signed with its own key. By default honest:
    a document for the number, host, nonce and installation asked about, with a new token each time.
    `on[path]` replaces the answer for one path with any function of (path, body)."""

    key: SigningKey = field(default_factory=SigningKey.generate)
    clock: FakeClock = field(default_factory=FakeClock)
    products: list[dict] = field(default_factory=lambda: [product(11, "MikoPBX", trial=False, expires=None)])
    ttl: float = TTL
    on: dict[str, Reply] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    trial_number: str = NUMBER

    @property
    def keys(self) -> dict:
        return {key_id(bytes(self.key.verify_key)): self.key.verify_key}

    def claims(self, body: dict, **changes: Any) -> dict:
        installation = body.get("installation") or {}
        claims = {"iss": "fake", "registration_number": body.get("registration_number", self.trial_number),
                  "license_id": "lic-fake", "owner": {"companyname": "Example LLC", "contact": "Ann Admin",
                                                      "email": "admin@example.com", "tel": ""},
                  "binding": {"components": body["host"]["components"]}, "nonce": body.get("nonce"),
                  "install_id": installation.get("id"), "token": secrets.token_urlsafe(16),
                  "iat": int(self.clock.true), "exp": int(self.clock.true + self.ttl), "products": self.products}
        claims.update(changes)
        return claims

    def document(self, body: dict, **changes: Any) -> str:
        return sign(self.claims(body, **changes), self.key, DOCUMENT_TYPE)

    def refusal(self, code: int, body: dict, signed: bool = True, **changes: Any) -> ServerRefused:
        claims = {"registration_number": body.get("registration_number"), "code": code,
                  "message": protocol.SERVER_TEXT[code], "nonce": body.get("nonce"), "iat": int(self.clock.true),
                  "install_id": (body.get("installation") or {}).get("id"), **changes}
        token = sign(claims, self.key, REFUSAL_TYPE) if signed else None
        return ServerRefused(code, protocol.explain(code, claims["message"]), token)

    def call(self, path: str, body: dict | None = None, method: str = "POST") -> Answer:
        self.calls.append((path, body or {}))
        if path in self.on:
            return self.on[path](path, body or {})
        if path in (protocol.RELEASE, protocol.RELEASE_FEATURE):
            return Answer({"released": True}, None)
        if path == protocol.METRICS:
            return Answer({"accepted": True}, None)
        answer: dict[str, Any] = {"document": self.document(body or {})}
        if path == protocol.TRIAL:
            answer["registration_number"] = self.trial_number
        if path == protocol.CAPTURE:
            answer["session"] = f"session-{body['feature']}-{len(self.calls)}"
        return Answer(answer, None)

    def ping(self) -> Answer:
        return Answer({"ok": True, "server_time": "2027-01-15T00:00:00+00:00"}, None)

    def close(self) -> None:
        pass

    def paths(self) -> list[str]:
        return [p for p, _ in self.calls]


def product(pid: int, name: str, *, trial: bool, expires: str | None, feature: int | None = None) -> dict:
    return {"id": pid, "name": name, "trial": trial, "expires": expires,
            "features": [{"id": feature or (33 if pid == 11 else pid), "name": name, "count": 1, "counteach": 0,
                          "captured": 1}]}


def unreachable(message: str = "connection refused by the licensing server") -> Reply:
    def reply(path: str, body: dict) -> Answer:
        raise ServerUnreachable(message)
    return reply


def raising(error: Callable[[dict], Exception]) -> Reply:
    def reply(path: str, body: dict) -> Answer:
        raise error(body)
    return reply


@dataclass
class Box:
    """One in-process agent on a temporary state directory, with its fakes at hand."""

    agent: Agent
    clock: FakeClock
    server: FakeServer
    state_dir: Path

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(coroutine)

    def restart(self, hardware: Hardware = HOST) -> Box:
        """A new agent on the same state directory, as after a restart of the daemon."""
        return make_box(self.state_dir, self.clock, self.server, hardware)


def make_box(state_dir: Path, clock: FakeClock | None = None, server: FakeServer | None = None,
             hardware: Hardware = HOST, policy: Policy = Policy.of(6 * 3600, 0.1, 6 * 3600)) -> Box:
    clock = clock or FakeClock()
    server = server or FakeServer(clock=clock)
    store = Store(state_dir)
    config = Config(storage=StorageSection(state_dir), source="test.toml")
    setup = Setup(config, server.keys, server, policy, hardware, components(hardware))
    agent = Agent(setup, store, clock, FakeEntropy(), Installation(store.installation_key()))
    return Box(agent, clock, server, state_dir)
