"""`mikolicctl doctor`: the checks support asks for when licensing fails.

Each check ends in a verdict an admin can read aloud on the phone and a fix to try. Probes (`probe_*`) do
the I/O and hand back what they found, errors included; judges (`judge_*`) are pure, so every verdict can
be shown with plain values. Network checks form a chain: once one fails, the later ones are not run,
because their failures would only repeat the first one.
"""
from __future__ import annotations

import datetime as dt
import grp
import os
import socket
import ssl
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import fingerprint, protocol
from .agentclient import DEFAULT_SOCKET, AgentUnreachable, call
from .client import Answer, CERT_EXPIRED, LicensingClient, NAME_MISMATCH, UNKNOWN_ISSUER, check_ca_file, tls_context
from .config import DEFAULT_PATH, ApiSection, Config, ConfigError, ServerSection, load
from .errors import ServerRefused, ServerUnreachable
from .jws import load_trusted_keys
from .schedule import Policy

TIMEOUT_CAP = 10.0
CLOCK_TOLERANCE = 300.0
MIN_STRONG = 2  # fewer strong ids and the binding degrades (docs/fingerprint.md)
# OpenSSL verify results meaning "nobody we trust signed this": what a TLS-inspecting proxy causes.
PROXY_ENV = ("https_proxy", "HTTPS_PROXY")
NETWORK = ("dns", "tcp", "tls", "http_ping", "clock")
CHECKS = ("config", "state_dir", "socket", "fingerprint", "proxy", *NETWORK, "last_validation")
_DEFAULT_PORTS = {"https": 443, "http": 80, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True)
class Check:
    """One verdict. `ok` is None when the check could not run here: shown, but not a failure."""

    name: str
    ok: bool | None
    verdict: str
    fix: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return {True: "pass", False: "fail", None: "skip"}[self.ok]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status, "verdict": self.verdict,
                "fix": self.fix, "detail": self.detail}


def skipped(name: str, why: str) -> Check:
    return Check(name, None, f"not checked: {why}")


def passed(checks: list[Check]) -> bool:
    return all(c.ok is not False for c in checks)


def human(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        fix = f" — fix: {c.fix}" if c.fix and c.ok is False else ""
        lines.append(f"{c.status.upper():<4} {c.name:<15} {c.verdict}{fix}")
    failed = sum(c.ok is False for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)


def redact(url: str) -> str:
    """Proxy URLs may carry a password; the report is meant to be pasted into a support ticket."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}").geturl()


@dataclass(frozen=True)
class Hop:
    """Where the daemon's TCP connection goes first: the server, or the proxy when one is configured."""

    role: str
    host: str
    port: int

    @property
    def where(self) -> str:
        return f"the {self.role} {self.host}:{self.port}"


def first_hop(server: ServerSection) -> Hop:
    if server.proxy:
        parts = urlsplit(server.proxy)
        return Hop("proxy", parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme])
    parts = urlsplit(server.url)
    return Hop("licensing server", parts.hostname or "", parts.port or 443)


# ---------------------------------------------------------------------------------------------- local


@dataclass(frozen=True)
class Located:
    """Which configuration to check and why: the admin's --config, the one the running agent names, or the
    default path. `path` None: the agent runs on its built-in defaults."""

    path: Path | None
    origin: str
    agent: AgentFacts | None = None


@dataclass(frozen=True)
class AgentFacts:
    """What the agent on a socket answered: its health and status, or why nothing answered."""

    sock: Path
    health: dict[str, Any] = field(default_factory=dict)
    status: tuple[int, Any] | None = None
    error: AgentUnreachable | None = None


def probe_agent(sock: Path, timeout: float) -> AgentFacts:
    try:
        code, health = call(sock, "GET", "/v1/health", timeout=timeout)
        return AgentFacts(sock, health if code == 200 else {}, call(sock, "GET", "/v1/status", timeout=timeout))
    except AgentUnreachable as exc:
        return AgentFacts(sock, error=exc)


def locate(config_path: Path | None, sock: Path | None) -> Located:
    """Without --config, ask the agent which file it runs with, so the `mikolicd dev` setup and any other
    non-default one are checked as they run."""
    if config_path is not None:
        return Located(config_path, "given with --config")
    agent = probe_agent(sock or DEFAULT_SOCKET, TIMEOUT_CAP)
    if "config" in agent.health:
        named = agent.health["config"]
        builtin = not named or named == Config().source  # an agent started without a file names no path
        return Located(None if builtin else Path(named), f"named by the agent on {agent.sock}", agent)
    return Located(DEFAULT_PATH, f"the default; no agent on {agent.sock} named another", agent)


