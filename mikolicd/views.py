"""The JSON the socket API answers, built from plain values: what the web admin and mikolicctl read.

Registration numbers are masked here (the full number is the owner's secret); raw hardware ids never
reach this module, only match states.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from . import __version__, lifecycle, regnum
from .alerts import Alert
from .fingerprint.binding import COMPONENTS, STRONG, Components, Hardware, Match, match
from .lifecycle import FeatureStatus, Validation, Verdict, feature_status
from .license import License, Product
from .trust import ClockView


def iso(ts: float | None) -> str | None:
    return lifecycle.iso(ts) if ts else None


def clock_json(view: ClockView) -> dict[str, Any]:
    return {"trusted_time": lifecycle.iso(view.trusted_time), "wall_behind_by_s": round(view.wall_behind_by)}


class Binding(NamedTuple):
    """How the stored license's binding fares on this host's current components."""

    match: Match | None  # None: no license, nothing bound
    components: Components

    @property
    def strong_present(self) -> int:
        return sum(1 for n in STRONG if n in self.components)

    def summary(self) -> dict[str, Any]:
        summary = (self.match or match({}, self.components)).summary()
        summary["bound"] = self.match is not None
        if self.match is None:
            summary["holds"] = None
        summary["strong_present"] = self.strong_present
        summary["degraded"] = self.degraded  # unbound: judged on what the host has, as the warning is
        return summary

    @property
    def degraded(self) -> bool:
        return self.match.degraded if self.match is not None else self.strong_present < 2


def products(verdict: Verdict, lic: License | None) -> list[dict[str, Any]]:
    return [{"id": p.id, "name": p.name, "trial": p.trial, "expires": p.expires.isoformat() if p.expires else None,
             "features": [{"id": f.id, "name": f.name, "count": f.count,
                           "available": feature_status(verdict, lic, f.id).available} for f in p.features]}
            for p in (lic.products if lic else ())]


def validation(v: Validation | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"at": iso(v.at), "outcome": v.outcome.value, "server_code": v.server_code, "message": v.message}


def status(verdict: Verdict, number: str | None, lic: License | None, last: Validation | None,
           next_check: float | None, clock: ClockView, warnings: list[Alert], binding: Binding,
           install_id: str) -> dict[str, Any]:
    return {
        "state": verdict.state.value,
        "reason": verdict.reason,
        "registration_number": regnum.mask(number or "") or None,
        "products": products(verdict, lic),
        "last_validation": validation(last),
        "next_validation": iso(next_check),
        "grace_until": iso(verdict.grace_until),
        "offline_until": iso(lic.exp) if lic else None,
        "offline": bool(lic and lic.offline),
        "clock": clock_json(clock),
        "warnings": [w.to_json() for w in warnings],
        "fingerprint": binding.summary(),
        "installation": install_id[:12],
        "version": __version__,
    }


def license_view(lic: License, verdict: Verdict) -> dict[str, Any]:
    view = lic.to_json()
    view["registration_number"] = regnum.mask(lic.registration_number)
    view["offline"] = lic.offline
    view["state"] = verdict.state.value
    return view


def feature(status: FeatureStatus) -> dict[str, Any]:
    return {"id": status.id, "available": status.available, "reason": status.reason, "expires": status.expires}


def fingerprint(binding: Binding, hardware: Hardware) -> dict[str, Any]:
    summary = binding.summary()
    return {
        "components": [{"name": name, "strength": "strong" if name in STRONG else "weak",
                        "status": summary["components"][name], "reason": hardware.missing.get(name)}
                       for name in COMPONENTS],
        "holds": summary["holds"],
        "bound": summary["bound"],
        "degraded": binding.degraded,
        "note": ("fewer than two strong hardware ids were found (container or board without DMI): "
                 "the binding rests on what this host has") if binding.degraded else None,
    }


def changed_products(before: License | None, after: License) -> list[dict[str, Any]]:
    """What a coupon changed: each product whose end date moved (None = termless)."""
    old: dict[int, Product] = {p.id: p for p in before.products} if before else {}
    out = []
    for p in after.products:
        previous = old.get(p.id)
        was = previous.expires if previous else None
        if previous is None or was != p.expires or previous.trial != p.trial:
            out.append({"product": p.id, "name": p.name, "before": was.isoformat() if was else None,
                        "after": p.expires.isoformat() if p.expires else None, "trial": p.trial})
    return out
