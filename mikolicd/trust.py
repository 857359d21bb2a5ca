"""What the agent may believe: the time it judges dates at, and which server answers count.

Pure: plain values in, decisions out; the agent applies them. docs/security.md explains each rule.

Time. The box's owner sets the wall clock at will, so the agent keeps a *trusted time*: the signed `iat`
of the last fresh answer, counted forward with CLOCK_BOOTTIME (which nobody can set, and which runs
through suspend) and checkpointed with the boot id. Dates are judged at max(wall clock, trusted time):
setting the clock back gains nothing, and a box whose clock is wrong keeps working without an alarm.

Answers. A document counts as a confirmation only when it verifies, is for this number, host and
installation, and carries the nonce of the request it answers; a validly signed document with another
nonce is a replay and counts as no answer. A refusal that ends trust counts only when it is signed and
carries the nonce, so nobody on the network path can switch a box's licensed features off.
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from .fingerprint.binding import Components, Match, match
from .jws import JWSError, TrustedKeys, verify
from .license import REFUSAL_TYPE, DocumentError, License, read_document
from .protocol import COPIED, FEATURE_EXPIRED, KEY_ERROR, NO_FREE_SEAT, clean_text

# Codes after which the box must stop trusting its license, when the refusal is signed and fresh.
TRUST_ENDING = frozenset({NO_FREE_SEAT, KEY_ERROR, FEATURE_EXPIRED, COPIED})
# The wall clock may lag the trusted time by this much before the status and the journal mention it.
CLOCK_NOTICE = 300.0
INTERCEPTION = "a proxy or firewall on the way may be answering in the licensing server's place"


class Reading(NamedTuple):
    wall: float  # Unix seconds, as the system clock says
    boottime: float  # seconds since this boot, suspend included
    boot_id: str  # tells this boot from the next: boot time restarts at zero


class Checkpoint(NamedTuple):
    """At boot `boot_id`, when CLOCK_BOOTTIME read `boottime`, the trusted time was `trusted`."""

    trusted: float
    boottime: float
    boot_id: str


def trusted_now(checkpoint: Checkpoint | None, now: Reading, floor: float = 0.0) -> float:
    """Counted on from the checkpoint within its boot; after a reboot the gap cannot be counted, so the
    checkpoint itself. Never before `floor` (the signed `iat` of the stored document)."""
    if checkpoint is None:
        return floor
    counted = checkpoint.trusted
    if now.boot_id == checkpoint.boot_id and now.boottime >= checkpoint.boottime:
        counted += now.boottime - checkpoint.boottime
    return max(counted, floor)


def judging_time(checkpoint: Checkpoint | None, now: Reading, floor: float = 0.0) -> float:
    return max(now.wall, trusted_now(checkpoint, now, floor))


def advanced(checkpoint: Checkpoint | None, now: Reading, floor: float = 0.0) -> Checkpoint:
    """The checkpoint to write now: the wall clock raises the trusted time, so a clock set back later
    cannot fall behind a time the box already saw."""
    return Checkpoint(judging_time(checkpoint, now, floor), now.boottime, now.boot_id)


def confirmed(iat: float, now: Reading) -> Checkpoint:
    """A fresh signed answer sets the trusted time to its `iat`, backwards too (a clock that ran ahead)."""
    return Checkpoint(float(iat), now.boottime, now.boot_id)


class ClockView(NamedTuple):
    trusted_time: float
    wall_behind_by: float  # seconds, 0 when the wall clock is not behind

    @property
    def behind(self) -> bool:
        return self.wall_behind_by > CLOCK_NOTICE


def clock_view(checkpoint: Checkpoint | None, now: Reading, floor: float = 0.0) -> ClockView:
    trusted = trusted_now(checkpoint, now, floor)
    return ClockView(max(trusted, now.wall), max(0.0, trusted - now.wall))


# ------------------------------------------------------------------------------------------- answers
class Sent(NamedTuple):
    """The request an answer answers: what the answer must repeat to count."""

    number: str | None  # None for a trial: the server chooses the number
    nonce: str
    install_id: str


class Accepted(NamedTuple):
    document: str  # exactly as received, to be stored
    license: License
    binding: Match


class Rejected(NamedTuple):
    """Not a usable document at all: forged, damaged, for another number, host or installation, stale."""

    reason: str


class Unconfirmed(NamedTuple):
    """Possibly genuine, but not an answer to this request (a replay, an unsigned refusal)."""

    reason: str


Judgement = Accepted | Rejected | Unconfirmed


def judge_document(document: object, sent: Sent, keys: TrustedKeys, components: Components,
                   wall: float) -> Judgement:
    """Its nonce proves the document fresh, so its dates are judged at its own `iat` or the wall clock, not
    at the trusted time: a box whose trusted time ran ahead (a clock that was wrong) is put right by it."""
    if not isinstance(document, str) or not document:
        return Rejected("the server sent no document")
    try:
        lic = read_document(document, keys)
    except DocumentError as exc:
        return Rejected(str(exc))
    if sent.number is not None and lic.registration_number != sent.number:
        return Rejected("the document is for another registration number")
    binding = match(lic.binding, components)
    if not binding.holds:
        return Rejected("the document is bound to different hardware")
    if lic.nonce != sent.nonce:
        return Unconfirmed("the answer repeats an earlier document instead of answering this request (its "
                           f"nonce is not this request's): {INTERCEPTION}")
    if lic.install_id != sent.install_id:
        return Rejected("the document is for another installation")
    if lic.exp <= max(wall, lic.issued_at):
        return Rejected("the document is already past its offline limit")
    return Accepted(str(document), lic, binding)


class Refusal(NamedTuple):
    """A signed refusal: the server's word that this license must no longer be used."""

    registration_number: str
    code: int
    message: str
    issued_at: int
    nonce: str


def read_refusal(token: object, keys: TrustedKeys) -> Refusal:
    """A signed refusal's claims; raises JWSError when it does not verify or is malformed."""
    claims = verify(token, keys, REFUSAL_TYPE)
    try:
        return Refusal(str(claims["registration_number"]), int(claims["code"]),
                       clean_text(str(claims.get("message", ""))), int(claims["iat"]), str(claims.get("nonce", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise JWSError(f"refusal claims are malformed: {exc!r}") from None


def judge_refusal(code: int | None, token: str | None, sent: Sent, keys: TrustedKeys) -> Refusal | Unconfirmed | None:
    """None: a refusal that leaves the license as it is (2026, 2051, …). A Refusal: trust ends. Unconfirmed:
    a trust-ending code without a valid signature or for another request, which counts as no answer."""
    if code not in TRUST_ENDING:
        return None
    try:
        refusal = read_refusal(token, keys)
    except JWSError as exc:
        return Unconfirmed(f"a refusal ({code}) arrived without a valid signature ({exc}): {INTERCEPTION}")
    if refusal.nonce != sent.nonce or refusal.code != code or refusal.registration_number != sent.number:
        return Unconfirmed(f"a signed refusal ({code}) arrived that answers another request: {INTERCEPTION}")
    return refusal


class Outcome(str, Enum):
    """How a validation ended, as the status and the metrics tell it."""

    OK = "ok"  # a fresh document
    UNREACHABLE = "unreachable"  # no answer
    UNCONFIRMED = "unconfirmed"  # an answer that cannot count: replayed, unsigned, untrusted
    REFUSED = "refused"  # a refusal that leaves the license as it is
    ENDED = "ended"  # a signed refusal: trust ended