@dataclass(frozen=True)
class FileProblem:
    verdict: str
    fix: str


def _unreadable(key: str, path: Path | None, exc: OSError, fix: str) -> FileProblem:
    if isinstance(exc, PermissionError):
        fix = "run mikolicctl doctor as root, which may read it"
    return FileProblem(f"[server] {key} {path}: {exc.strerror or exc}", fix)


def probe_server_files(server: ServerSection) -> list[FileProblem]:
    """With the daemon's own loaders: a file it would refuse at start-up fails here, for the same reason."""
    problems = []
    try:
        load_trusted_keys(server.trusted_keys)
    except OSError as exc:
        problems.append(_unreadable("trusted_keys", server.trusted_keys, exc, "install the licensing server's "
                                    "public key (PEM or JWKS) there, or point [server] trusted_keys at it"))
    except ValueError as exc:  # the loader's message names the file
        problems.append(FileProblem(f"[server] trusted_keys {exc}",
                                    "replace it with the licensing server's public key file as the vendor ships it"))
    try:
        check_ca_file(server)
    except OSError as exc:
        problems.append(_unreadable("ca_file", server.ca_file, exc, "point [server] ca_file at a PEM CA "
                                    "certificate, or set it to \"\" to trust the system CAs only"))
    return problems


def judge_config(config: Config, located: Located, problems: list[FileProblem]) -> Check:
    detail = {"path": str(located.path) if located.path else None, "origin": located.origin}
    if problems:
        return Check("config", False, f"{config.source}: the daemon refuses to start with "
                     f"{'; '.join(p.verdict for p in problems)}", "; ".join(p.fix for p in problems), detail)
    return Check("config", True, f"{config.source} ({located.origin}) is valid and its trusted keys load",
                 detail=detail)


def judge_unloadable(located: Located, error: ConfigError) -> Check:
    fix = "correct what the message names"
    if located.path == DEFAULT_PATH and located.agent is not None:
        fix += ("; if the agent runs with another file, pass --config FILE (for mikolicd dev: --config "
                "DIR/mikolicd.toml), or the --socket of the running agent, which names its file")
    return Check("config", False, str(error), fix, {"path": str(located.path), "origin": located.origin})


@dataclass(frozen=True)
class Modes:
    """Permission bits as found; mode None when nothing is at the path."""

    mode: int | None
    is_dir: bool = False
    files: dict[str, int] = field(default_factory=dict)
    error: str = ""


def probe_state_dir(path: Path) -> Modes:
    try:
        st = path.stat()
    except FileNotFoundError:
        return Modes(None)
    except OSError as exc:
        return Modes(None, error=exc.strerror or str(exc))
    if not stat.S_ISDIR(st.st_mode):
        return Modes(stat.S_IMODE(st.st_mode))
    try:
        files = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in sorted(path.iterdir()) if p.is_file()}
    except OSError as exc:
        return Modes(stat.S_IMODE(st.st_mode), True, error=exc.strerror or str(exc))
    return Modes(stat.S_IMODE(st.st_mode), True, files)


def judge_state_dir(path: Path, found: Modes) -> Check:
    if found.error:
        return Check("state_dir", None, f"cannot inspect {path}: {found.error}",
                     "run mikolicctl doctor as root to check it")
    if found.mode is None:
        return Check("state_dir", None, f"{path} does not exist yet; the agent creates it (0700) on its first save")
    if not found.is_dir:
        return Check("state_dir", False, f"{path} is not a directory",
                     "move it away, or point [storage] state_dir at a directory")
    problems = [f"{path} is {found.mode:04o}"] if found.mode & 0o077 else []
    problems += [f"{name} is {mode:04o}" for name, mode in found.files.items() if mode & 0o077]
    detail = {"mode": f"{found.mode:04o}", "files": {n: f"{m:04o}" for n, m in found.files.items()}}
    if problems:
        return Check("state_dir", False, f"others may read the license state: {', '.join(problems)}",
                     f"chmod 0700 {path} and chmod 0600 the files in it", detail)
    return Check("state_dir", True, f"{path} is {found.mode:04o} and its {len(found.files)} file(s) are private",
                 detail=detail)


@dataclass(frozen=True)
class SocketFacts:
    mode: int | None  # None: nothing at the path
    is_socket: bool = False
    group: str = ""
    usable: bool = False  # this user may connect
    error: str = ""


