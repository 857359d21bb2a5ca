"""A seat's token chain: which installation holds the seat, and which of its tokens still count.

Pure, so every row of the table in docs/protocol.md ("Installations, tokens and clones") is a plain-value
test. The server stores one `Chain` per seat and asks `judge` what a request may do with it.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum

from mikolicd.refserver.fields import Installation

TOKEN_BYTES = 24  # 192 bits: 32 base64url characters, inside the protocol's 64


@dataclass(frozen=True)
class Chain:
    """`parent` is the token `current` answered; None when that was a request without a token (a first
    activation): an agent that lost its very first answer presents None again, and that must pass."""

    install_id: str
    key: str
    current: str
    parent: str | None


class Verdict(Enum):
    ADOPT = "adopt"  # a seat from before installations existed: the first installation to ask holds it
    ROTATE = "rotate"  # `current` (the normal case) or `parent` (the last answer was lost)
    RESTART = "restart"  # an activation by the holder with a stale token: "this machine holds the seat"
    TAKEOVER = "takeover"  # an activation by another installation on the same host (a reinstall)
    COPIED = "copied"  # a stale token from the holder: a second live copy, or an old backup (2060)
    NOT_HOLDER = "not_holder"  # another installation holds this host's seat (2008)


def judge(chain: Chain | None, installation: Installation, explicit: bool) -> Verdict:
    """What a request may do with the seat; `explicit` for an activation (and a trial or offline answer)."""
    if chain is None:
        return Verdict.ADOPT
    if chain.install_id != installation.id:
        return Verdict.TAKEOVER if explicit else Verdict.NOT_HOLDER
    if installation.token in (chain.current, chain.parent):
        return Verdict.ROTATE
    return Verdict.RESTART if explicit else Verdict.COPIED


def advance(installation: Installation) -> Chain:
    """The chain after a document answer, whatever the verdict: the presented token becomes the parent."""
    return Chain(installation.id, installation.key, secrets.token_urlsafe(TOKEN_BYTES), installation.token)
