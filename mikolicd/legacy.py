"""The PBX's legacy license.api: form fields in, JSON with url-encoded XML out, errors as plain text.

Existing PBX code parses these answers by hand, so the shapes are exact: success is HTTP 200 with
`result` (or `session`); failure is non-200 with `error` text that carries the server's error number in
parentheses, because the PBX translates errors by looking for that number.

Over TCP there are no caller credentials, so a request counts only when it could come from a local
program and not from a web page: its `Host` names a loopback address (or `localhost`, or the configured
listen address), and it carries no `Origin` and no cross-site `Referer` (DNS rebinding, cross-site forms).
"""
from __future__ import annotations

import logging
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, quote
from urllib.parse import urlsplit

from . import protocol, regnum
from .agent import Agent
from .config import CompatSection
from .errors import Kind, MikolicdError
from .forms import FIELDS as TRIAL_FIELDS, is_unicode, small_number
from .httpserver import HTTPError, Request, Response, Router, json_response
from .statuses import status_of

log = logging.getLogger("mikolicd.legacy")

PREFIX = "/license.api/"
MAX_FIELDS = 100
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# XML 1.0 cannot carry most control characters; SimpleXML would reject the whole answer.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"  # compiled at first use

Fields = dict[str, str]
T = TypeVar("T")


class Failure(Exception):
    """A legacy error answer: HTTP status and the whole text the PBX shows or searches for a number."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------- where it listens
def _loopback(address: str) -> bool:
    import ipaddress  # only with a TCP listener, which is off by default
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def compat_listen(compat: CompatSection) -> tuple[str, int] | None:
    """Host and port for the TCP listener, or None to keep it off.

    TCP callers carry no credentials, so the legacy trust model is "whoever is on this host"; a
    listener other hosts can reach therefore needs `allow_remote = true`, said explicitly.
    """
    if not compat.listen:
        return None
    host, _, port_text = compat.listen.rpartition(":")
    host, port = host.strip("[]"), int(port_text)
    if not 0 < port < 65536:
        log.error("[compat] listen = %r: the port must be 1 to 65535; license.api stays on the socket only",
                  compat.listen)
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        log.error("[compat] listen = %r: cannot resolve %s (%s); license.api stays on the socket only",
                  compat.listen, host, exc)
        return None
    remote = sorted(a for a in addresses if not _loopback(a))
    if remote and not compat.allow_remote:
        log.error("[compat] listen = %r refused: %s is not a loopback address, and license.api over TCP has no "
                  "caller credentials, so every host that reaches the port could read the license and its owner. "
                  "Listen on 127.0.0.1, or set [compat] allow_remote = true to accept that; license.api stays on "
                  "the socket only", compat.listen, ", ".join(remote))
        return None
    if remote:
        log.warning("license.api on TCP %s is reachable from other hosts ([compat] allow_remote = true); "
                    "they may read, and changes are still accepted only from this host", compat.listen)
    return host, port


def _authorise_change(request: Request, require_admin: Callable[[Request], None]) -> None:
    """Socket peers by the JSON API's admin rule; TCP peers, which have no credentials, only from loopback."""
    if request.peer.uid is not None:
        require_admin(request)
        return
    if not request.peer.address or not _loopback(request.peer.address):
        raise Failure(403, "license.api accepts changes over TCP only from this host (a loopback address)")


def _host_name(value: str) -> str:
    """`[::1]:8223` -> `::1`, `localhost:8223` -> `localhost`."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _local_name(host: str, listen_host: str) -> bool:
    if host in ("localhost", listen_host.lower()):
        return True
    try:
        return _loopback(host)
    except ValueError:
        return False


def check_local_caller(request: Request, listen_host: str) -> None:
    """Refuse what a web page can make a browser send to a loopback port: another Host (DNS rebinding), an
    Origin (any script or form), or a Referer from another site."""
    host = _host_name(request.headers.get("host", ""))
    if not _local_name(host, listen_host):
        raise Failure(403, "license.api over TCP answers only requests addressed to this host (the Host header "
                           "must name 127.0.0.1, ::1 or localhost)")
    if "origin" in request.headers:
        raise Failure(403, "license.api over TCP does not answer requests from web pages (an Origin header was sent)")
    referer = request.headers.get("referer")
    if referer is not None and not _local_name((urlsplit(referer).hostname or ""), listen_host):
        raise Failure(403, "license.api over TCP does not answer requests from web pages (a cross-site Referer "
                           "was sent)")


# ---------------------------------------------------------------------- request and answer
def _multipart(request: Request) -> Fields:
    """PHP's curl sends an array of fields as multipart/form-data; the standard e-mail parser reads it."""
    from email import message_from_bytes  # 1 MiB, for the rare caller that sends multipart
    from email.policy import HTTP
    message = message_from_bytes(f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
                                 + request.body, policy=HTTP)
    try:
        parts = list(message.iter_parts()) if message.is_multipart() else []
        if not parts or message.defects or any(p.defects for p in parts):
            raise Failure(400, "the multipart body is malformed")
        if len(parts) > MAX_FIELDS or any(p.get_filename() or p.get_param("name", header="content-disposition") is None
                                          for p in parts):
            raise Failure(400, f"the body must hold at most {MAX_FIELDS} named text fields and no files")
        if any(p.get_content_type() != "text/plain" for p in parts):
            raise Failure(400, "each multipart field must be text (text/plain), not a file or a message")
        fields = {str(p.get_param("name", header="content-disposition")): p.get_content() for p in parts}
    except (LookupError, ValueError, TypeError, AttributeError, UnicodeError):
        raise Failure(400, "the multipart body is malformed") from None
    if not all(isinstance(v, str) and is_unicode(v) for v in fields.values()):
        raise Failure(400, "each multipart field must be valid UTF-8 text")
    return fields


