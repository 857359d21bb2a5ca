"""Firmware fills unset ids with vendor boilerplate; such a value would bind every such box alike."""
from __future__ import annotations

import re

_KNOWN = frozenset({
    "default string", "not specified", "not settable", "not present", "not available", "not applicable",
    "n/a", "na", "none", "null", "unknown", "empty", "invalid", "oem", "o.e.m.", "uninitialized",
    "<bad index>", "<out of spec>", "0123456789", "123456789", "1234567890",
    "serial number", "system serial number", "chassis serial number", "base board serial number",
    "board serial number", "sys serial number", "system serial", "default",
    # well-known UUIDs that many boards share
    "03000200-0400-0500-0006-000700080009", "00020003-0004-0005-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc",
})
_PREFIXES = ("to be filled", "default string", "system serial number")
# QEMU gives every emulated IDE/SATA disk the serial QM0000N unless told otherwise.
_GENERIC = re.compile(r"qm\d{5}")
_NOT_ID = re.compile(r"[^0-9a-z]")


def is_placeholder(value: str) -> bool:
    """Known boilerplate, or too few distinct characters to tell machines apart (`0`, `--`, `XXXX`, all-zero or
    all-`E` UUIDs)."""
    text = " ".join(value.split()).lower()
    if text in _KNOWN or text.startswith(_PREFIXES) or _GENERIC.fullmatch(text):
        return True
    return len(set(_NOT_ID.sub("", text))) < 3
