"""HTTPS to the licensing server: timeouts on every call, retries only where retrying can help.

The transport is urllib3, the connection pool under `requests`: a JSON-only client needs none of what
requests adds on top (charset detection, cookies, sessions), and leaving it out keeps about 5 MiB off
the daemon's resident memory (docs/performance.md).
"""
from __future__ import annotations

import json
import random
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import urllib3
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from . import __version__, protocol
from .config import Server

MAX_BODY = 1024 * 1024
MAX_RETRY_AFTER = 3600.0


class ServerRefused(Exception):
    """A business answer (2008, 2051, …): final, never retried."""

    def __init__(self, code: int | None, message: str):
        super().__init__(protocol.explain(code, message))
        self.code = code


class Unreachable(Exception):
    """No usable answer (network, TLS, overload, garbage): says nothing about the license."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    body: dict
    server_date: float | None


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _describe_transport(exc: urllib3.exceptions.HTTPError) -> str:
    text = str(exc)
    errors = urllib3.exceptions
    if isinstance(exc, errors.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            hint = ("the server's TLS certificate is not trusted; if a proxy or firewall inspects HTTPS "
                    "(TLS interception is likely), add its CA certificate as [server] ca_file")
            if "Hostname mismatch" in text or "IP address mismatch" in text or "doesn't match" in text:
                hint = "the server's TLS certificate is for another name: check [server] url"
            elif "expired" in text:
                hint = "the server's TLS certificate has expired, or this host's clock is wrong"
            return f"TLS verification failed: {hint}"
        return f"TLS handshake failed: {text[:200]}"
    if isinstance(exc, errors.ProxyError):
        return f"proxy error: {text[:200]}"
    if isinstance(exc, errors.NameResolutionError) or "Name or service not known" in text:
        return "the licensing server's name does not resolve (DNS)"
    if "Connection refused" in text:
        return "connection refused by the licensing server"
    if isinstance(exc, errors.ConnectTimeoutError):
        return "connection to the licensing server timed out"
    if isinstance(exc, errors.ReadTimeoutError):
        return "the licensing server did not answer in time"
    return f"cannot reach the licensing server: {text[:200]}"


def tls_context(server: Server) -> ssl.SSLContext:
    """The daemon's trust, shared so diagnostics judge the server exactly as the daemon does."""
    context = ssl.create_default_context()
    if server.ca_file:
        context.load_verify_locations(cafile=str(server.ca_file))
    return context


def in_call_wait(cap: float):
    """Between attempts of one call: short jittered backoff, never before the server's Retry-After."""
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(cap, 0.5 * 2 ** (state.attempt_number - 1))
        return max(backoff * (0.5 + 0.5 * random.random()), getattr(exc, "retry_after", None) or 0.0)
    return wait


def _stop(attempts: int, cap: float):
    """Give up after `attempts`, or at once when the server asks for a longer pause than `cap`: the schedule
    honours that Retry-After instead of the caller blocking on it."""
    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return state.attempt_number >= attempts or (getattr(exc, "retry_after", None) or 0.0) > cap
    return stop


def check_ca_file(server: Server) -> None:
    """Refuse an unreadable [server] ca_file at start-up, without the cost of loading the system CAs."""
    if server.ca_file:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(server.ca_file))


class LicensingClient:
    def __init__(self, server: Server, attempts: int = 3, retry_cap: float = 5.0):
        self.server = server
        self.attempts = attempts
        self.retry_cap = retry_cap
        self._pool: urllib3.PoolManager | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        """Built at the first call: loading the system CA store takes longer than the rest of start-up."""
        if self._pool is None:
            server = self.server
            headers = {"User-Agent": f"mikolicd/{__version__}", "Content-Type": "application/json"}
            timeout = urllib3.Timeout(connect=server.timeout, read=server.timeout)
            options = dict(ssl_context=tls_context(server), headers=headers, timeout=timeout, retries=False,
                           maxsize=2)
            self._pool = (urllib3.ProxyManager(server.proxy, **options) if server.proxy  # type: ignore[arg-type]
                          else urllib3.PoolManager(**options))  # type: ignore[arg-type]
        return self._pool

    def _once(self, method: str, path: str, body: dict | None) -> Answer:
        try:
            response = self.pool.request(method, self.server.url + path, preload_content=False, redirect=False,
                                         body=json.dumps(body).encode() if body is not None else None)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(_describe_transport(exc)) from None
        try:
            raw = response.read(MAX_BODY + 1, decode_content=True)
        except Exception as exc:  # protocol, decode and socket errors alike: the answer is unusable
            response.close()
            raise Unreachable(f"the licensing server's answer broke off: {str(exc)[:120]}") from None
        if len(raw) > MAX_BODY:
            response.close()  # unread bytes: the connection cannot carry another request
            raise Unreachable("licensing server's answer is larger than 1 MiB")
        response.release_conn()
        status = response.status
        if status == 429 or status >= 500:
            raise Unreachable(f"licensing server busy or failing (HTTP {status})",
                              retry_after(response.headers.get("Retry-After"), time.time()))
        if 300 <= status < 400:
            raise Unreachable(f"licensing server answered a redirect (HTTP {status}) that is not followed")
        if "json" not in response.headers.get("Content-Type", ""):
            raise Unreachable(f"licensing server answered {response.headers.get('Content-Type')!r}, not JSON")
        try:
            data = json.loads(raw)
        except ValueError:
            raise Unreachable("licensing server's answer is not valid JSON") from None
        if not isinstance(data, dict):
            raise Unreachable("licensing server's answer is not a JSON object")
        if status >= 400:
            error = data.get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), int):
                raise ServerRefused(error["code"], str(error.get("message", ""))[:300])
            raise Unreachable(f"licensing server refused the request (HTTP {status}) without an error code")
        try:
            date = parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            date = None
        return Answer(data, date)

    def call(self, path: str, body: dict | None = None, method: str = "POST") -> Answer:
        retrying = Retrying(retry=retry_if_exception_type(Unreachable), stop=_stop(self.attempts, self.retry_cap),
                            wait=in_call_wait(self.retry_cap), reraise=True)
        return retrying(self._once, method, path, body)

    def ping(self) -> Answer:
        return self._once("GET", protocol.PING, None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