def _fields(request: Request) -> Fields:
    """Query string and body together: some methods carry their parameters in the URL and send no body."""
    if not request.body:
        return dict(request.query)
    if request.content_type == MULTIPART:
        return request.query | _multipart(request)
    if request.content_type != FORM:
        raise Failure(400, f"the body must be {FORM} (or {MULTIPART}), not {request.content_type[:60]}")
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=MAX_FIELDS)
    except (ValueError, UnicodeDecodeError):
        raise Failure(400, "the form body is malformed: expected name=value pairs joined by & in UTF-8") from None
    return request.query | dict(pairs)


def _number(fields: Fields, name: str, example: str) -> int:
    number = small_number(fields.get(name, "").strip())
    if number is None:
        raise Failure(400, f"the {name} parameter must be a number, such as {example}")
    return number


def _text(value: str) -> str:
    return re.sub(_NOT_XML, "", value)


def license_xml(view: dict[str, Any], key: str) -> str:
    """The license as the PBX parses it: one product element per product, its features inside."""
    import xml.etree.ElementTree as ET  # noqa: N817 - only legacy callers ask for XML
    owner = view["owner"]
    root = ET.Element("license", {name: _text(owner.get(name, "")) for name in ("companyname", "contact", "email",
                                                                                 "tel")} | {"key": key})
    for p in view["products"]:
        product = ET.SubElement(root, "product", {"id": str(p["id"]), "name": _text(p["name"]),
                                                  "trial": "1" if p["trial"] else "0", "expired": p["expires"] or ""})
        for f in p["features"]:
            ET.SubElement(product, "feature", {"id": str(f["id"]), "name": _text(f["name"]), "count": str(f["count"]),
                                               "counteach": str(f["counteach"]), "captured": str(f["captured"])})
    return ET.tostring(root, encoding="unicode")


def _encoded(text: str) -> str:
    return quote(text, safe="")


def text_of(error: Exception) -> str:
    """The legacy text of an error: the agent's message, except that a malformed number or coupon is named
    by the server's code (the PBX translates by it) and never echoed."""
    if isinstance(error, MikolicdError) and error.kind is Kind.INVALID_REGISTRATION_NUMBER:
        return (f"({protocol.INVALID_NUMBER}) {protocol.SERVER_TEXT[protocol.INVALID_NUMBER]}: expected "
                "MIKO-XXXXX-XXXXX-XXXXX-XXXXX (letters A-Z and digits)")
    if isinstance(error, MikolicdError) and error.kind is Kind.INVALID_COUPON:
        return (f"({protocol.COUPON_UNKNOWN}) {protocol.SERVER_TEXT[protocol.COUPON_UNKNOWN]}: expected "
                "MIKOUPD-XXXXX-XXXXX-XXXXX-XXXXX (letters A-Z and digits)")
    return error.message if isinstance(error, (MikolicdError, HTTPError)) else str(error)


async def _attempt(failed: str, action: Awaitable[T]) -> T:
    """Run an agent call; a refusal becomes the legacy text `failed` + the reason with its code."""
    try:
        return await action
    except MikolicdError as exc:
        raise Failure(status_of(exc), failed + text_of(exc)) from None


# ---------------------------------------------------------------------- the methods
Authorise = Callable[[], None]


async def getlicenseinfo(agent: Agent, fields: Fields, authorise: Authorise) -> dict[str, Any]:
    """Readable by any caller. A key other than this host's is activated first, as the PBX checks a newly
    entered key this way before storing it (a change, so only for those allowed to change)."""
    key = fields.get("key", "").strip().upper()
    if key and key != agent.state.registration_number:
        authorise()
        await _attempt(f"Failed to capture feature {protocol.PBX_FEATURE}, ", agent.activate(key, replace_active=True))
    try:
        view = agent.license_view()
    except MikolicdError as exc:
        raise Failure(status_of(exc), "Failed to get license info: " + text_of(exc)) from None
    return {"result": _encoded(license_xml(view, key or view["registration_number"]))}


