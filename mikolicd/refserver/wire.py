"""Names of the second protocol that the shared modules do not define yet.

They belong beside their peers (`mikolicd.protocol` for codes and paths, `mikolicd.license` for token
types); until both sides use them from there, the server keeps them here.
"""
from __future__ import annotations

COPIED = 2060
OFFLINE_RELEASE = "/api/v1/offline-release"
OFFLINE_REQUEST_TYPE = "mikolic-offline-request+jwt"
RELEASE_RECEIPT_TYPE = "mikolic-release-receipt+jwt"
COPIED_MESSAGE = ('(2060) This installation was copied: another copy of it holds the seat. Keep it on one machine: '
                  'on the machine that should hold the seat run "mikolicctl activate" again, or ask for the binding '
                  'to be reset.')
