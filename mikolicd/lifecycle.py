"""The license state machine: from plain facts to one state and a reason. No I/O here.

The time the dates are judged at comes from `trust` (never earlier than a time the box already trusted),
so nothing here reads a clock. docs/states.md lists the rules in this order.
"""
from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import NamedTuple

from .fingerprint.binding import Match
from .license import License, Product
from .protocol import FEATURE_EXPIRED, PBX_PRODUCT
from .trust import Outcome


class LicenseState(str, Enum):
    UNLICENSED = "unlicensed"
    PENDING = "pending"
    ACTIVE = "active"
    TRIAL = "trial"
    GRACE = "grace"
    EXPIRED = "expired"
    INVALID = "invalid"


USABLE = {LicenseState.ACTIVE, LicenseState.TRIAL, LicenseState.GRACE}


class Validation(NamedTuple):
    """The last answer (or silence) of the licensing server. Unsigned, so it only ever shortens trust:
    whatever it says, the document's own `exp` bounds how long the license is used."""

    at: float
    outcome: Outcome
    server_code: int | None = None
    message: str = ""


class Facts(NamedTuple):
    registration_number: str | None
    license: License | None
    document_error: str | None  # why the stored document is not trusted
    binding: Match | None
    validation: Validation | None
    judged_at: float  # `trust.judging_time`
    released: bool = False  # the seat was given back on purpose


class Verdict(NamedTuple):
    state: LicenseState
    reason: str
    judged_at: float
    grace_until: float | None = None

    @property
    def usable(self) -> bool:
        return self.state in USABLE


def day_of(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def iso(ts: float) -> str:
    """A Unix time as the API and the messages write it: UTC, to the second."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def ended(product: Product, judged_at: float) -> bool:
    """A product is usable through its `expires` day (UTC)."""
    return product.expires is not None and day_of(judged_at) > product.expires


def evaluate(facts: Facts) -> Verdict:
    def verdict(state: LicenseState, reason: str, grace_until: float | None = None) -> Verdict:
        return Verdict(state, reason, facts.judged_at, grace_until)

    S = LicenseState
    if not facts.registration_number:
        return verdict(S.UNLICENSED, "no registration number: register a trial or activate a number")
    v = facts.validation
    if v is not None and v.outcome is Outcome.ENDED:
        return verdict(S.EXPIRED if v.server_code == FEATURE_EXPIRED else S.INVALID,
                       f"the licensing server refused the license: {v.message}")
    if facts.document_error:
        return verdict(S.INVALID, facts.document_error)
    lic = facts.license
    if lic is None or lic.registration_number != facts.registration_number:
        if facts.released:
            return verdict(S.PENDING, "the seat was given back: this host holds no license until the number is "
                                      "activated again")
        return verdict(S.PENDING, "the registration number is not activated on this host yet: activate it")
    if facts.binding is not None and not facts.binding.holds:
        return verdict(S.INVALID, "binding mismatch: the license is bound to different hardware")
    if facts.judged_at >= lic.exp:
        if lic.offline:
            return verdict(S.EXPIRED, f"the offline license ended at {iso(lic.exp)}: apply a new offline answer")
        return verdict(S.EXPIRED, "the license could not be confirmed with the licensing server in time")
    pbx = lic.product(PBX_PRODUCT)
    if pbx is not None and ended(pbx, facts.judged_at):
        kind = "trial" if pbx.trial else "license"
        return verdict(S.EXPIRED, f"the {kind} ended on {pbx.expires.isoformat() if pbx.expires else ''}")
    if lic.offline:
        return verdict(S.ACTIVE, f"offline license until {iso(lic.exp)}")
    if v is not None and v.outcome is not Outcome.OK:
        return verdict(S.GRACE, f"no confirmation from the licensing server ({v.message}); working offline until "
                                f"{iso(lic.exp)}", float(lic.exp))
    if pbx is not None and pbx.trial:
        return verdict(S.TRIAL, f"trial until {pbx.expires.isoformat() if pbx.expires else 'further notice'}")
    return verdict(S.ACTIVE, "license confirmed")


class FeatureStatus(NamedTuple):
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
    if ended(product, verdict.judged_at):
        return FeatureStatus(feature_id, False, f"{product.name} ended on {expires}", expires)
    return FeatureStatus(feature_id, True, "licensed", expires)


def boundaries(lic: License | None, judged_at: float) -> list[float]:
    """The instants after `judged_at` at which time alone changes the verdict: the offline limit and the
    first second after each product's last day. The agent wakes then, and not before."""
    if lic is None:
        return []
    ends = [float(lic.exp)]
    for p in lic.products:
        if p.expires is not None:
            ends.append(dt.datetime.combine(p.expires + dt.timedelta(days=1), dt.time(),
                                            dt.timezone.utc).timestamp())
    return sorted(t for t in ends if t > judged_at)
