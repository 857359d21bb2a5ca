"""A licensing server that misbehaves on demand, and the daemon-side checks fault tests share.

Fault tests need answers no honest server gives (truncated, huge, forged, never sent) and TLS
certificates that must fail, so this server speaks raw HTTP/1.1 over asyncio in a thread on 127.0.0.1,
counts every request per path, and by default acts as a minimal licensing server whose documents verify.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentproc import AgentProcess, box_agent
from mikolicd import fingerprint, protocol
from mikolicd.devpki import make_pki
from mikolicd.refserver.signing import Signer, ensure_key
from mikolicd.installation import Installation
from mikolicd.lifecycle import Validation
from mikolicd.store import State, Store
from mikolicd.trust import Outcome

DAY = 86400
TTL = 14 * DAY
NUMBER = "MIKO-FAULT-TESTS-AAAAA-00001"
RETRY_MAX_DELAY = 1.0
LICENSE_PATHS = (protocol.ACTIVATION, protocol.VALIDATION)
TLS_MODES = ("good", "self_signed", "other_name", "expired", "unknown_ca")


# ---------------------------------------------------------------------- documents
def license_claims(number: str, components: dict, iat: float, exp: float, nonce: str | None = None,
                   install_id: str | None = None) -> dict:
    """Claims as the licensing server writes them: MikoPBX with its seat feature 33, termless, answering the
    request whose nonce and installation are given."""
    return {"iss": "badserver", "registration_number": number, "license_id": "lic-fault", "owner": {},
            "binding": {"components": components}, "iat": int(iat), "exp": int(exp), "nonce": nonce,
            "install_id": install_id, "token": secrets.token_urlsafe(16),
            "products": [{"id": 11, "name": "MikoPBX", "trial": False, "expires": None,
                          "features": [{"id": 33, "name": "MikoPBX", "count": 1, "counteach": 0, "captured": 1}]}]}


def host_components(hw_root: Path) -> dict:
    """What the daemon on this fake host sends as `host.components`."""
    return fingerprint.components(fingerprint.collect(hw_root, ""))


# ---------------------------------------------------------------------- TLS material
def _certificate(host: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
                 start: dt.datetime, end: dt.datetime, ca: bool = False) -> x509.Certificate:
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
               .issuer_name(issuer[0]).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def _pem_pair(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def make_tls(directory: Path) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """A CA for the agent's `ca_file`, and a certificate per TLS mode; only "good" should verify."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fault-test CA")])
    # Valid from a month back, so a daemon whose clock is days behind still reaches the server.
    ca = _certificate("fault-test CA", ca_key, (ca_name, ca_key), now - dt.timedelta(days=31),
                      now + dt.timedelta(days=30), ca=True)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pairs: dict[str, tuple[Path, Path]] = {}
    valid = (now - dt.timedelta(days=30), now + dt.timedelta(days=30))
    for mode, host, span in (("good", "127.0.0.1", valid), ("other_name", "licensing.example.com", valid),
                             ("expired", "127.0.0.1", (now - dt.timedelta(days=30), now - dt.timedelta(days=1)))):
        key = ec.generate_private_key(ec.SECP256R1())
        pairs[mode] = _pem_pair(directory, mode, _certificate(host, key, (ca_name, ca_key), *span), key)
    own = ec.generate_private_key(ec.SECP256R1())
    own_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    pairs["self_signed"] = _pem_pair(directory, "self_signed", _certificate("127.0.0.1", own, (own_name, own), *valid),
                                     own)
    foreign = make_pki(directory / "foreign")  # a sound chain from a CA nobody configured: an interceptor's
    pairs["unknown_ca"] = (foreign.cert, foreign.key)
    return ca_path, pairs


