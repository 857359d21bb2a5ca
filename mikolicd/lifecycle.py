"""The license state machine: from plain facts to one state and a reason. No I/O here."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import Enum

from .fingerprint import Match
from .license import License
from .store import Validation

PBX_PRODUCT = 11
PBX_FEATURE = 33
# Before this instant the clock is unset (a box booting at 1970), not tampered with.
PLAUSIBLE_SINCE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp()
# NTP steps and DST never move UTC back this far; a clock rolled back by days does.
CLOCK_TOLERANCE = 2 * 3600.0
# Server answers that end trust in the document (anything else refused keeps the last state).
EXPIRED_CODES = {2011}


class LicenseState(str, Enum):
    UNLICENSED = "unlicensed"
    PENDING = "pending"
    ACTIVE = "active"
    TRIAL = "trial"
    GRACE = "grace"
    EXPIRED = "expired"
    INVALID = "invalid"


USABLE = {LicenseState.ACTIVE, LicenseState.TRIAL, LicenseState.GRACE}


@dataclass(frozen=True)
class Facts:
    registration_number: str | None
    license: License | None
    document_error: str | None  # why the stored document is not trusted
    binding: Match | None
    validation: Validation | None
    now: float
    clock_high_water: float


@dataclass(frozen=True)
class Verdict:
    state: LicenseState
    reason: str
    grace_until: float | None = None
    clock_unknown: bool = False
    judged_at: float = 0.0  # the effective time the dates were judged at

    @property
    def usable(self) -> bool:
        return self.state in USABLE


def effective_time(facts: Facts) -> tuple[float, bool]:
    """The time dates are judged at: never before what the server signed or what this box has seen."""
    signed = facts.license.issued_at if facts.license else 0.0
    if facts.now < PLAUSIBLE_SINCE:
        return max(facts.clock_high_water, signed), True
    return max(facts.now, signed), False


def _day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def evaluate(facts: Facts) -> Verdict:
    """The verdict, stamped with the time its dates were judged at, so feature checks use the same clock."""
    return replace(_judge(facts), judged_at=effective_time(facts)[0])


def _judge(facts: Facts) -> Verdict:
    S = LicenseState
    if not facts.registration_number:
        return Verdict(S.UNLICENSED, "no registration number: register a trial or activate a number")
    now, unknown = effective_time(facts)
    if not unknown and facts.now < facts.clock_high_water - CLOCK_TOLERANCE:
        hours = (facts.clock_high_water - facts.now) / 3600
        return Verdict(S.INVALID, f"the system clock was moved back by {hours:.0f} h: fix the clock (NTP)")
    if facts.document_error:
        return Verdict(S.INVALID, facts.document_error)
    lic = facts.license
    if lic is None or lic.registration_number != facts.registration_number:
        return Verdict(S.PENDING, "registration number not activated on this host yet")
    if facts.binding is not None and not facts.binding.holds:
        return Verdict(S.INVALID, "binding mismatch: the license is bound to different hardware")
    v = facts.validation
    if v is not None and v.outcome == "refused":
        state = S.EXPIRED if v.server_code in EXPIRED_CODES else S.INVALID
        return Verdict(state, f"licensing server refused the license: {v.message}")
    if now >= lic.exp:
        return Verdict(S.EXPIRED, "the license could not be confirmed with the licensing server in time")
    pbx = lic.product(PBX_PRODUCT)
    if pbx is not None and pbx.expires is not None and _day(now) > pbx.expires:
        kind = "trial" if pbx.trial else "license"
        return Verdict(S.EXPIRED, f"the {kind} ended on {pbx.expires.isoformat()}")
    if v is not None and v.outcome == "unreachable":
        return Verdict(S.GRACE, f"no usable answer from the licensing server ({v.message}); working offline",
                       float(lic.exp), unknown)
    if pbx is not None and pbx.trial:
        return Verdict(S.TRIAL, f"trial until {pbx.expires.isoformat() if pbx.expires else 'further notice'}",
                       clock_unknown=unknown)
    return Verdict(S.ACTIVE, "license confirmed", clock_unknown=unknown)


@dataclass(frozen=True)
class FeatureStatus:
    id: int
    available: bool
    reason: str
    expires: str | None


def feature_status(verdict: Verdict, lic: License | None, feature_id: int) -> FeatureStatus:
    """Answered from the local license only, so it works offline; dates at the verdict's own time."""
    found = lic.feature(feature_id) if lic is not None else None
    if found is None:
        return FeatureStatus(feature_id, False, f"feature {feature_id} is not in the license", None)
    product, _ = found
    expires = product.expires.isoformat() if product.expires else None
    if not verdict.usable:
        return FeatureStatus(feature_id, False, f"license is {verdict.state.value}: {verdict.reason}", expires)
    if product.expires is not None and _day(verdict.judged_at) > product.expires:
        return FeatureStatus(feature_id, False, f"{product.name} ended on {expires}", expires)
    return FeatureStatus(feature_id, True, "licensed", expires)
