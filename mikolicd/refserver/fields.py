"""The fields of a request body, checked against the limits of docs/protocol.md before any rule runs.

Pure: a body (already decoded JSON) in, typed values out, or a FieldError naming the field and its
limit, which the server answers with 400 so the agent reports a refusal of that input, not an outage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mikolicd import forms
from mikolicd.fingerprint import Components
from mikolicd.forms import TrialForm
from mikolicd.installation import install_id
from mikolicd.jws import MAX_TOKEN, b64url_decode, b64url_encode

MAX_TEXT = 256
MAX_ITEMS = 64
TOKEN_CHARS = 64
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX32 = re.compile(r"[0-9a-f]{32}")


class FieldError(ValueError):
    """A malformed request: `field` is the name the agent shows, None when the body as a whole is wrong."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Installation:
    """Who is asking: an installation's id, its Ed25519 public key (base64url) and the token it holds."""

    id: str
    key: str
    token: str | None


@dataclass(frozen=True)
class Caller:
    """What every host-scoped request carries besides its own fields."""

    host: Components
    nonce: str
    installation: Installation

    @property
    def install_id(self) -> str:
        return self.installation.id


def _string(value: object, name: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise FieldError(name, f"{name} must be a string of at most {limit} characters")
    if not forms.is_unicode(value):
        raise FieldError(name, f"{name} is not valid Unicode text (a lone surrogate)")
    return value


def text(body: dict, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if value is None:
        raise FieldError(name, f"{name} is required")
    value = _string(value, name, limit)
    if required and not value.strip():
        raise FieldError(name, f"{name} is required")
    return value


def integer(body: dict, name: str, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 31:
        raise FieldError(name, f"{name} must be a whole number from 1 to {2 ** 31 - 1}")
    return value


def number(body: dict) -> object:
    """The registration number as sent: its format is the licensing rules' to judge (2026), its size is ours."""
    if "registration_number" not in body:
        raise FieldError("registration_number", "registration_number is required")
    value = body["registration_number"]
    if isinstance(value, str):
        _string(value, "registration_number")
    return value


_COMPONENT_RULE = (f"each host component must be a hash of 1 to {MAX_TEXT} characters, or for nic a list of 1 to "
                   f"{MAX_ITEMS} of them")


def _hash(value: object) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= MAX_TEXT):
        raise FieldError("host", _COMPONENT_RULE)
    return _string(value, "host")


def _component(value: object) -> str | list[str]:
    if isinstance(value, list) and 0 < len(value) <= MAX_ITEMS:
        return sorted(_hash(v) for v in value)  # one spelling of a set, so hosts compare as plain values
    return _hash(value)


def host(value: object) -> Components:
    components = value.get("components") if isinstance(value, dict) else None
    if not isinstance(components, dict) or not 0 < len(components) <= MAX_ITEMS:
        raise FieldError("host", f'host must be {{"components": {{NAME: HASH, ...}}}} with 1 to {MAX_ITEMS} '
                                 "components")
    return {_string(name, "host"): _component(part) for name, part in components.items()}


def _b64url(value: object, name: str, size: int, what: str = "") -> bytes:
    """`size` raw bytes in base64url without padding, in its one canonical spelling; `what` names the part
    of field `name` it is, for the message."""
    spelled = len(b64url_encode(bytes(size)))
    if isinstance(value, str) and len(value) == spelled and _B64URL.fullmatch(value):
        raw = b64url_decode(value)
        if b64url_encode(raw) == value:
            return raw
    raise FieldError(name, f"{what or name} must be {size} bytes in base64url without padding ({spelled} "
                           "characters)")


def nonce(value: object) -> str:
    _b64url(value, "nonce", 32)
    return str(value)


def installation(value: object) -> Installation:
    if not isinstance(value, dict):
        raise FieldError("installation", 'installation must be {"id": ID, "key": KEY, "token": TOKEN or null}')
    key = _b64url(value.get("key"), "installation", 32, "installation key")
    ident, token = value.get("id"), value.get("token")
    if not isinstance(ident, str) or not _HEX32.fullmatch(ident):
        raise FieldError("installation", "installation id must be 32 lower-case hex digits")
    if ident != install_id(key):
        raise FieldError("installation", "installation id is not the key's: it must be the first 32 hex digits of "
                                         "SHA-256 of the key's 32 bytes")
    if token is not None and not (isinstance(token, str) and len(token) <= TOKEN_CHARS and _B64URL.fullmatch(token)):
        raise FieldError("installation", f"installation token must be null or base64url of at most {TOKEN_CHARS} "
                                         "characters")
    return Installation(ident, str(value["key"]), token)


def caller(body: dict) -> Caller:
    return Caller(host(body.get("host")), nonce(body.get("nonce")), installation(body.get("installation")))


def trial_form(body: dict) -> TrialForm:
    """The agent's own rules (`mikolicd.forms`): what one refuses, the other refuses too."""
    try:
        return forms.trial_form({name: body[name] for name in forms.FIELDS if name in body})
    except forms.FormError as exc:
        raise FieldError(exc.field, str(exc)) from None


def metrics(body: dict) -> dict[str, str]:
    value = body.get("fields", {})
    if not isinstance(value, dict) or len(value) > MAX_ITEMS:
        raise FieldError("fields", f"fields must be an object of at most {MAX_ITEMS} names")
    return {_string(k, "fields"): _string(v, "fields") for k, v in value.items()}


def receipt(body: dict) -> str:
    return text(body, "receipt", required=True, limit=MAX_TOKEN)
