"""HTTPS to the licensing server: timeouts on every call, retries only where retrying can help."""
from __future__ import annotations

import json
import random
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
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
        self.server_message = message


class Unreachable(Exception):
    """No usable answer (network, TLS, overload, garbage): says nothing about the license."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    body: dict
    server_date: float | None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None  # the HTTP-date form is rare here; waiting the normal backoff is safe


def _describe_transport(exc: requests.RequestException) -> str:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            hint = ("the server's TLS certificate is not trusted; if a proxy or firewall inspects HTTPS "
                    "(TLS interception is likely), add its CA certificate as [server] ca_file")
            if "Hostname mismatch" in text or "IP address mismatch" in text or "doesn't match" in text:
                hint = "the server's TLS certificate is for another name: check [server] url"
            elif "expired" in text:
                hint = "the server's TLS certificate has expired, or this host's clock is wrong"
            return f"TLS verification failed: {hint}"
        return f"TLS handshake failed: {text[:200]}"
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"proxy error: {text[:200]}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection to the licensing server timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the licensing server did not answer in time"
    if "Name or service not known" in text or "NameResolutionError" in text or "getaddrinfo" in text:
        return "the licensing server's name does not resolve (DNS)"
    if "Connection refused" in text:
        return "connection refused by the licensing server"
    return f"cannot reach the licensing server: {text[:200]}"


def tls_context(server: Server) -> ssl.SSLContext:
    """The daemon's trust, shared so diagnostics judge the server exactly as the daemon does."""
    context = ssl.create_default_context()
    if server.ca_file:
        context.load_verify_locations(cafile=str(server.ca_file))
    return context


class _TLSAdapter(HTTPAdapter):
    """System CAs plus the configured extra CA; verification can't be switched off."""

    def __init__(self, context: ssl.SSLContext):
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any):
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


def _wait(cap: float):
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(cap, 0.5 * 2 ** (state.attempt_number - 1))
        jittered = backoff * (0.5 + 0.5 * random.random())
        retry_after = getattr(exc, "retry_after", None)
        return max(jittered, retry_after or 0.0)
    return wait


def _stop(attempts: int, cap: float):
    """Give up after `attempts`, or at once when the server asks for a longer pause than `cap`: the schedule
    honours that Retry-After instead of the caller blocking on it."""
    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return state.attempt_number >= attempts or (getattr(exc, "retry_after", None) or 0.0) > cap
    return stop


class LicensingClient:
    def __init__(self, server: Server, attempts: int = 3, retry_cap: float = 5.0):
        self.server = server
        self.attempts = attempts
        self.retry_cap = retry_cap
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("https://", _TLSAdapter(tls_context(server)))
        self.session.headers["User-Agent"] = f"mikolicd/{__version__}"
        if server.proxy:
            self.session.proxies = {"https": server.proxy}

    def _once(self, method: str, path: str, body: dict | None) -> Answer:
        try:
            response = self.session.request(method, self.server.url + path, json=body, stream=True,
                                            timeout=self.server.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise Unreachable(_describe_transport(exc)) from None
        with response:
            try:
                raw = response.raw.read(MAX_BODY + 1, decode_content=True)
            except Exception as exc:  # urllib3 protocol and decode errors as much as socket errors
                raise Unreachable(f"the licensing server's answer broke off: {str(exc)[:120]}") from None
        status = response.status_code
        if status in (429, 503) or status >= 500:
            raise Unreachable(f"licensing server busy or failing (HTTP {status})",
                              _retry_after(response.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise Unreachable(f"licensing server answered a redirect (HTTP {status}) that is not followed")
        if len(raw) > MAX_BODY:
            raise Unreachable("licensing server's answer is larger than 1 MiB")
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
                            wait=_wait(self.retry_cap), reraise=True)
        return retrying(self._once, method, path, body)

    def ping(self) -> Answer:
        return self._once("GET", protocol.PING, None)

    def close(self) -> None:
        self.session.close()
