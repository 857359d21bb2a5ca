"""The local HTTP/JSON API on a Unix socket: reads for any peer, writes for admins (SO_PEERCRED)."""
from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import pwd
import socket
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from . import legacy
from .agent import TRIAL_FIELDS, Agent, AgentError
from .config import Api

log = logging.getLogger("mikolicd.api")

MAX_BODY = 64 * 1024
# aiohttp bounds the wait for a request head (keep-alive timeout) but not for its body.
BODY_TIMEOUT = 10.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, server_code: int | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "server_code": server_code}},
                             status=status)


def peer_credentials(request: web.Request) -> tuple[int, int] | None:
    """(uid, gid) of a Unix-socket peer; None for TCP peers."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    _pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         struct.calcsize("3i")))
    return uid, gid


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


def is_admin(credentials: tuple[int, int] | None, admin_groups: tuple[str, ...]) -> bool:
    if credentials is None:
        return False
    uid, gid = credentials
    return uid in (0, os.getuid()) or bool(_groups_of(uid, gid) & set(admin_groups))


def require_admin(request: web.Request) -> None:
    if not is_admin(peer_credentials(request), request.app["api_config"].admin_groups):
        raise AgentError(403, "forbidden", "changing the license needs root or a member of [api] admin_groups")


async def json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    try:
        raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT)
    except asyncio.TimeoutError:
        raise AgentError(408, "request_timeout", f"the request body did not arrive within {BODY_TIMEOUT:g}s") from None
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AgentError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AgentError(400, "invalid_json", "the request body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise AgentError(400, "unknown_field", f"unknown fields: {', '.join(sorted(unknown)[:10])}; "
                                               f"allowed: {', '.join(sorted(allowed)) or 'none'}")
    return body


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AgentError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.server_code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "bad_request")
        return error_response(exc.status, code, exc.reason if exc.status != 413 else
                              f"request bodies are limited to {MAX_BODY // 1024} KiB")
    except Exception:
        log.exception("unexpected error while serving %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the journal of mikolicd")


def routes(agent: Agent) -> web.RouteTableDef:
    r = web.RouteTableDef()

    def ok(body: dict[str, Any]) -> web.Response:
        return web.json_response(body)

    @r.get("/v1/health")
    async def health(_: web.Request) -> web.Response:
        return ok({"ok": True, "state": agent.verdict.state.value})

    @r.get("/v1/status")
    async def status(_: web.Request) -> web.Response:
        return ok(agent.status())

    @r.get("/v1/license")
    async def license_(_: web.Request) -> web.Response:
        return ok(agent.license_view())

    @r.get("/v1/features/{feature}")
    async def feature(request: web.Request) -> web.Response:
        raw = request.match_info["feature"]
        if not raw.isdigit() or len(raw) > 9:
            raise AgentError(400, "invalid_input", "the feature id must be a number, such as 33")
        return ok(agent.feature(int(raw)))

    @r.get("/v1/fingerprint")
    async def fingerprint_(_: web.Request) -> web.Response:
        return ok(agent.fingerprint_report())

    def write(method: str, path: str, allowed: set[str], action: Callable[[dict], Awaitable[dict]]) -> None:
        async def handler(request: web.Request) -> web.Response:
            require_admin(request)
            return ok(await action(await json_body(request, allowed)))
        r.route(method, path)(handler)

    write("POST", "/v1/registration", TRIAL_FIELDS, agent.register_trial)
    write("POST", "/v1/activation", {"registration_number"}, lambda b: agent.activate(b.get("registration_number")))
    write("DELETE", "/v1/activation", set(), lambda _: agent.release())
    write("POST", "/v1/coupons", {"coupon"}, lambda b: agent.redeem(b.get("coupon")))
    write("POST", "/v1/validation", set(), lambda _: agent.validate())
    return r


def make_app(agent: Agent, api: Api, *, json_api: bool = True) -> web.Application:
    """The socket serves both APIs; the optional TCP listener serves only the legacy one."""
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app["api_config"] = api
    if json_api:
        app.add_routes(routes(agent))
    app.add_routes(legacy.routes(agent))
    return app


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