# ---------------------------------------------------------------------- behaviours
@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    reader: asyncio.StreamReader

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    async def gone(self) -> None:
        """Returns when the client closes the connection."""
        await self.reader.read()


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Fault", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Reply:
    """A canned answer; `length` above the body's size announces bytes that never come (truncation)."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        headers = {"Date": formatdate(usegmt=True), "Content-Type": self.content_type,
                   "Content-Length": str(self.length if self.length is not None else len(self.body)), **self.headers}
        writer.write(_head(self.status, headers) + self.body)
        await writer.drain()


@dataclass(frozen=True)
class Hang:
    """Reads the request and never answers."""

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        await request.gone()


@dataclass(frozen=True)
class Huge:
    """A JSON-looking body far over any sane size: the client must stop reading at its own cap."""

    size: int = 8 * 1024 * 1024

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"Content-Type": "application/json", "Content-Length": str(self.size)}))
        chunk = b" " * (self.size // 4)  # few writes, so a client that hangs up early causes little noise
        for _ in range(4):
            writer.write(chunk)
            await writer.drain()


@dataclass(frozen=True)
class Issue:
    """Answer like a licensing server: a document for the requesting number and host.

    `claims` may alter the claims and `sign` replace the signing, which is how forgeries are made;
    `date=False` leaves out the Date header, so the answer vouches for no clock.
    """

    signer: Signer
    claims: Callable[[dict], dict] = lambda claims: claims
    sign: Callable[[dict], str] | None = None
    date: bool = True

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        asked = request.json()
        now = time.time()
        claims = self.claims(license_claims(asked["registration_number"], asked["host"]["components"], now, now + TTL,
                                            asked.get("nonce"), (asked.get("installation") or {}).get("id")))
        body = json.dumps({"document": (self.sign or self.signer.sign)(claims)}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if self.date:
            headers["Date"] = formatdate(usegmt=True)
        writer.write(_head(200, headers) + body)
        await writer.drain()


Behaviour = Reply | Hang | Huge | Issue


# ---------------------------------------------------------------------- the server
class BadServer:
    """HTTPS on 127.0.0.1 in a background thread; tests set `tls` and per-path behaviours and read `hits`."""

    def __init__(self, directory: Path):
        self.signer = ensure_key(directory / "signing-key.pem", directory / "trusted_keys.pem")
        self.trusted_keys = directory / "trusted_keys.pem"
        self.ca, pairs = make_tls(directory / "tls")
        self.contexts = {mode: self._context(*pairs[mode]) for mode in TLS_MODES}
        self.tls = "good"
        self.behaviours: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="badserver", daemon=True)
        self.port = 0
        self.reset()

    def _context(self, cert: Path, key: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def _choose_certificate(self, conn: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        conn.context = self.contexts[self.tls]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Back to an honest server with a trusted certificate."""
        self.tls = "good"
        self.behaviours = {path: Issue(self.signer) for path in LICENSE_PATHS}

    def on(self, path: str, behaviour: Behaviour) -> None:
        self.behaviours[path] = behaviour

    def start(self) -> BadServer:
        entry = self.contexts["good"]
        entry.sni_callback = self._choose_certificate  # picks the certificate of the current mode per handshake
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=entry), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            _method, target, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Request(target.split("?", 1)[0], body, reader)
            self.hits[request.path] += 1
            behaviour = self.behaviours.get(request.path, Reply(404, b'{"error": {"code": null}}'))
            await behaviour.respond(request, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client gave up or the handshake failed: exactly what some tests provoke
        finally:
            writer.close()


# ---------------------------------------------------------------------- dead ends below HTTP
@contextmanager
def stalled_listener(accepting: bool) -> Iterator[str]:
    """A URL whose server never gets past TCP: with `accepting` the kernel completes the handshake and
    nothing answers; without it the backlog is full, so the connect itself never completes."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8 if accepting else 0)
        port = listener.getsockname()[1]
        for _ in range(0 if accepting else 2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield f"https://127.0.0.1:{port}"
    finally:
        for sock in (*fillers, listener):
            sock.close()


def seed_state(state_dir: Path, signer: Signer, hw_root: Path, number: str, *, iat: float, exp: float) -> str:
    """Write the state a daemon would have kept after a good validation at `iat`; returns the document."""
    store = Store(state_dir)
    installation = Installation(store.installation_key())
    document = signer.sign(license_claims(number, host_components(hw_root), iat, exp, "seeded", installation.id))
    store.save(State(number, document, Validation(iat, Outcome.OK)))
    return document


def fault_agent(base: Path, name: str, server: BadServer, url: str | None = None, seed: int = 7) -> AgentProcess:
    """A daemon on fake host `seed` trusting `server`'s keys and CA: 1 s timeouts, retries capped at 1 s."""
    return box_agent(base, server, seed, name, url, timeout="1s",
                     schedule=f'check_interval = "1h"\nretry_max_delay = "{RETRY_MAX_DELAY:.0f}s"')


# ---------------------------------------------------------------------- the daemon's side
def stored_state(agent: AgentProcess) -> dict:
    return json.loads((agent.state / "state.json").read_text())


def stored_document(agent: AgentProcess) -> str:
    return stored_state(agent)["document"]


def validate(agent: AgentProcess) -> dict:
    """POST /v1/validation: it answers the new status whatever the server did."""
    code, status = agent.call("POST", "/v1/validation")
    assert code == 200, status
    return status


def assert_kept_in_grace(agent: AgentProcess, status: dict, document: str, message: str,
                         outcome: str = "unreachable") -> None:
    """The contract for every fault short of a refusal: grace, same document, seat still usable, told why.
    `outcome`: no answer (unreachable), or an answer that cannot count (unconfirmed)."""
    assert status["state"] == "grace", status
    assert status["last_validation"]["outcome"] == outcome
    assert message in status["last_validation"]["message"] and message in status["reason"]
    assert stored_document(agent) == document
    assert agent.call("GET", "/v1/features/33")[1]["available"] is True
