"""The copy-paste form of offline requests and answers: base32 blocks, each with its own check character.

An air-gapped box's request travels by hand (a USB stick, a phone photo, an e-mail typed from paper),
so the text is compressed and written in the RFC 4648 base32 alphabet, which has no 0/O or 1/I pairs, as
blocks of eight characters plus one check character. The check character depends on the block's
position too, so a mistyped, swapped or lost block is named before anything is sent anywhere, and a CRC-32
over the whole payload catches what slips through. Whitespace, dashes and case are ignored on input.
Pure: no I/O.
"""
from __future__ import annotations

import base64
import re
import zlib

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
BLOCK = 8
BLOCKS_PER_LINE = 6
VERSION = 1
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_LOOKALIKE = str.maketrans("018", "OIB")
_IGNORED = re.compile(r"[\s\-]+")
MAX_CODE = 64 * 1024


class CodeError(ValueError):
    """A code that cannot be read back; the message says where, so the admin can compare that part."""


def _check(block: str, index: int) -> str:
    """Odd weights make every single substitution change the sum mod 32; the index catches moved blocks."""
    total = index * 7 + sum((2 * i + 1) * _VALUE[c] for i, c in enumerate(block))
    return ALPHABET[total % 32]


def encode(text: str) -> str:
    """`text` (ASCII, e.g. a JWS) as lines of dash-separated blocks."""
    packed = zlib.compress(text.encode("ascii"), 9)
    payload = bytes([VERSION]) + len(packed).to_bytes(3, "big") + packed + zlib.crc32(packed).to_bytes(4, "big")
    data = base64.b32encode(payload).decode().rstrip("=")
    data += "A" * (-len(data) % BLOCK)  # zero bits after the payload, cut off by its length
    words = [data[i:i + BLOCK] + _check(data[i:i + BLOCK], i // BLOCK) for i in range(0, len(data), BLOCK)]
    return "\n".join("-".join(words[i:i + BLOCKS_PER_LINE]) for i in range(0, len(words), BLOCKS_PER_LINE))


def looks_like_code(text: str) -> bool:
    compact = _IGNORED.sub("", text).upper().translate(_LOOKALIKE)
    return bool(compact) and len(compact) % (BLOCK + 1) == 0 and all(c in _VALUE for c in compact)


def decode(code: str) -> str:
    """The text back; CodeError naming the first bad block, or the payload check, otherwise."""
    if len(code) > MAX_CODE:
        raise CodeError(f"the code is longer than {MAX_CODE // 1024} KiB: not an offline code")
    compact = _IGNORED.sub("", code).upper().translate(_LOOKALIKE)
    bad = sorted({c for c in compact if c not in _VALUE})
    if bad:
        raise CodeError(f"the code holds characters that are not in it ({''.join(bad)[:10]}): only A-Z and 2-7 "
                        "appear in an offline code")
    if not compact or len(compact) % (BLOCK + 1):
        raise CodeError(f"the code has {len(compact)} characters, not a whole number of {BLOCK + 1}-character "
                        "blocks: a character is missing or one too many; compare it with the original")
    blocks = [compact[i:i + BLOCK + 1] for i in range(0, len(compact), BLOCK + 1)]
    for n, word in enumerate(blocks):
        if _check(word[:BLOCK], n) != word[BLOCK]:
            line, column = divmod(n, BLOCKS_PER_LINE)
            raise CodeError(f"checksum error in block {n + 1} (line {line + 1}, block {column + 1}: {word}): a "
                            "character there is mistyped, or blocks are out of order; compare it with the original")
    payload = base64.b32decode("".join(word[:BLOCK] for word in blocks))
    size = int.from_bytes(payload[1:4], "big")
    if payload[:1] != bytes([VERSION]) or len(payload) < 8 + size:
        raise CodeError("this is not an offline code of this version")
    packed, crc = payload[4:4 + size], payload[4 + size:8 + size]
    if zlib.crc32(packed).to_bytes(4, "big") != crc:
        raise CodeError("the code's checksum does not match: a character is mistyped; compare it with the original")
    try:
        return zlib.decompress(packed).decode("ascii")
    except (zlib.error, UnicodeDecodeError):
        raise CodeError("the code does not decode: compare it with the original") from None