async def gettrial(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    if fields.get("product", "").strip() not in ("", str(protocol.PBX_PRODUCT)):
        raise Failure(400, f"Failed to get trial key: a trial key is for product {protocol.PBX_PRODUCT} (MikoPBX); "
                           "add a module's trial with addtrial")
    form = {name: fields[name] for name in TRIAL_FIELDS if name in fields}
    await _attempt("Failed to get trial key: ", agent.register_trial(form))
    return {"result": _encoded(agent.state.registration_number or "")}


def _license_result(agent: Agent) -> dict[str, Any]:
    return {"result": _encoded(license_xml(agent.license_view(), agent.state.registration_number or ""))}


async def addtrial(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    product = _number(fields, "product", "1001")
    await _attempt(f"Failed to add trial of product {product}: ", agent.add_product_trial(product))
    return _license_result(agent)


async def activatecoupon(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    await _attempt("Failed to activate coupon: ", agent.redeem(fields.get("coupon", "")))
    return _license_result(agent)


async def changekey(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    """An empty key forgets the number; the key already active changes nothing; another key replaces it."""
    key = fields.get("key", "")
    if not key.strip():
        await _attempt("Failed to change license key: ", agent.forget())
    elif key.strip().upper() != agent.state.registration_number or agent.state.document is None:
        await _attempt("Failed to change license key: ", agent.activate(key, replace_active=True))
    return {"result": "ok"}


async def capturefeature(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    feature = _number(fields, "feature", "33")
    captured = await _attempt(f"Failed to capture feature {feature}, ", agent.capture(feature))
    return {"session": captured["session"]}


async def releasefeature(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    feature = _number(fields, "feature", "33")
    session = fields.get("session", "").strip()
    if not session:
        raise Failure(400, "the session parameter is required: the id capturefeature answered")
    await _attempt(f"Failed to release feature {feature}: ", agent.release_capture(feature, session))
    return {"result": "ok"}


async def featureavailable(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    """From the local license only, so it answers with the server unreachable, and takes no seat."""
    feature = _number(fields, "feature", "33")
    status = agent.feature(feature)
    if not status["available"]:
        raise Failure(403, f"Feature {feature} is not available: {status['reason']}")
    return {"result": "ok"}


async def sendmetrics(agent: Agent, fields: Fields, _: Authorise) -> dict[str, Any]:
    """Queued, never awaited: the PBX calls this from page loads and must not wait for the network."""
    if not agent.state.registration_number:
        raise Failure(409, "Failed to send metrics: no registration number on this host")
    queued = agent.send_metrics({name: value for name, value in fields.items() if name != "key"})
    return {"result": "ok", "queued": queued}


async def ping(agent: Agent, _: Fields, __: Authorise) -> dict[str, Any]:
    check = await agent.server_check()
    if not check["reachable"]:
        raise Failure(503, f"Licensing server does not answer: {check['message']}")
    return {"result": "ok"}


class Method(NamedTuple):
    run: Callable[[Agent, Fields, Authorise], Awaitable[dict[str, Any]]]
    changes: bool


METHODS: dict[str, Method] = {
    "getlicenseinfo": Method(getlicenseinfo, False),
    "gettrial": Method(gettrial, True),
    "addtrial": Method(addtrial, True),
    "activatecoupon": Method(activatecoupon, True),
    "changekey": Method(changekey, True),
    "capturefeature": Method(capturefeature, True),
    "featureavailable": Method(featureavailable, False),
    "releasefeature": Method(releasefeature, True),
    "sendmetrics": Method(sendmetrics, True),
    "ping": Method(ping, False),
}


def failure(status: int, message: str) -> Response:
    return json_response({"error": regnum.mask(message)}, status)


def add_routes(router: Router, agent: Agent, require_admin: Callable[[Request], None], *,
               tcp_host: str | None = None) -> None:
    """`tcp_host`: the listen host of a TCP listener, whose callers must look local (`check_local_caller`)."""
    async def license_api(request: Request) -> Response:
        method = METHODS.get(request.params["method"].lower())
        if method is None:
            return failure(404, f"Unknown license.api method; known methods: {', '.join(METHODS)}")
        if request.method not in ("GET", "POST"):
            return failure(405, "license.api accepts GET and POST")
        try:
            if tcp_host is not None:
                check_local_caller(request, tcp_host)
            authorise = lambda: _authorise_change(request, require_admin)  # noqa: E731
            if method.changes:
                authorise()
            return json_response(await method.run(agent, _fields(request), authorise))
        except Failure as exc:  # the server's render answers every other error in this API's words
            return failure(exc.status, exc.message)

    router.add("*", PREFIX + "{method}", license_api)