def probe_socket(path: Path) -> SocketFacts:
    try:
        st = path.stat()
    except FileNotFoundError:
        return SocketFacts(None)
    except OSError as exc:
        return SocketFacts(None, error=exc.strerror or str(exc))
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return SocketFacts(stat.S_IMODE(st.st_mode), stat.S_ISSOCK(st.st_mode), group,
                       os.access(path, os.R_OK | os.W_OK))


def judge_socket(path: Path, api: ApiSection, found: SocketFacts, agent: AgentFacts) -> Check:
    if found.error:
        return Check("socket", None, f"cannot inspect {path}: {found.error}", "run mikolicctl doctor as root")
    if found.mode is None:
        return Check("socket", False, f"no socket at {path}: the agent is not running, or [api] socket points "
                     "elsewhere", "systemctl start mikolicd.socket mikolicd.service, and check [api] socket")
    if not found.is_socket:
        return Check("socket", False, f"{path} is not a socket", "move it away and restart mikolicd")
    if agent.error is not None and agent.error.stale:
        return Check("socket", False, f"{path} is a stale socket: no agent accepts connections on it",
                     "start mikolicd (systemctl start mikolicd); it replaces the stale file")
    problems = []
    if found.mode != api.socket_mode:
        problems.append(f"mode {found.mode:04o} where [api] socket_mode is {api.socket_mode:04o}")
    if api.socket_group and found.group != api.socket_group:
        problems.append(f"group {found.group} where [api] socket_group is {api.socket_group}")
    if not found.usable:
        problems.append("this user may not connect to it")
    detail = {"mode": f"{found.mode:04o}", "group": found.group}
    if problems:
        return Check("socket", False, f"{path}: {'; '.join(problems)}",
                     "restart mikolicd so it sets mode and group again (under systemd: SocketMode= and "
                     "SocketGroup= in mikolicd.socket); to use it, run as root or join the socket's group", detail)
    if agent.error is not None:
        return Check("socket", False, str(agent.error), "", detail)
    return Check("socket", True, f"{path} is {found.mode:04o}, group {found.group}, and the agent answers",
                 detail=detail)


def judge_fingerprint(hw: fingerprint.Hardware) -> Check:
    strong = [n for n in fingerprint.STRONG if n in hw.values]
    missing = [f"{n} ({hw.missing.get(n, 'absent')})" for n in fingerprint.COMPONENTS if n not in hw.values]
    detail = {"present": [n for n in fingerprint.COMPONENTS if n in hw.values], "missing": dict(hw.missing)}
    verdict = (f"{len(strong)} of {len(fingerprint.STRONG)} strong host ids readable"
               f"{': ' + ', '.join(strong) if strong else ''}"
               f"{'; missing: ' + ', '.join(missing) if missing else ''}")
    if len(strong) < MIN_STRONG:
        return Check("fingerprint", False, verdict,
                     f"fewer than {MIN_STRONG} strong ids make the host binding fragile: make sure the root-only "
                     "hardware collection runs (mikolicd collect-hardware, [hardware] snapshot); on a virtual "
                     "machine give it a fixed system UUID and a disk serial", detail)
    return Check("fingerprint", True, verdict, detail=detail)


def judge_proxy(configured: str, environment: Mapping[str, str]) -> Check:
    """Informational: the daemon never reads the environment, and admins are often surprised by it."""
    env = next((environment[k] for k in PROXY_ENV if environment.get(k)), "")
    detail = {"configured": redact(configured), "environment": redact(env)}
    if configured:
        verdict = f"the agent connects through [server] proxy {redact(configured)}"
    else:
        verdict = "no [server] proxy: the agent connects directly"
    if env and env != configured:
        verdict += (f"; this shell's https_proxy {redact(env)} is ignored by the daemon, which never reads the "
                    "environment (set [server] proxy if the server is only reachable through it)")
    return Check("proxy", True, verdict, detail=detail)


# -------------------------------------------------------------------------------------------- network


