"""What the admin should hear about before it bites: products ending, the offline window closing, the clock
behind, a fingerprint resting on too little. Pure; the agent puts `warnings` in the status and writes one
journal entry per threshold crossed, remembering which it already wrote so restarts do not repeat them.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from .license import License
from .lifecycle import Verdict, day_of
from .trust import ClockView

THRESHOLDS = (30, 7, 1)  # days left at which a product's end is announced
OFFLINE_NOTICE = 7 * 86400.0  # an online document's window closing
OFFLINE_LICENSE_NOTICE = 30 * 86400.0  # an offline license's


class Alert(NamedTuple):
    code: str
    message: str
    product: int | None = None
    days: int | None = None  # days left, the last day counted
    seconds: int | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


def days_left(expires: dt.date, judged_at: float) -> int:
    """1 on the last day, 0 once it has passed."""
    return (expires - day_of(judged_at)).days + 1


def alerts(verdict: Verdict, lic: License | None, clock: ClockView, degraded: bool) -> list[Alert]:
    found: list[Alert] = []
    if lic is not None and verdict.usable:
        for p in lic.products:
            if p.expires is None:
                continue
            left = days_left(p.expires, verdict.judged_at)
            if 0 < left <= THRESHOLDS[0]:
                found.append(Alert("expires_soon", f"{p.name} ends on {p.expires.isoformat()} ({left} day(s) "
                                   "left): renew it or redeem a coupon", p.id, left))
        window = lic.exp - verdict.judged_at
        if 0 < window <= (OFFLINE_LICENSE_NOTICE if lic.offline else OFFLINE_NOTICE):
            what = "the offline license ends" if lic.offline else "the license stops working unless the " \
                                                                  "licensing server confirms it"
            found.append(Alert("offline_window_ending", f"{what} in {window / 86400:.1f} day(s)",
                               seconds=round(window)))
    if clock.behind:
        found.append(Alert("clock_behind", f"the system clock is {clock.wall_behind_by / 3600:.1f} h behind the "
                           "last trusted time: dates are judged at the trusted time; fix the clock (NTP)",
                           seconds=round(clock.wall_behind_by)))
    if degraded:
        found.append(Alert("fingerprint_degraded", "fewer than two strong hardware ids identify this host "
                           "(a container or a board without DMI): the binding rests on what it has"))
    return found


def crossed(lic: License | None, judged_at: float, announced: frozenset[str]) -> list[tuple[str, int, int]]:
    """(key, product, threshold) of every threshold passed and not yet announced. The key names the
    product's end date, so a renewal arms the thresholds again."""
    new = []
    for p in lic.products if lic is not None else ():
        if p.expires is None:
            continue
        left = days_left(p.expires, judged_at)
        for threshold in THRESHOLDS:
            key = f"{p.id}:{p.expires.isoformat()}:{threshold}"
            if 0 < left <= threshold and key not in announced:
                new.append((key, p.id, threshold))
    return new
