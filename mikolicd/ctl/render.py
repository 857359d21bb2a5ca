"""Human output: the agent's JSON answers as lines an admin reads at a terminal. Pure: no I/O."""
from __future__ import annotations

import re
from typing import Any

_SERVER_CODE = re.compile(r"\((20\d\d)\)\s*")  # the licensing server's codes are 2000-2099


def readable(text: str) -> str:
    """`(2026) Invalid …` reads like a year on a terminal: `error 2026: Invalid …` does not. The JSON and the
    legacy API keep the parenthesised form, which the PBX parses."""
    return _SERVER_CODE.sub(lambda m: f"error {m.group(1)}: ", text)


def error_line(answer: dict[str, Any]) -> str:
    err = answer.get("error")
    if not isinstance(err, dict):
        return f"error: {answer}"
    message = readable(str(err.get("message") or err.get("code") or "the agent refused without a message"))
    code = err.get("server_code")
    if not code:
        return f"error: {message}"
    return message if f"error {code}: " in message else f"error {code}: {message}"


def product_name(products: list[dict], product: Any) -> str:
    name = next((p.get("name") for p in products if p.get("id") == product), None)
    return f"product {product} {name}" if name else f"product {product}"


def warning(w: dict[str, Any], products: list[dict]) -> str:
    """A warning's own `message` when the agent gives one, else words built from its code and fields."""
    if w.get("message"):
        return str(w["message"])
    if w.get("code") == "expires_soon":
        days = w.get("days")
        return f"{product_name(products, w.get('product'))} ends in {days} day{'s' if days != 1 else ''}"
    fields = ", ".join(f"{k} {v}" for k, v in w.items() if k != "code")
    return f"{w.get('code', 'warning')}{': ' + fields if fields else ''}"


def products(items: list[dict]) -> list[str]:
    lines = []
    for p in items:
        kind = "trial" if p.get("trial") else "license"
        lines.append(f"  product {p['id']} {p['name']}: {kind}, expires {p.get('expires') or 'never'}")
        for f in p.get("features", []):
            mark = "" if f.get("available", True) else " (not available)"
            lines.append(f"    feature {f['id']} {f['name']}: {f['count']} seat(s){mark}")
    return lines


def status_text(st: dict[str, Any]) -> str:
    items = st.get("products", [])
    lines = [f"warning:        {warning(w, items)}" for w in st.get("warnings") or []]
    lines += [f"state:          {st['state']} — {readable(st['reason'])}",
              f"registration:   {st.get('registration_number') or '-'}"]
    v = st.get("last_validation")
    if v:
        text = readable(v.get("message") or "")
        lines.append(f"last check:     {v['at']} {v['outcome']}{f' ({text})' if text else ''}")
    lines.append(f"next check:     {st.get('next_validation') or '-'}")
    if st.get("grace_until"):
        lines.append(f"grace until:    {st['grace_until']} (the server was not reached; licensed until then)")
    clock = st.get("clock") or {}
    if clock.get("wall_behind_by_s"):
        lines.append(f"clock:          {clock['wall_behind_by_s'] / 3600:.1f} h behind the last trusted time "
                     f"{clock.get('trusted_time')}: set it (timedatectl set-ntp true)")
    fp = st.get("fingerprint") or {}
    if fp.get("bound"):
        lines.append(f"host binding:   {'holds' if fp.get('holds') else 'DOES NOT HOLD'} "
                     f"({fp.get('matched')} of {fp.get('required')} required ids match)")
    return "\n".join(lines + products(items))


def owner(who: dict[str, Any]) -> str:
    """Only the parts the license carries: a plain activation has no owner at all, shown as `-`."""
    name = ", ".join(str(who[k]) for k in ("companyname", "contact") if who.get(k))
    parts = [name, f"<{who['email']}>" if who.get("email") else "", str(who.get("tel") or "")]
    return " ".join(p for p in parts if p) or "-"


def license_text(lic: dict[str, Any]) -> str:
    lines = [f"registration:   {lic['registration_number']} ({lic.get('state')})",
             f"owner:          {owner(lic.get('owner') or {})}",
             f"license id:     {lic.get('license_id') or '-'}"]
    if lic.get("offline"):
        lines.append(f"offline until:  {lic.get('offline_until')} (an offline license: no server needed until then)")
    return "\n".join(lines + products(lic.get("products", [])))


def fingerprint_text(fp: dict[str, Any]) -> str:
    lines = [f"{c['name']:<15} {c['strength']:<7} {c['status']}" + (f"  ({c['reason']})" if c.get("reason") else "")
             for c in fp["components"]]
    if fp.get("bound"):
        lines.append(f"binding: {'holds' if fp.get('holds') else 'does NOT hold'}")
    if fp.get("note"):
        lines.append(f"note: {fp['note']}")
    return "\n".join(lines)


def changes_text(changed: list[dict[str, Any]]) -> str:
    """What a coupon did, one line per product whose end date moved."""
    if not changed:
        return "coupon accepted, but no product's end date changed"
    lines = []
    for c in changed:
        what = f"product {c['product']} {c.get('name') or ''}".rstrip()
        if c.get("after") is None:
            lines.append(f"coupon redeemed: {what} is termless now"
                         + (f" (it ran until {c['before']})" if c.get("before") else ""))
        else:
            lines.append(f"coupon redeemed: {what} now runs until {c['after']}"
                         + (f" (until {c['before']} before)" if c.get("before") else " (it was termless)"))
    return "\n".join(lines)