def probe_dns(host: str, port: int, timeout: float) -> list[str] | OSError:
    """getaddrinfo cannot be cancelled, so it runs in a daemon thread that is abandoned if it hangs."""
    box: list[list[str] | OSError] = []

    def resolve() -> None:
        try:
            box.append(list(dict.fromkeys(info[4][0] for info in
                                          socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))))
        except OSError as exc:
            box.append(exc)

    worker = threading.Thread(target=resolve, name="doctor-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    return box[0] if box else TimeoutError(f"no answer within {timeout:g} s")


def judge_dns(hop: Hop, result: list[str] | OSError) -> Check:
    if isinstance(result, OSError):
        reason = result.strerror if isinstance(result, socket.gaierror) else str(result)
        return Check("dns", False, f"the {hop.role} name {hop.host} does not resolve: {reason}",
                     f"check the host name in [server] {'proxy' if hop.role == 'proxy' else 'url'} and this "
                     "host's DNS servers (resolvectl status, /etc/resolv.conf)")
    return Check("dns", True, f"{hop.host} resolves to {', '.join(result)}", detail={"addresses": result})


def probe_tcp(addresses: list[str], port: int, timeout: float) -> str | OSError:
    """Tries the resolved addresses in order, as a client would; returns the one that answered."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            socket.create_connection((address, port), timeout).close()
            return address
        except OSError as exc:
            error = exc
    return error


def judge_tcp(hop: Hop, result: str | OSError, environment_proxy: str) -> Check:
    if isinstance(result, str):
        return Check("tcp", True, f"connected to {hop.where} ({result})", detail={"address": result})
    hint = (f"; this shell uses https_proxy {redact(environment_proxy)}: if it is needed, set [server] proxy"
            if environment_proxy and hop.role != "proxy" else "")
    if isinstance(result, ConnectionRefusedError):
        return Check("tcp", False, f"connection to {hop.where} refused: nothing listens on that port, or a "
                     "firewall rejects it", f"check the port in [server] url and the firewall{hint}")
    if isinstance(result, TimeoutError):
        return Check("tcp", False, f"no answer from {hop.where}: a firewall drops the connection",
                     f"allow outgoing TCP to {hop.host}:{hop.port}{hint}")
    return Check("tcp", False, f"cannot connect to {hop.where}: {result.strerror or result}",
                 f"check this host's routes and firewall{hint}")


@dataclass(frozen=True)
class PresentedCertificate:
    """The server's certificate as presented, trusted or not."""

    subject: str
    issuer: str
    not_after: dt.datetime
    from_ca_file: bool  # signed by a CA in [server] ca_file


@dataclass(frozen=True)
class TlsFacts:
    peer: PresentedCertificate | None  # None: no handshake, or an untrusted certificate that cannot be decoded here
    error: str = ""  # empty: verified
    verify_code: int | None = None


def _name(rdns: tuple) -> str:
    """The common name out of the `ssl` module's (((key, value),),) form."""
    fields = dict(pair for rdn in rdns for pair in rdn)
    return fields.get("commonName") or ", ".join(f"{k}={v}" for k, v in fields.items())


def _verified_peer(cert: dict[str, Any]) -> PresentedCertificate:
    """From the `ssl` module's view of a verified certificate: no extra library needed."""
    not_after = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.timezone.utc)
    return PresentedCertificate(_name(cert.get("subject", ())), _name(cert.get("issuer", ())), not_after, False)


