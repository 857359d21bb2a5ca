"""`mikolicctl`: the admin's terminal client for the agent's socket."""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
from pathlib import Path
from typing import Any

from .config import DEFAULT_PATH as DEFAULT_CONFIG, Api

DEFAULT_SOCKET = Api().socket


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock: Path, method: str, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, Any]:
    conn = UnixConnection(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw or b"{}")
    except ValueError:
        return response.status, {"error": {"code": "bad_answer", "message": raw[:200].decode(errors="replace")}}


def _products(products: list[dict]) -> list[str]:
    lines = []
    for p in products:
        kind = "trial" if p.get("trial") else "license"
        lines.append(f"  product {p['id']} {p['name']}: {kind}, expires {p.get('expires') or 'never'}")
        for f in p.get("features", []):
            mark = "" if f.get("available", True) else " (not available)"
            lines.append(f"    feature {f['id']} {f['name']}: {f['count']} seat(s){mark}")
    return lines


def human_status(st: dict) -> str:
    lines = [f"state:          {st['state']} — {st['reason']}",
             f"registration:   {st.get('registration_number') or '-'}"]
    v = st.get("last_validation")
    if v:
        extra = f" ({v['message']})" if v.get("message") else ""
        lines.append(f"last check:     {v['at']} {v['outcome']}{extra}")
    lines.append(f"next check:     {st.get('next_validation') or '-'}")
    if st.get("grace_until"):
        lines.append(f"offline until:  {st['grace_until']}")
    fp = st.get("fingerprint") or {}
    if fp.get("bound"):
        lines.append(f"host binding:   {'holds' if fp.get('holds') else 'DOES NOT HOLD'} "
                     f"({fp.get('matched')} of {fp.get('required')} required ids match)")
    lines += _products(st.get("products", []))
    return "\n".join(lines)


def human_license(lic: dict) -> str:
    owner = lic.get("owner", {})
    lines = [f"registration:   {lic['registration_number']} ({lic.get('state')})",
             f"owner:          {owner.get('companyname')}, {owner.get('contact')} <{owner.get('email')}> "
             f"{owner.get('tel') or ''}".rstrip(),
             f"license id:     {lic['license_id']}"]
    return "\n".join(lines + _products(lic.get("products", [])))


def human_fingerprint(fp: dict) -> str:
    lines = [f"{c['name']:<15} {c['strength']:<7} {c['status']}" + (f"  ({c['reason']})" if c.get("reason") else "")
             for c in fp["components"]]
    if fp.get("bound"):
        lines.append(f"binding: {'holds' if fp.get('holds') else 'does NOT hold'}")
    if fp.get("note"):
        lines.append(f"note: {fp['note']}")
    return "\n".join(lines)


def _register_form(args: argparse.Namespace) -> dict:
    form = {"companyname": args.company, "email": args.email, "contact": args.contact,
            "tel": args.tel, "inn": args.inn}
    for key, prompt in (("companyname", "Company"), ("email", "E-mail"), ("contact", "Contact person")):
        if not form[key]:
            if not sys.stdin.isatty():
                raise SystemExit(f"mikolicctl: --{'company' if key == 'companyname' else key} is required")
            form[key] = input(f"{prompt}: ")
    return {k: v for k, v in form.items() if v}


COMMANDS: dict[str, tuple[str, str, Any]] = {
    "status": ("GET", "/v1/status", human_status),
    "license": ("GET", "/v1/license", human_license),
    "fingerprint": ("GET", "/v1/fingerprint", human_fingerprint),
    "register": ("POST", "/v1/registration", human_status),
    "activate": ("POST", "/v1/activation", human_status),
    "coupon": ("POST", "/v1/coupons", human_status),
    "validate": ("POST", "/v1/validation", human_status),
    "release": ("DELETE", "/v1/activation", human_status),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mikolicctl", description="Talk to the Miko PBX licensing agent")
    p.add_argument("--socket", type=Path, default=None,
                   help=f"agent socket (default {DEFAULT_SOCKET}; for doctor, [api] socket of --config)")
    p.add_argument("--json", action="store_true", help="print the API's JSON, for scripts")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("status", "license", "fingerprint", "validate", "release"):
        sub.add_parser(name)
    reg = sub.add_parser("register", help="register a 30-day trial for this host")
    reg.add_argument("--company", default="")
    reg.add_argument("--email", default="")
    reg.add_argument("--contact", default="")
    reg.add_argument("--tel", default="")
    reg.add_argument("--inn", default="")
    sub.add_parser("activate", help="activate a registration number").add_argument("number")
    sub.add_parser("coupon", help="redeem a coupon (MIKOUPD-…)").add_argument("coupon")
    sub.add_parser("doctor", help="run the checks support asks for when licensing fails").add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"the agent's configuration (default {DEFAULT_CONFIG})")
    return p


def doctor(args: argparse.Namespace) -> int:
    """Runs in this process, not in the agent: it must work when the agent is down or misconfigured."""
    from . import doctor as checks  # deferred: doctor calls back into this module's `call`
    found = checks.run(args.config, args.socket)
    ok = checks.passed(found)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [c.to_json() for c in found]}, indent=2, ensure_ascii=False))
    else:
        print(checks.human(found))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "doctor":
        return doctor(args)
    args.socket = args.socket or DEFAULT_SOCKET
    method, path, render = COMMANDS[args.command]
    body = {"register": lambda: _register_form(args),
            "activate": lambda: {"registration_number": args.number},
            "coupon": lambda: {"coupon": args.coupon}}.get(args.command, lambda: None)()
    try:
        status, answer = call(args.socket, method, path, body)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"mikolicctl: no agent is listening on {args.socket}: is mikolicd running? "
              f"(systemctl status mikolicd)", file=sys.stderr)
        return 3
    except PermissionError:
        print(f"mikolicctl: not allowed to open {args.socket}: run as root or as a member of the socket's group",
              file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"mikolicctl: talking to {args.socket} failed: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif status >= 400:
        err = answer.get("error", {})
        print(f"error: {err.get('message', answer)}", file=sys.stderr)
    else:
        print(render(answer))
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
