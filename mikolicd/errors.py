"""What can go wrong, as kinds the callers branch on — never as HTTP statuses.

    MikolicdError                 kind, message for the admin, server_code
    ├── InputError                the request itself is wrong; nothing was sent anywhere
    ├── Forbidden                 the peer may not change the license
    ├── NotFound                  the thing asked for does not exist here
    ├── Conflict                  the request does not fit the current state
    ├── ServerRefused             the licensing server said no (a business code, e.g. 2008)
    ├── ServerUnreachable         no usable answer: network, TLS, overload, garbage
    ├── UntrustedAnswer           an answer arrived but cannot be trusted (signature, binding, nonce)
    └── StorageFailed             the state could not be written; nothing changed

The socket API (`api`) and the legacy `license.api` (`legacy`) map kinds to HTTP statuses and texts.
"""
from __future__ import annotations

from enum import Enum


class Kind(str, Enum):
    """The snake_case `error.code` of the socket API."""

    INVALID_INPUT = "invalid_input"
    INVALID_JSON = "invalid_json"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_REGISTRATION_NUMBER = "invalid_registration_number"
    INVALID_COUPON = "invalid_coupon"
    INVALID_OFFLINE_CODE = "invalid_offline_code"
    FORBIDDEN = "forbidden"
    NO_LICENSE = "no_license"
    UNKNOWN_SESSION = "unknown_session"
    ALREADY_LICENSED = "already_licensed"
    NOT_ACTIVATED = "not_activated"
    NUMBER_ACTIVE = "number_active"
    OFFLINE_NOT_REQUESTED = "offline_not_requested"
    SERVER_REFUSED = "server_refused"
    SERVER_REJECTED_INPUT = "server_rejected_input"
    SERVER_UNREACHABLE = "server_unreachable"
    DOCUMENT_REJECTED = "document_rejected"
    BAD_SERVER_ANSWER = "bad_server_answer"
    STORAGE_FAILED = "storage_failed"


class MikolicdError(Exception):
    kind: Kind

    def __init__(self, kind: Kind, message: str, server_code: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.server_code = kind, message, server_code


class InputError(MikolicdError):
    def __init__(self, message: str, kind: Kind = Kind.INVALID_INPUT):
        super().__init__(kind, message)


class Forbidden(MikolicdError):
    def __init__(self, message: str):
        super().__init__(Kind.FORBIDDEN, message)


class NotFound(MikolicdError):
    pass


class Conflict(MikolicdError):
    pass


class ServerRefused(MikolicdError):
    """A business answer: final, never retried. `refusal` is the signed refusal when the server sent one;
    no code means the server refused a field of the request (a 400 naming it, named in the message)."""

    def __init__(self, code: int | None, message: str, refusal: str | None = None):
        kind = Kind.SERVER_REJECTED_INPUT if code is None else Kind.SERVER_REFUSED
        super().__init__(kind, message, code)
        self.refusal = refusal


class ServerUnreachable(MikolicdError):
    """Says nothing about the license; `retry_after` is the server's own pause, for the schedule."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(Kind.SERVER_UNREACHABLE, message)
        self.retry_after = retry_after


class UntrustedAnswer(MikolicdError):
    pass


class StorageFailed(MikolicdError):
    def __init__(self, message: str):
        super().__init__(Kind.STORAGE_FAILED, message)
