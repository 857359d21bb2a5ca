"""The local HTTP/JSON API on a Unix socket: reads for any peer, writes for admins (SO_PEERCRED)."""
from __future__ import annotations

import grp
import json
import logging
import os
import pwd
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import legacy, regnum
from .agent import TRIAL_FIELDS, Agent, AgentError
from .config import Api
from .httpserver import HTTPError, Peer, Request, Response, Router, Server, json_response

log = logging.getLogger("mikolicd.api")

STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
                413: "body_too_large", 429: "too_many_requests", 431: "headers_too_large", 500: "internal_error"}


def error_response(status: int, code: str, message: str, server_code: int | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message, "server_code": server_code}}, status)


def render(error: HTTPError, path: str) -> Response:
    """Every refusal in the shape its caller parses: the legacy text under /license.api/, else the JSON API's."""
    if path.startswith(legacy.PREFIX):
        return legacy.failure(error.status, error.message)
    message = regnum.mask(error.message)  # a path or field may carry a number the peer should not read back
    if isinstance(error, AgentError):
        return error_response(error.status, error.code, message, error.server_code)
    return error_response(error.status, STATUS_CODES.get(error.status, "bad_request"), message)


@lru_cache(maxsize=256)
def _groups_of(uid: int, gid: int) -> frozenset[str]:
    names = set()
    try:
        user = pwd.getpwuid(uid).pw_name
        gids = set(os.getgrouplist(user, gid))
    except KeyError:
        gids = {gid}
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return frozenset(names)


def is_admin(peer: Peer, admin_groups: tuple[str, ...]) -> bool:
    if peer.uid is None or peer.gid is None:
        return False
    return peer.uid in (0, os.getuid()) or bool(_groups_of(peer.uid, peer.gid) & set(admin_groups))


def require_admin(request: Request, api: Api) -> None:
    if not is_admin(request.peer, api.admin_groups):
        raise AgentError(403, "forbidden", "changing the license needs root or a member of [api] admin_groups")


def json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AgentError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AgentError(400, "invalid_json", "the request body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise AgentError(400, "unknown_field", f"unknown fields: {', '.join(sorted(unknown)[:10])}; "
                                               f"allowed: {', '.join(sorted(allowed)) or 'none'}")
    return body


def add_routes(router: Router, agent: Agent, api: Api) -> None:
    """Reads are plain functions answered from memory at once; writes wait for the licensing server."""
    def read(path: str, view: Callable[[Request], Any]) -> None:
        router.add("GET", path, lambda request: json_response(view(request)))

    def feature(request: Request) -> dict[str, Any]:
        raw = request.params["feature"]
        if not raw.isdigit() or len(raw) > 9:
            raise AgentError(400, "invalid_input", "the feature id must be a number, such as 33")
        return agent.feature(int(raw))

    read("/v1/health", lambda _: {"ok": True, "state": agent.verdict.state.value})
    router.add("GET", "/v1/status", lambda _: Response(200, agent.status_body()))
    read("/v1/license", lambda _: agent.license_view())
    read("/v1/features/{feature}", feature)
    read("/v1/fingerprint", lambda _: agent.fingerprint_report())

    def write(method: str, path: str, allowed: set[str], action: Callable[[dict], Awaitable[dict]]) -> None:
        async def handler(request: Request) -> Response:
            require_admin(request, api)
            return json_response(await action(json_body(request, allowed)))
        router.add(method, path, handler)

    write("POST", "/v1/registration", TRIAL_FIELDS, agent.register_trial)
    write("POST", "/v1/activation", {"registration_number"}, lambda b: agent.activate(b.get("registration_number")))
    write("DELETE", "/v1/activation", set(), lambda _: agent.release())
    write("POST", "/v1/coupons", {"coupon"}, lambda b: agent.redeem(b.get("coupon")))
    write("POST", "/v1/validation", set(), lambda _: agent.validate())


def make_server(agent: Agent, api: Api, *, json_api: bool = True) -> Server:
    """The socket serves both APIs; the optional TCP listener serves only the legacy one."""
    router = Router()
    if json_api:
        add_routes(router, agent, api)
    legacy.add_routes(router, agent, lambda request: require_admin(request, api))
    return Server(router, render)


def prepare_socket_path(path: Path) -> None:
    """Remove a stale socket left by a crash; refuse to delete anything that is not a socket."""
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise OSError(f"{path} exists and is not a socket: move it away or set [api] socket")
    path.parent.mkdir(parents=True, exist_ok=True)


def secure_socket(path: Path, api: Api) -> None:
    os.chmod(path, api.socket_mode)
    if api.socket_group:
        try:
            os.chown(path, -1, grp.getgrnam(api.socket_group).gr_gid)
        except (KeyError, PermissionError) as exc:
            log.warning("cannot give %s to group %s: %s", path, api.socket_group, exc)
