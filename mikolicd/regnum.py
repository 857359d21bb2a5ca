"""Registration numbers and coupons: the admin types them, so normalise, check and mask them here."""
from __future__ import annotations

import re

REGNUM_RE = re.compile(r"MIKO(?:-[A-Z0-9]{5}){4}")
COUPON_RE = re.compile(r"MIKOUPD(?:-[A-Z0-9]{5}){4}")
_ANY_NUMBER = re.compile(r"\b(MIKO(?:UPD)?-[A-Z0-9]{5})((?:-[A-Z0-9]{5}){1,3})", re.IGNORECASE)


class FormatError(ValueError):
    """Input that can never be valid: refused locally, no server call."""


def _normalise(text: object, pattern: re.Pattern[str], what: str, example: str) -> str:
    if not isinstance(text, str):
        raise FormatError(f"the {what} must be a string like {example}")
    value = text.strip().upper()
    if not pattern.fullmatch(value):
        raise FormatError(f"that is not a {what}: expected {example} (letters A-Z and digits)")
    return value


def registration_number(text: object) -> str:
    return _normalise(text, REGNUM_RE, "registration number", "MIKO-XXXXX-XXXXX-XXXXX-XXXXX")


def coupon(text: object) -> str:
    return _normalise(text, COUPON_RE, "coupon", "MIKOUPD-XXXXX-XXXXX-XXXXX-XXXXX")


def _masked(m: re.Match[str]) -> str:
    if m.group(0).upper().endswith("XXXXX-XXXXX-XXXXX"):
        return m.group(0)  # the format hint itself (MIKO-XXXXX-…), not a number
    return m.group(1) + re.sub(r"[A-Z0-9]", "*", m.group(2).upper())


def mask(text: str) -> str:
    """Keep the first group so support can tell numbers apart, hide the rest (also inside longer text)."""
    return _ANY_NUMBER.sub(_masked, text)