def _untrusted_peer(der: bytes, ca_file: Path | None) -> PresentedCertificate | None:
    """A certificate the handshake refused is only available as DER; decoding it needs `cryptography`, which
    the box need not have: without it the verdict names the verify error but not the issuer."""
    try:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None

    def common_name(name: x509.Name) -> str:
        cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(cn[0].value) if cn else name.rfc4514_string()

    def issued_by(ca: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            return False

    cert = x509.load_der_x509_certificate(der)
    try:
        cas = x509.load_pem_x509_certificates(ca_file.read_bytes()) if ca_file else []
    except (OSError, ValueError):
        cas = []  # the config check reports an unloadable ca_file
    return PresentedCertificate(common_name(cert.subject), common_name(cert.issuer), cert.not_valid_after_utc,
                                any(issued_by(ca) for ca in cas))


def _handshake(context: ssl.SSLContext, address: str, host: str, port: int, timeout: float) -> tuple[bytes, dict]:
    with socket.create_connection((address, port), timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True) or b"", tls.getpeercert() or {}


def probe_tls(server: ServerSection, address: str) -> TlsFacts:
    """On a verify failure, shakes hands once more without verifying, only to show who signed what we got."""
    parts = urlsplit(server.url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        context = tls_context(server)
    except (OSError, ValueError) as exc:
        return TlsFacts(None, f"cannot load [server] ca_file {server.ca_file}: {exc}")
    try:
        return TlsFacts(_verified_peer(_handshake(context, address, host, port, server.timeout)[1]))
    except ssl.SSLCertVerificationError as exc:
        error, code = exc.verify_message, exc.verify_code
    except OSError as exc:
        return TlsFacts(None, str(exc) or type(exc).__name__)
    blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    blind.check_hostname = False
    blind.verify_mode = ssl.CERT_NONE
    try:
        der = _handshake(blind, address, host, port, server.timeout)[0]
    except OSError as again:
        return TlsFacts(None, f"{error}; the certificate could not be fetched: {again}", code)
    return TlsFacts(_untrusted_peer(der, server.ca_file), error, code)


def judge_tls(host: str, found: TlsFacts, now: dt.datetime) -> Check:
    peer = found.peer
    if peer is None and found.verify_code is None:
        return Check("tls", False, f"TLS handshake with {host} failed: {found.error}",
                     "check that [server] url names an HTTPS port, and [server] ca_file")
    if peer is None:
        issuer, until, detail = "an issuer not shown here (python3-cryptography is not installed)", "?", {}
    else:
        issuer, until = f"\"{peer.issuer}\"", peer.not_after.date().isoformat()
        detail = {"subject": peer.subject, "issuer": peer.issuer, "not_after": peer.not_after.isoformat()}
    detail["verify_error"] = found.error
    if not found.error and peer is not None:
        days = (peer.not_after - now).days
        return Check("tls", True, f"certificate for {peer.subject} issued by {issuer}, valid until "
                     f"{until} ({days} days left), name {host} matches", detail=detail)
    if found.verify_code in UNKNOWN_ISSUER and not (peer and peer.from_ca_file):
        return Check("tls", False, f"the certificate for {host} is issued by {issuer}, which this host "
                     f"does not trust ({found.error}): TLS interception is likely",
                     "if a proxy or firewall inspects HTTPS, exempt the licensing server or add its CA "
                     "certificate as [server] ca_file; if not, someone is impersonating the server", detail)
    if found.verify_code == CERT_EXPIRED:
        return Check("tls", False, f"the certificate for {host} expired on {until} (issuer {issuer})",
                     "if this host's clock is right, the server's operator must renew the certificate", detail)
    if found.verify_code in NAME_MISMATCH:
        subject = peer.subject if peer else "another name"
        return Check("tls", False, f"the certificate is for {subject}, not {host} (issuer {issuer})",
                     "check the host name in [server] url", detail)
    return Check("tls", False, f"the certificate for {host} is not accepted: {found.error} "
                 f"(issuer {issuer}, valid until {until})",
                 "check [server] ca_file and the server's certificate chain", detail)


@dataclass(frozen=True)
class Ping:
    answer: Answer | None
    received: float  # local clock when the answer arrived
    error: str = ""


def probe_ping(server: ServerSection) -> Ping:
    """Through the daemon's own client, so proxy and trust are exactly the daemon's."""
    try:
        client = LicensingClient(server, Policy(3600, 0, 3600, attempts=1))
    except (OSError, ValueError) as exc:
        return Ping(None, time.time(), f"cannot set up the client: {exc}")
    try:
        answer = client.ping()
        return Ping(answer, time.time())
    except (ServerUnreachable, ServerRefused) as exc:
        return Ping(None, time.time(), exc.message)
    finally:
        client.close()


def judge_ping(url: str, ping: Ping) -> Check:
    where = f"GET {url}{protocol.PING}"
    if ping.answer is None:
        return Check("http_ping", False, f"{where} failed: {ping.error}",
                     "see the checks above; if they pass, the server or a proxy on the way is failing")
    if ping.answer.body.get("ok") is not True:
        return Check("http_ping", False, f"{where} answered without \"ok\": true: not a licensing server?",
                     "check [server] url")
    return Check("http_ping", True, f"{where} answered ok")


def _span(seconds: float) -> str:
    minutes = round(abs(seconds)) // 60
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{round(abs(seconds))} s"


def judge_clock(server_date: float | None, local: float) -> Check:
    if server_date is None:
        return Check("clock", None, "the server's answer had no Date header to compare with")
    offset = round(local - server_date)
    detail = {"offset_seconds": offset}
    relation = f"{_span(offset)} {'ahead of' if offset > 0 else 'behind'} the licensing server's clock"
    if abs(offset) > CLOCK_TOLERANCE:
        return Check("clock", False, f"this host's clock is {relation} (offset {offset:+d} s, more than "
                     f"{CLOCK_TOLERANCE / 60:g} min)",
                     "set the time and keep it set: enable NTP (timedatectl set-ntp true); licenses are dated, "
                     "so a wrong clock makes them look expired or not yet valid", detail)
    agrees = "agrees with the licensing server's" if offset == 0 else f"is {relation}"
    return Check("clock", True, f"this host's clock {agrees} (within {CLOCK_TOLERANCE / 60:g} min)", detail=detail)


def network(server: ServerSection, environment: Mapping[str, str]) -> list[Check]:
    hop = first_hop(server)
    env_proxy = next((environment[k] for k in PROXY_ENV if environment.get(k)), "")
    done: list[Check] = []

    def stopped() -> list[Check]:
        return done + [skipped(n, f"the {done[-1].name} check failed") for n in NETWORK[len(done):]]

    addresses = probe_dns(hop.host, hop.port, server.timeout)
    done.append(judge_dns(hop, addresses))
    if isinstance(addresses, OSError):
        return stopped()
    connected = probe_tcp(addresses, hop.port, server.timeout)
    done.append(judge_tcp(hop, connected, env_proxy))
    if isinstance(connected, OSError):
        return stopped()
    if server.proxy:
        done.append(skipped("tls", f"the agent reaches the server through the proxy {redact(server.proxy)}; the "
                            "HTTP ping below goes the same way and reports TLS errors"))
    else:
        done.append(judge_tls(urlsplit(server.url).hostname or "", probe_tls(server, connected),
                              dt.datetime.now(dt.timezone.utc)))
        if done[-1].ok is False:
            return stopped()
    ping = probe_ping(server)
    done.append(judge_ping(server.url, ping))
    if ping.answer is None:
        return stopped()
    done.append(judge_clock(ping.answer.server_date, ping.received))
    return done


# --------------------------------------------------------------------------------------------- agent


def judge_last_validation(agent: AgentFacts) -> Check:
    if agent.error is not None:
        cause = agent.error.cause
        if isinstance(cause, (FileNotFoundError, ConnectionRefusedError, PermissionError)):
            return skipped("last_validation", f"no last validation to show: {agent.error}")
        return Check("last_validation", False, str(agent.error), "journalctl -u mikolicd; systemctl restart mikolicd")
    code, body = agent.status or (0, {})
    if code != 200:
        return Check("last_validation", False, f"the agent answered HTTP {code}: {body.get('error', body)}",
                     "journalctl -u mikolicd")
    last = body.get("last_validation")
    if not last:
        return Check("last_validation", True, f"no validation has run on this host yet (state {body.get('state')})")
    detail = dict(last)
    if last.get("outcome") == "ok":
        return Check("last_validation", True, f"the last validation at {last.get('at')} succeeded", detail=detail)
    fix = ("the agent could not reach the server: the network checks above say why" if last.get("outcome") ==
           "unreachable" else "do what the server's message says; if unclear, send this report to Miko support")
    return Check("last_validation", False, f"the last validation at {last.get('at')} {last.get('outcome')}: "
                 f"{last.get('message') or 'no message'}", fix, detail)


@dataclass(frozen=True)
class Report:
    """The checks, and what they were run on: the support bundle shows that configuration and asks that agent."""

    checks: list[Check]
    config: Config | None  # None: it does not load
    sock: Path


def examine(config_path: Path | None = None, sock: Path | None = None) -> Report:
    """All checks, in the order support reads them. Without `config_path` the agent on `sock` (else the
    default socket) names its configuration; `sock` overrides `[api] socket`."""
    located = locate(config_path, sock)
    try:
        config = load(located.path) if located.path else Config()
    except ConfigError as exc:
        return Report([judge_unloadable(located, exc), *(skipped(n, "the configuration does not load")
                                                         for n in CHECKS[1:])], None, sock or DEFAULT_SOCKET)
    server = config.server._replace(timeout=min(config.server.timeout, TIMEOUT_CAP))
    sock = sock or (located.agent.sock if located.agent and not located.agent.error else config.api.socket)
    agent = located.agent if located.agent and located.agent.sock == sock else probe_agent(sock, server.timeout)
    hardware = config.hardware
    return Report([
        judge_config(config, located, probe_server_files(config.server)),
        judge_state_dir(config.storage.state_dir, probe_state_dir(config.storage.state_dir)),
        judge_socket(sock, config.api, probe_socket(sock), agent),
        judge_fingerprint(fingerprint.collect(hardware.root, hardware.dmidecode, hardware.snapshot)),
        judge_proxy(server.proxy, os.environ),
        *network(server, os.environ),
        judge_last_validation(agent),
    ], config, sock)


def run(config_path: Path | None = None, sock: Path | None = None) -> list[Check]:
    return examine(config_path, sock).checks
