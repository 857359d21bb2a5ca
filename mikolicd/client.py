"""HTTPS to the licensing server: timeouts on every call, retries only where retrying can help.

The transport is urllib3, the connection pool under `requests`: a JSON-only client needs none of what
requests adds on top (charset detection, cookies, sessions), and leaving it out keeps about 5 MiB off
the daemon's resident memory (docs/performance.md). Retries follow the one pure `schedule.Policy` in a
plain loop (a retry library cost 0.4 MiB); `sleep` and `rand` are parameters, so tests of retries never
wait.
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple, TYPE_CHECKING

from . import __version__, protocol
from .config import ServerSection
from .errors import ServerRefused, ServerUnreachable
from .protocol import clean_text
from .schedule import Policy

if TYPE_CHECKING:  # urllib3 (with email) loads at the first server call: 3.4 MiB and 24 ms of start-up
    import urllib3

MAX_BODY = 1024 * 1024
MAX_RETRY_AFTER = 3600.0
# OpenSSL verify results (X509_V_ERR_*), as ssl.SSLCertVerificationError.verify_code carries them.
UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})  # nobody we trust signed it: what TLS interception causes
CERT_NOT_YET_VALID, CERT_EXPIRED = 9, 10
NAME_MISMATCH = frozenset({62, 64})  # host name, IP address
_HASHED = re.compile(r"[0-9a-f]{8}\.[0-9]+")  # c_rehash's names: subject hash and a sequence number


class Answer(NamedTuple):
    body: dict
    server_date: float | None  # the unsigned Date header: for diagnostics only, never for trust


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def tls_hint(verify_code: int | None) -> str:
    """What an OpenSSL certificate verify result means for the admin; shared with `mikolicctl doctor`."""
    if verify_code in UNKNOWN_ISSUER:
        return ("the server's TLS certificate is not trusted; if a proxy or firewall inspects HTTPS (TLS "
                "interception is likely), add its CA certificate as [server] ca_file")
    if verify_code in NAME_MISMATCH:
        return "the server's TLS certificate is for another name: check [server] url"
    if verify_code == CERT_EXPIRED:
        return "the server's TLS certificate has expired, or this host's clock is wrong"
    if verify_code == CERT_NOT_YET_VALID:
        return "the server's TLS certificate is not valid yet: this host's clock is probably wrong"
    return "the server's TLS certificate does not verify"


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` among those urllib3 wraps around the socket's own error."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        stack += [x for x in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
                  if isinstance(x, BaseException)]
    return None


def describe_transport(exc: BaseException) -> str:
    """Classified by exception type and TLS verify code, never by the wording of an error message."""
    import urllib3
    errors = urllib3.exceptions
    verify = _cause(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        return f"TLS verification failed: {tls_hint(getattr(verify, 'verify_code', None))}"
    if _cause(exc, ssl.SSLError) is not None:
        return f"TLS handshake failed: {clean_text(str(exc), 200)}"
    if _cause(exc, errors.ProxyError) is not None:
        return f"proxy error: {clean_text(str(exc), 200)}"
    if _cause(exc, socket.gaierror) is not None:
        return "the licensing server's name does not resolve (DNS)"
    if _cause(exc, ConnectionRefusedError) is not None:
        return "connection refused by the licensing server"
    timeout = _cause(exc, errors.ConnectTimeoutError)
    if timeout is not None and not isinstance(timeout, errors.NewConnectionError):  # a subclass, for history's sake
        return "connection to the licensing server timed out"
    if _cause(exc, errors.ReadTimeoutError) is not None:
        return "the licensing server did not answer in time"
    return f"cannot reach the licensing server: {clean_text(str(exc), 200)}"


def _system_ca_dir() -> str | None:
    """OpenSSL's hashed directory of the system's CAs, when it has one and no CA file is forced by
    SSL_CERT_FILE: a chain then loads the one or two certificates it needs, where the bundle would load
    all of them (1.3 MiB for Debian's 144, docs/performance.md). Elsewhere, OpenSSL's defaults."""
    paths = ssl.get_default_verify_paths()
    if not paths.capath or os.environ.get(paths.openssl_cafile_env):
        return None
    try:
        hashed = any(_HASHED.fullmatch(name) for name in os.listdir(paths.capath))
    except OSError:  # unreadable: OpenSSL's defaults, which skip it too
        return None
    return paths.capath if hashed else None


def tls_context(server: ServerSection) -> ssl.SSLContext:
    """The daemon's trust, shared so diagnostics judge the server exactly as the daemon does."""
    context = ssl.create_default_context(capath=_system_ca_dir())
    if server.ca_file:
        context.load_verify_locations(cafile=str(server.ca_file))
    return context


def check_ca_file(server: ServerSection) -> None:
    """Refuse an unreadable [server] ca_file at start-up, without the cost of loading the system CAs."""
    if server.ca_file:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(server.ca_file))


