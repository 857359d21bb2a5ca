"""The local HTTP/JSON API on a Unix socket: reads for any peer, writes for admins (SO_PEERCRED and
SO_PEERGROUPS, read on every connection). Error kinds become HTTP statuses here and nowhere else.

Input is checked at this edge before the agent sees it: a JSON object, valid UTF-8 all through (no lone
surrogates), nested at most MAX_DEPTH deep, only the fields the endpoint knows.
"""
from __future__ import annotations

import grp
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import legacy, metrics, regnum
from .agent import Agent
from .config import ApiSection
from .errors import Forbidden, InputError, Kind, MikolicdError
from .forms import FIELDS as TRIAL_FIELDS, is_unicode, small_number
from .httpserver import (Admission, HTTPError, Peer, Request, Response, Router, Server, json_response,
                         root_or_self)
from .statuses import status_of

log = logging.getLogger("mikolicd.api")

MAX_DEPTH = 8
PROTOCOL_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
                  413: "body_too_large", 417: "expectation_failed", 429: "too_many_requests",
                  431: "headers_too_large", 500: "internal_error", 503: "too_many_connections"}
UNREACHABLE_HINT = "; nothing was changed, try again later"


def error_response(status: int, code: str, message: str, server_code: int | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message, "server_code": server_code}}, status)


def render(error: Exception, path: str) -> Response | None:
    """Every refusal in the shape its caller parses: the legacy text under /license.api/, else the JSON API's."""
    if isinstance(error, MikolicdError):
        status, code, server_code = status_of(error), error.kind.value, error.server_code
        message = error.message + (UNREACHABLE_HINT if error.kind is Kind.SERVER_UNREACHABLE else "")
    elif isinstance(error, HTTPError):
        status, code, server_code, message = error.status, PROTOCOL_CODES.get(error.status, "bad_request"), None, \
            error.message
    else:
        return None
    if path.startswith(legacy.PREFIX):
        return legacy.failure(status, legacy.text_of(error))
    # a path or a field may carry a number the peer should not read back
    return error_response(status, code, regnum.mask(message), server_code)


def admin_gids(names: tuple[str, ...]) -> frozenset[int]:
    """Looked up at each write, so a group added or renamed takes effect without a restart."""
    gids = set()
    for name in names:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            log.warning("[api] admin_groups names %r, which is not a group on this host", name)
    return frozenset(gids)


def is_admin(peer: Peer, admin_groups: tuple[str, ...]) -> bool:
    """Root, the daemon's own user, or a peer whose own credentials (at connect time) hold an admin group."""
    if peer.uid is None:
        return False
    if root_or_self(peer):
        return True
    return bool(({peer.gid} | set(peer.groups)) & admin_gids(admin_groups))


def require_admin(request: Request, agent: Agent) -> None:
    """By the running configuration: a reload that changes [api] admin_groups takes effect at once."""
    if not is_admin(request.peer, agent.setup.config.api.admin_groups):
        raise Forbidden("changing the license needs root or a member of [api] admin_groups")


