"""Names shared by the agent and the licensing server: paths, error codes, and advice for the admin."""
from __future__ import annotations

import re

TRIAL = "/api/v1/trial"
ACTIVATION = "/api/v1/activation"
VALIDATION = "/api/v1/validation"
RELEASE = "/api/v1/release"
COUPON = "/api/v1/coupon"
PRODUCT_TRIAL = "/api/v1/product-trial"
CAPTURE = "/api/v1/capture"
RELEASE_FEATURE = "/api/v1/release-feature"
METRICS = "/api/v1/metrics"
OFFLINE_RELEASE = "/api/v1/offline-release"
PING = "/api/v1/ping"

PBX_PRODUCT = 11  # MikoPBX
PBX_FEATURE = 33  # its seat: holding it is being activated

NO_FREE_SEAT = 2008
KEY_ERROR = 2009
FEATURE_EXPIRED = 2011
TRIAL_EMAIL_TAKEN = 2022
INVALID_NUMBER = 2026
COUPON_ERROR = 2037
COUPON_UNKNOWN = 2040
COUPON_USED = 2041
TRIAL_TAKEN = 2051
COUPON_BLOCKED = 2057
COPIED = 2060

# The server's own text, as the legacy PBX code knows it.
SERVER_TEXT = {
    NO_FREE_SEAT: "No free license features seat",
    KEY_ERROR: "License key error",
    FEATURE_EXPIRED: "License feature expired",
    TRIAL_EMAIL_TAKEN: "Trial refused: this email is already used for another company",
    INVALID_NUMBER: "Invalid registration number",
    COUPON_ERROR: "Coupon error",
    COUPON_UNKNOWN: "Coupon does not exist",
    COUPON_USED: "Coupon already activated",
    TRIAL_TAKEN: "You already get trial key on this host for other email/company",
    COUPON_BLOCKED: "Coupon blocked",
    COPIED: "This installation was copied: another copy of it holds the seat. Keep it on one machine: on the "
            "machine that should hold the seat run \"mikolicctl activate\" again, or ask for the binding to be reset",
}

# What the PBX admin can do about it.
ADVICE = {
    NO_FREE_SEAT: "This registration number is already bound to another host. Release it on the old "
                  "host (mikolicctl release), or ask Miko support to reset the binding, then activate again.",
    KEY_ERROR: "Ask Miko support why, or activate another registration number.",
    FEATURE_EXPIRED: "The license for this feature has ended. Renew it or redeem a coupon.",
    TRIAL_EMAIL_TAKEN: "This e-mail already registered a trial for another company. Use the same company "
                       "name, or another e-mail.",
    INVALID_NUMBER: "The licensing server does not know this registration number. Check it for typos.",
    COUPON_ERROR: "A coupon needs an activated registration number on this host: activate first.",
    COUPON_UNKNOWN: "The licensing server does not know this coupon. Check it for typos.",
    COUPON_USED: "This coupon was already redeemed; a coupon works only once.",
    TRIAL_TAKEN: "A trial was already issued on this host for another e-mail or company. Activate a "
                 "purchased registration number instead, or register with the first e-mail and company.",
    COUPON_BLOCKED: "This coupon is blocked. Contact Miko support.",
}

_UNPRINTABLE = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+"  # compiled at first use, not at start-up
MAX_TEXT = 300


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Text from the server, safe to store, log and serve: valid UTF-8 (lone surrogates replaced), one
    line, bounded. The server is trusted for licenses, not for well-formed strings."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return re.sub(_UNPRINTABLE, " ", text).strip()[:limit]


def explain(code: int | None, server_message: str) -> str:
    """The admin's message: the code in parentheses (legacy clients look for it), then what to do."""
    text = clean_text(server_message).rstrip(".")
    if code and text.startswith(f"({code})"):
        text = text[len(f"({code})"):].strip()  # the server's own text already names the code
    text = text or SERVER_TEXT.get(code or 0, "Licensing server error")
    head = f"({code}) {text}" if code else text
    advice = ADVICE.get(code or 0)
    return f"{head}. {advice}" if advice else head
