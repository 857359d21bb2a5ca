"""The HTTP side of the reference server: JSON in, JSON out, refusals as protocol error codes.

Handlers call the database synchronously: a call is a few index lookups and at most a few row writes
(docs/refserver.md has the figures), and one event loop thread keeps them in order without locking.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import signal
import ssl
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mikolicd import protocol as proto
from mikolicd.refserver import fields
from mikolicd.refserver.fields import FieldError
from mikolicd.refserver.licensing import Licensing, ProtocolError
from mikolicd.refserver.offline import OfflineError, Receipt, read_receipt
from mikolicd.refserver.ratelimit import Limiter, Limits
from mikolicd.regnum import mask

__all__ = ["make_app", "serve"]

log = logging.getLogger("mikolicd.refserver")

MAX_BODY = 64 * 1024
STATUS = {proto.NO_FREE_SEAT: 409, proto.KEY_ERROR: 403, proto.FEATURE_EXPIRED: 403, proto.TRIAL_EMAIL_TAKEN: 409,
          proto.INVALID_NUMBER: 404, proto.COUPON_ERROR: 409, proto.COUPON_UNKNOWN: 404, proto.COUPON_USED: 409,
          proto.TRIAL_TAKEN: 409, proto.COUPON_BLOCKED: 403, proto.COPIED: 409}
MISSES = frozenset({proto.INVALID_NUMBER, proto.COUPON_UNKNOWN})  # answers that tell a guesser it guessed wrong
LICENSING = web.AppKey("licensing", Licensing)
LIMITER = web.AppKey("limiter", Limiter)
REFUSAL = "mikolicd.refusal"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Call = Callable[[Licensing, dict], dict]


class AccessLog(AbstractAccessLogger):
    """One line per request; a refusal names its code and reason, with numbers masked."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.3fs%s', request.remote, request.method, request.path, response.status,
                         time, request.get(REFUSAL, ""))


def _error(status: int, code: int | None, message: str, headers: dict[str, str] | None = None,
           **extra: object) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status,
                             headers=headers)


def _busy(wait: float, why: str) -> web.Response:
    seconds = math.ceil(wait)
    return _error(429, None, f"Too many requests: {why}; retry after {seconds} s", {"Retry-After": str(seconds)})


def _receipt(body: dict) -> Receipt:
    try:
        return read_receipt(fields.receipt(body))
    except OfflineError as exc:
        raise FieldError("receipt", str(exc)) from None


CALLS: dict[str, Call] = {
    proto.TRIAL: lambda lic, b: lic.trial(fields.trial_form(b), fields.integer(b, "product", proto.PBX_PRODUCT),
                                          fields.caller(b)),
    proto.ACTIVATION: lambda lic, b: lic.activate(fields.number(b), fields.caller(b)),
    proto.VALIDATION: lambda lic, b: lic.validate(fields.number(b), fields.caller(b)),
    proto.RELEASE: lambda lic, b: lic.release(fields.number(b), fields.caller(b)),
    proto.COUPON: lambda lic, b: lic.redeem(fields.number(b), fields.text(b, "coupon", required=True),
                                            fields.caller(b)),
    proto.PRODUCT_TRIAL: lambda lic, b: lic.product_trial(fields.number(b), fields.integer(b, "product"),
                                                          fields.caller(b)),
    proto.CAPTURE: lambda lic, b: lic.capture(fields.number(b), fields.integer(b, "feature"), fields.caller(b)),
    proto.RELEASE_FEATURE: lambda lic, b: lic.release_feature(fields.number(b), fields.integer(b, "feature"),
                                                              fields.text(b, "session", required=True),
                                                              fields.caller(b)),
    proto.METRICS: lambda lic, b: lic.metrics(fields.number(b), fields.caller(b), fields.metrics(b)),
    proto.OFFLINE_RELEASE: lambda lic, b: lic.offline_release(_receipt(b)),
}


def _handler(call: Call) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            raise FieldError(None, "the body is not JSON (UTF-8, nested at most a few hundred levels)") from None
        if not isinstance(body, dict):
            raise FieldError(None, "the body must be a JSON object")
        if isinstance(number := body.get("registration_number"), str):
            wait, why = request.app[LIMITER].admit_number(number, time.monotonic())
            if wait:
                return _busy(wait, why)
        return web.json_response(call(request.app[LICENSING], body))
    return handle


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"ok": True,
                              "server_time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer is JSON, refusals and framework errors included."""
    try:
        return await handler(request)
    except FieldError as exc:
        request[REFUSAL] = f" refused: bad request, {exc.message}"
        return _error(400, None, exc.message, field=exc.field)
    except ProtocolError as exc:
        request[REFUSAL] = f" refused: {exc.code}, {mask(exc.message)}"
        if exc.code in MISSES:
            request.app[LIMITER].missed(request.remote, time.monotonic())
        return _error(STATUS.get(exc.code, 400), exc.code, exc.message,
                      **({"refusal": exc.refusal} if exc.refusal else {}))
    except web.HTTPException as exc:
        return _error(exc.status, None, exc.reason)
    except Exception:
        log.exception("%s failed", request.path)
        return _error(500, None, "internal server error")


@web.middleware
async def _throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before the body is read: an address over its allowance, or out of guesses, costs almost nothing."""
    wait, why = request.app[LIMITER].admit(request.remote, time.monotonic())
    if wait:
        request[REFUSAL] = f" refused: {why}"
        return _busy(wait, why)
    return await handler(request)


def make_app(licensing: Licensing, limits: Limits = Limits()) -> web.Application:
    app = web.Application(middlewares=[_json_errors, _throttle], client_max_size=MAX_BODY)
    app[LICENSING] = licensing
    app[LIMITER] = Limiter(limits)
    app.router.add_get(proto.PING, ping)
    for path, call in CALLS.items():
        app.router.add_post(path, _handler(call))
    return app


def serve(licensing: Licensing, host: str, port: int, tls: ssl.SSLContext | None, limits: Limits) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and close the database."""
    asyncio.run(_serve(licensing, host, port, tls, limits))


async def _serve(licensing: Licensing, host: str, port: int, tls: ssl.SSLContext | None, limits: Limits) -> None:
    runner = web.AppRunner(make_app(licensing, limits), access_log_class=AccessLog)
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