def _checked(value: Any, depth: int = 0) -> Any:
    """JSON as Python parses it lets lone surrogates (\\ud800) and any depth through; neither is text."""
    if depth > MAX_DEPTH:
        raise InputError(f"the request body is nested deeper than {MAX_DEPTH} levels", Kind.INVALID_JSON)
    if isinstance(value, str):
        if not is_unicode(value):
            raise InputError("the request body holds text that is not valid Unicode (a lone surrogate)",
                             Kind.INVALID_JSON)
    elif isinstance(value, dict):
        for k, v in value.items():
            _checked(k, depth + 1)
            _checked(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _checked(v, depth + 1)
    return value


def json_body(request: Request, allowed: set[str] | frozenset[str] | tuple[str, ...]) -> dict[str, Any]:
    try:
        body = json.loads(request.body.decode("utf-8") if request.body else "{}")
    except (ValueError, UnicodeDecodeError):
        raise InputError("the request body is not valid JSON in UTF-8", Kind.INVALID_JSON) from None
    except RecursionError:
        raise InputError(f"the request body is nested deeper than {MAX_DEPTH} levels", Kind.INVALID_JSON) from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object", Kind.INVALID_JSON)
    _checked(body)
    unknown = set(body) - set(allowed)
    if unknown:
        raise InputError(f"unknown fields: {', '.join(sorted(unknown)[:10])}; allowed: "
                         f"{', '.join(sorted(allowed)) or 'none'}", Kind.UNKNOWN_FIELD)
    return body


def number_param(request: Request, name: str, example: str) -> int:
    number = small_number(request.params[name])
    if number is None:
        raise InputError(f"the {name} must be a number, such as {example}")
    return number


def add_routes(router: Router, agent: Agent) -> None:
    """Reads are plain functions answered from memory at once; writes wait for the licensing server."""
    def read(path: str, view: Callable[[Request], Any]) -> None:
        router.add("GET", path, lambda request: json_response(view(request)))

    read("/v1/health", lambda _: agent.health())
    router.add("GET", "/v1/status", lambda _: Response(200, agent.status_body()))
    read("/v1/license", lambda _: agent.license_view())
    read("/v1/features/{feature}", lambda r: agent.feature(number_param(r, "feature", "33")))
    read("/v1/fingerprint", lambda _: agent.fingerprint_report())

    def scrape(request: Request) -> Response:
        openmetrics = metrics.wants_openmetrics(request.headers.get("accept"))
        return Response(200, metrics.render(agent.metrics_view(), openmetrics),
                        metrics.CONTENT_TYPE if openmetrics else metrics.TEXT_CONTENT_TYPE)
    router.add("GET", "/metrics", scrape)

    async def server(_: Request) -> Response:
        return json_response(await agent.server_check())
    router.add("GET", "/v1/server", server)

    def write(method: str, path: str, allowed: set[str], action: Callable[[Request, dict], Awaitable[dict] | dict]) -> None:
        async def handler(request: Request) -> Response:
            require_admin(request, agent)
            result = action(request, json_body(request, allowed))
            return json_response(await result if inspect.isawaitable(result) else result)
        router.add(method, path, handler)

    write("POST", "/v1/registration", set(TRIAL_FIELDS), lambda _, b: agent.register_trial(b))
    write("DELETE", "/v1/registration", set(), lambda _, b: agent.forget())
    write("POST", "/v1/activation", {"registration_number", "replace"},
          lambda _, b: agent.activate(b.get("registration_number"), b.get("replace") is True))
    write("DELETE", "/v1/activation", set(), lambda _, b: agent.release())
    write("POST", "/v1/coupons", {"coupon"}, lambda _, b: agent.redeem(b.get("coupon")))
    write("POST", "/v1/validation", set(), lambda _, b: agent.validate())
    write("POST", "/v1/products/{product}/trial", set(),
          lambda r, _: agent.add_product_trial(number_param(r, "product", "1001")))
    write("POST", "/v1/features/{feature}/captures", set(),
          lambda r, _: agent.capture(number_param(r, "feature", "33")))
    write("DELETE", "/v1/features/{feature}/captures/{session}", set(),
          lambda r, _: agent.release_capture(number_param(r, "feature", "33"), r.params["session"]))
    write("POST", "/v1/metrics", {"fields"}, lambda _, b: {"queued": agent.send_metrics(metrics_fields(b))})
    write("POST", "/v1/offline/response", {"response"}, lambda _, b: agent.apply_offline(b.get("response")))
    write("POST", "/v1/offline/release", set(), lambda _, b: agent.offline_release())

    def offline_request(request: Request) -> Response:
        require_admin(request, agent)  # it spends the nonce a waiting answer was made for
        return json_response(agent.offline_request(request.query.get("registration_number")))
    router.add("GET", "/v1/offline/request", offline_request)


def metrics_fields(body: dict) -> dict[str, str]:
    fields = body.get("fields", {})
    if not isinstance(fields, dict) or len(fields) > 64 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 256 and len(v) <= 256 for k, v in fields.items()):
        raise InputError("fields must be an object of at most 64 names, each with a text of at most 256 characters")
    return fields


def make_server(agent: Agent, admission: Admission, *, tcp_host: str | None = None) -> Server:
    """A Unix socket serves both APIs; a TCP listener (`tcp_host`) serves only the legacy one, to callers
    that look local. All listeners share one `admission`, so the connection caps count every socket;
    admins may use the reserve of connections kept from unprivileged peers."""
    router = Router()
    if tcp_host is None:
        add_routes(router, agent)
    legacy.add_routes(router, agent, lambda request: require_admin(request, agent), tcp_host=tcp_host)
    return Server(router, render, privileged=lambda peer: is_admin(peer, agent.setup.config.api.admin_groups),
                  admission=admission)


def prepare_socket_path(path: Path) -> None:
    """Remove a stale socket left by a crash; refuse to delete anything that is not a socket."""
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise OSError(f"{path} exists and is not a socket: move it away or set [api] socket")
    path.parent.mkdir(parents=True, exist_ok=True)


def secure_socket(path: Path, api: ApiSection) -> None:
    os.chmod(path, api.socket_mode)
    if api.socket_group:
        try:
            os.chown(path, -1, grp.getgrnam(api.socket_group).gr_gid)
        except (KeyError, PermissionError) as exc:
            log.warning("cannot give %s to group %s: %s", path, api.socket_group, exc)
