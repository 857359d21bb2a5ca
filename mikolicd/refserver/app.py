"""The HTTP side of the reference server: JSON in, JSON out, refusals as protocol error codes.

Handlers call the database synchronously: SQLite answers in microseconds here, and one event loop
thread keeps every call to the database in order without further locking.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import secrets
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mikolicd import protocol as proto
from mikolicd.fingerprint import Components
from mikolicd.refserver.licensing import Licensing, ProtocolError, TrialForm
from mikolicd.regnum import mask

log = logging.getLogger("mikolicd.refserver")

MAX_BODY = 64 * 1024
MAX_TEXT = 256
MAX_ITEMS = 64
STATUS = {proto.NO_FREE_SEAT: 409, proto.KEY_ERROR: 403, proto.FEATURE_EXPIRED: 403, proto.TRIAL_EMAIL_TAKEN: 409,
          proto.INVALID_NUMBER: 404, proto.COUPON_ERROR: 409, proto.COUPON_UNKNOWN: 404, proto.COUPON_USED: 409,
          proto.TRIAL_TAKEN: 409, proto.COUPON_BLOCKED: 403}
LICENSING = web.AppKey("licensing", Licensing)
REFUSAL = "mikolicd.refusal"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class TokenBucket:
    """Admit `rate` requests a second on average, and bursts of up to `rate` (at least one)."""

    rate: float
    tokens: float = field(init=False)
    stamp: float | None = None

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def take(self, now: float) -> float:
        """0 when a request may pass, else the seconds until one may."""
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class AccessLog(AbstractAccessLogger):
    """One line per request; a refusal names its code and reason, with numbers masked."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs%s', request.remote, request.method, request.path, response.status,
                         time, request.get(REFUSAL, ""))


def _error(status: int, code: int | None, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _bad(message: str) -> ProtocolError:
    return ProtocolError(None, message)


def _text(body: dict, name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _bad(f"{name} must be a string of at most {MAX_TEXT} characters")
    if required and not value.strip():
        raise _bad(f"{name} is required")
    return value


def _int(body: dict, name: str, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 31:
        raise _bad(f"{name} must be a positive integer")
    return value


def _number(body: dict) -> object:
    if "registration_number" not in body:
        raise _bad("registration_number is required")
    return body["registration_number"]


def _host(body: dict) -> Components:
    host = body.get("host")
    components = host.get("components") if isinstance(host, dict) else None
    if not isinstance(components, dict) or not components or len(components) > MAX_ITEMS:
        raise _bad('host must be {"components": {NAME: HASH, ...}} with at least one component')
    for name, value in components.items():
        values = value if isinstance(value, list) else [value]
        if len(name) > MAX_TEXT or len(values) > MAX_ITEMS or not all(
                isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in values):
            raise _bad(f"host component {name[:40]!r} must be a hash string (or, for nic, a list of them)")
    return components


def _trial_form(body: dict) -> TrialForm:
    form = TrialForm(_text(body, "companyname", required=True), _text(body, "email", required=True),
                     _text(body, "contact", required=True), _text(body, "tel"), _text(body, "inn"),
                     _text(body, "description"))
    if "@" not in form.email:
        raise _bad("email must be an e-mail address")
    inn = form.inn.strip()
    if inn and not (inn.isdigit() and 10 <= len(inn) <= 12):
        raise _bad("inn must be 10 to 12 digits")
    return form


def _fields(body: dict) -> dict[str, str]:
    fields = body.get("fields", {})
    if not isinstance(fields, dict) or len(fields) > MAX_ITEMS or not all(
            isinstance(v, str) and len(k) <= MAX_TEXT and len(v) <= MAX_TEXT for k, v in fields.items()):
        raise _bad("fields must be an object of short strings")
    return fields


CALLS: dict[str, Callable[[Licensing, dict], dict]] = {
    proto.TRIAL: lambda lic, b: lic.trial(_trial_form(b), _int(b, "product", 11), _host(b)),
    proto.ACTIVATION: lambda lic, b: lic.activate(_number(b), _host(b)),
    proto.VALIDATION: lambda lic, b: lic.activate(_number(b), _host(b)),
    proto.RELEASE: lambda lic, b: lic.release(_number(b), _host(b)),
    proto.COUPON: lambda lic, b: lic.redeem(_number(b), b.get("coupon"), _host(b)),
    proto.PRODUCT_TRIAL: lambda lic, b: lic.product_trial(_number(b), _int(b, "product"), _host(b)),
    proto.CAPTURE: lambda lic, b: lic.capture(_number(b), _int(b, "feature"), _host(b)),
    proto.RELEASE_FEATURE: lambda lic, b: lic.release_feature(_number(b), _int(b, "feature"),
                                                          _text(b, "session", required=True)),
    proto.METRICS: lambda lic, b: lic.metrics(_number(b), _host(b), _fields(b)),
}


def _handler(call: Callable[[Licensing, dict], dict]) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise _bad("the body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("the body must be a JSON object")
        licensing = request.app[LICENSING]
        installation = body.get("installation") if isinstance(body.get("installation"), dict) else {}
        licensing.echo = {"nonce": body.get("nonce"), "install_id": installation.get("id"),
                          "token": secrets.token_urlsafe(16)}
        return web.json_response(call(licensing, body))
    return handle


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"ok": True,
                              "server_time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer is JSON, refusals and framework errors included."""
    try:
        return await handler(request)
    except ProtocolError as exc:
        request[REFUSAL] = f" refused: {exc.code or 'bad request'}, {mask(exc.message)}"
        return _error(STATUS.get(exc.code, 400), exc.code, exc.message)
    except web.HTTPException as exc:
        return _error(exc.status, None, exc.reason)
    except Exception:
        log.exception("%s failed", request.path)
        return _error(500, None, "internal server error")


def _throttle(bucket: TokenBucket) -> Callable:
    @web.middleware
    async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = bucket.take(time.monotonic())
        if wait:
            return _error(429, None, "Too many requests", {"Retry-After": str(math.ceil(wait))})
        return await handler(request)
    return throttle


def make_app(licensing: Licensing, max_rps: float | None = None) -> web.Application:
    middlewares = [_json_errors] + ([_throttle(TokenBucket(max_rps))] if max_rps else [])
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[LICENSING] = licensing
    app.router.add_get(proto.PING, ping)
    for path, call in CALLS.items():
        app.router.add_post(path, _handler(call))
    return app


def serve(licensing: Licensing, host: str, port: int, tls: ssl.SSLContext | None, max_rps: float | None) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and close the database."""
    asyncio.run(_serve(licensing, host, port, tls, max_rps))


async def _serve(licensing: Licensing, host: str, port: int, tls: ssl.SSLContext | None,
                 max_rps: float | None) -> None:
    runner = web.AppRunner(make_app(licensing, max_rps), access_log_class=AccessLog)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
        scheme = "https" if tls else "http"
        bound = ", ".join(f"{scheme}://{a[0]}:{a[1]}" for a in runner.addresses)
        log.info("serving on %s (key id %s)%s", bound, licensing.signer.kid,
                 "" if tls else "; plain HTTP: agents accept only HTTPS")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
        licensing.db.close()
