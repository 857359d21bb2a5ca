"""HTTP statuses of the error kinds: one table for the socket API and the legacy license.api."""
from __future__ import annotations

from .errors import Kind, MikolicdError
from .protocol import NO_FREE_SEAT

STATUS: dict[Kind, int] = {
    Kind.INVALID_INPUT: 400, Kind.INVALID_JSON: 400, Kind.UNKNOWN_FIELD: 400,
    Kind.INVALID_REGISTRATION_NUMBER: 400, Kind.INVALID_COUPON: 400, Kind.INVALID_OFFLINE_CODE: 400,
    Kind.FORBIDDEN: 403, Kind.NO_LICENSE: 404, Kind.UNKNOWN_SESSION: 404,
    Kind.ALREADY_LICENSED: 409, Kind.NOT_ACTIVATED: 409, Kind.NUMBER_ACTIVE: 409, Kind.OFFLINE_NOT_REQUESTED: 409,
    Kind.SERVER_REFUSED: 422, Kind.SERVER_REJECTED_INPUT: 422, Kind.SERVER_UNREACHABLE: 503,
    Kind.DOCUMENT_REJECTED: 502, Kind.BAD_SERVER_ANSWER: 502, Kind.STORAGE_FAILED: 507,
}
SEAT_TAKEN = 409  # 2008: the number is bound elsewhere, a conflict the admin resolves


def status_of(error: MikolicdError) -> int:
    if error.kind is Kind.SERVER_REFUSED and error.server_code == NO_FREE_SEAT:
        return SEAT_TAKEN
    return STATUS[error.kind]