class LicensingClient:
    """One server's HTTPS client. Raises ServerRefused for a business answer, ServerUnreachable otherwise."""

    def __init__(self, server: ServerSection, policy: Policy, *, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random):
        self.server = server
        self.policy = policy
        self.sleep = sleep
        self.rand = rand
        self._pool: urllib3.PoolManager | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        """Built at the first call: loading the system CA store takes longer than the rest of start-up."""
        if self._pool is None:
            import urllib3
            server = self.server
            headers = {"User-Agent": f"mikolicd/{__version__}", "Content-Type": "application/json"}
            timeout = urllib3.Timeout(connect=server.timeout, read=server.timeout)
            options = dict(ssl_context=tls_context(server), headers=headers, timeout=timeout, retries=False,
                           maxsize=2)
            self._pool = (urllib3.ProxyManager(server.proxy, **options) if server.proxy  # type: ignore[arg-type]
                          else urllib3.PoolManager(**options))  # type: ignore[arg-type]
        return self._pool

    def _once(self, method: str, path: str, body: dict | None) -> Answer:
        import urllib3
        try:
            response = self.pool.request(method, self.server.url + path, preload_content=False, redirect=False,
                                         body=json.dumps(body).encode() if body is not None else None)
        except urllib3.exceptions.HTTPError as exc:
            raise ServerUnreachable(describe_transport(exc)) from None
        try:
            raw = response.read(MAX_BODY + 1, decode_content=True)
        except Exception as exc:  # protocol, decode and socket errors alike: the answer is unusable
            response.close()
            raise ServerUnreachable(f"the licensing server's answer broke off: {clean_text(str(exc), 120)}") from None
        if len(raw) > MAX_BODY:
            response.close()  # unread bytes: the connection cannot carry another request
            raise ServerUnreachable("licensing server's answer is larger than 1 MiB")
        response.release_conn()
        return classify(response.status, response.headers, raw)

    def call(self, path: str, body: dict | None = None, method: str = "POST") -> Answer:
        """Tries again only when no usable answer came, as the policy says."""
        attempt = 1
        while True:
            try:
                return self._once(method, path, body)
            except ServerUnreachable as exc:
                if self.policy.gives_up(attempt, exc.retry_after):
                    raise
                self.sleep(self.policy.attempt_delay(attempt, self.rand(), exc.retry_after))
            attempt += 1

    def ping(self) -> Answer:
        return self._once("GET", protocol.PING, None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()


def classify(status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
    """A whole HTTP answer: a usable body, a refusal with a code, or no usable answer at all."""
    if status == 429 or status >= 500:
        raise ServerUnreachable(f"licensing server busy or failing (HTTP {status})",
                                retry_after(headers.get("Retry-After"), time.time()))
    if 300 <= status < 400:
        raise ServerUnreachable(f"licensing server answered a redirect (HTTP {status}) that is not followed")
    content_type = headers.get("Content-Type", "")
    if "json" not in content_type:
        raise ServerUnreachable(f"licensing server answered {clean_text(content_type, 60)!r}, not JSON")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ServerUnreachable("licensing server's answer is not valid JSON") from None
    if not isinstance(data, dict):
        raise ServerUnreachable("licensing server's answer is not a JSON object")
    if status >= 400:
        raise _refusal(status, data.get("error"))
    from email.utils import parsedate_to_datetime
    try:
        date = parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        date = None
    return Answer(data, date)


def _refusal(status: int, error: object) -> ServerRefused | ServerUnreachable:
    """A business code is a refusal; a 400 naming a field is the server refusing that input; anything else
    (a proxy's 403 page, say) says nothing about the license."""
    if isinstance(error, dict):
        message = clean_text(str(error.get("message", "")))
        code, field = error.get("code"), error.get("field")
        if isinstance(code, int) and not isinstance(code, bool):
            refusal = error.get("refusal")
            return ServerRefused(code, protocol.explain(code, message), refusal if isinstance(refusal, str) else None)
        if status == 400 and code is None and isinstance(field, str):
            name = clean_text(field, 40)
            return ServerRefused(None, f"the licensing server refused the field {name!r}: {message}")
    return ServerUnreachable(f"licensing server refused the request (HTTP {status}) without an error code")
