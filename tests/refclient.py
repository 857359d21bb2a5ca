"""Boxes as the reference server sees them: made-up hardware, an installation's key pair and the token it
holds, talking the licensing protocol over real HTTPS (from any loopback address), or in process.

The fixtures at the end are imported by the reference server's test modules."""
from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from nacl.signing import SigningKey

from mikolicd.fingerprint import keyed_hash
from mikolicd.jws import b64url_decode, b64url_encode, sign
from mikolicd.refserver.db import Database
from mikolicd.installation import install_id
from mikolicd.refserver.fields import Caller, Installation
from mikolicd.refserver.licensing import Licensing
from mikolicd.refserver.signing import Signer
from mikolicd.license import OFFLINE_REQUEST_TYPE, RELEASE_RECEIPT_TYPE

if TYPE_CHECKING:
    from conftest import RefServer

Answer = tuple[int, dict]
TIMEOUT = 10.0
HOST_PARTS = ("system_uuid", "system_serial", "board_serial", "nic", "machine_id")


def new_host(seed: str | None = None, *, changed: tuple[str, ...] = ()) -> dict:
    """A host description of made-up hardware; `changed` names the parts replaced since."""
    seed = seed or uuid.uuid4().hex
    part = {name: keyed_hash(f"{seed}/{name}" + ("/replaced" if name in changed else "")) for name in HOST_PARTS}
    return {"components": {**part, "nic": [part["nic"]]}}


def trial_form(email: str | None = None, company: str = "Example LLC") -> dict:
    return {"companyname": company, "email": email or f"{uuid.uuid4().hex}@example.test", "contact": "Ann Admin",
            "tel": "+7 495 000-00-00", "inn": "7701234567"}


def new_nonce() -> str:
    return b64url_encode(os.urandom(32))


def guess_numbers(connection: Connection, until: float, tally: Counter) -> None:
    """A client guessing registration numbers as fast as it can, counting the answers by status."""
    box = Box(connection)
    while time.monotonic() < until:
        status, _answer = box.call("validation", registration_number=f"MIKO-{uuid.uuid4().hex[:5].upper()}-AAAAA-"
                                                                       "BBBBB-CCCCC")
        tally[status] += 1


def claims_of(token: str) -> dict:
    """The claims of a JWS, unverified: tests verify with the trusted keys where that is the point."""
    return json.loads(b64url_decode(token.split(".")[1]))


@dataclass
class Agent:
    """One installation: its key pair and the token of the last document it kept."""

    key: SigningKey = field(default_factory=SigningKey.generate)
    token: str | None = None

    @property
    def public(self) -> str:
        return b64url_encode(bytes(self.key.verify_key))

    @property
    def id(self) -> str:
        return install_id(bytes(self.key.verify_key))

    def field(self) -> dict:
        return {"id": self.id, "key": self.public, "token": self.token}

    def installation(self) -> Installation:
        return Installation(self.id, self.public, self.token)

    def copy(self) -> Agent:
        """A copied state directory: the same key and token, living on independently."""
        return replace(self)

    def offline_request(self, number: str, host: dict, nonce: str, claimed_id: str | None = None) -> str:
        """Signed by this installation's key; `claimed_id` names another installation instead of its own."""
        return sign({"registration_number": number, "host": host, "nonce": nonce, "iat": int(time.time()),
                     "install_id": claimed_id or self.id, "description": "pbx in the basement"}, self.key,
                    OFFLINE_REQUEST_TYPE, embed_key=True)

    def receipt(self, number: str, nonce: str | None = None) -> str:
        return sign({"registration_number": number, "install_id": self.id, "nonce": nonce or new_nonce(),
                     "iat": int(time.time())}, self.key, RELEASE_RECEIPT_TYPE, embed_key=True)


class Connection:
    """HTTPS to the server from a chosen loopback source address, kept alive between calls."""

    def __init__(self, port: int, ca: Path, source: str = "127.0.0.1") -> None:
        self.port, self.source = port, source
        self.context = ssl.create_default_context(cafile=str(ca))
        self.conn: http.client.HTTPSConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, dict]:
        """(status, headers, JSON body); one reconnect if the kept-alive connection was closed."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=TIMEOUT,
                                                        context=self.context, source_address=(self.source, 0))
            try:
                self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = self.conn.getresponse()
                return response.status, dict(response.headers), json.loads(response.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(self, name: str, body: object) -> tuple[int, dict, dict]:
        return self.request("POST", f"/api/v1/{name}", json.dumps(body).encode())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Box:
    """An installation on a host, calling the server as the agent does: a new nonce for every request, and
    the token of every document it receives kept for the next one (unless told to lose it)."""

    connection: Connection
    host: dict = field(default_factory=new_host)
    agent: Agent = field(default_factory=Agent)
    nonce: str = ""

    def body(self, **fields: object) -> dict:
        self.nonce = new_nonce()
        return {"host": self.host, "nonce": self.nonce, "installation": self.agent.field(), **fields}

    def call(self, name: str, *, keep: bool = True, **fields: object) -> Answer:
        status, _, answer = self.connection.post(name, self.body(**fields))
        if keep and "document" in answer:
            self.agent.token = claims_of(answer["document"])["token"]
        return status, answer

    def clone(self, host: dict | None = None) -> Box:
        """The same installation copied, on this host or another."""
        return Box(self.connection, host or self.host, self.agent.copy())


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def in_process(directory: Path, clock: FakeClock, **options: int) -> Licensing:
    """A `Licensing` on a fresh database, its clock in the test's hands."""
    return Licensing(Database(directory / "licenses.db", create=True), Signer(SigningKey.generate()),
                     options.pop("document_ttl", 14 * 86400), clock=clock, **options)


def caller(agent: Agent, host: dict) -> Caller:
    return Caller(host["components"], new_nonce(), agent.installation())


def activated(server: RefServer, box: Box, *issue_args: str) -> str:
    """A new number, activated by `box`."""
    number = server.issue(*issue_args)
    status, answer = box.call("activation", registration_number=number)
    assert status == 200, answer
    return number


@pytest.fixture(scope="module")
def connection(refserver: RefServer) -> Iterator[Connection]:
    conn = Connection(refserver.port, refserver.ca)
    yield conn
    conn.close()


@pytest.fixture
def box(connection: Connection) -> Box:
    return Box(connection)


@pytest.fixture
def other(connection: Connection) -> Box:
    """A second box, on other hardware."""
    return Box(connection)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def licensing(tmp_path: Path, clock: FakeClock) -> Iterator[Licensing]:
    made = in_process(tmp_path, clock)
    yield made
    made.db.close()
