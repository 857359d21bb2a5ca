"""What the licensing server decides: trials, seats, coupons and the signed documents it hands out.

The rules are small pure functions; `Licensing` applies them to the database, one transaction per call.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mikolicd import regnum
from mikolicd.protocol import (COUPON_BLOCKED, COUPON_ERROR, COUPON_UNKNOWN, COUPON_USED, FEATURE_EXPIRED,
                               INVALID_NUMBER, KEY_ERROR, NO_FREE_SEAT, SERVER_TEXT, TRIAL_EMAIL_TAKEN, TRIAL_TAKEN)
from mikolicd.fingerprint import Components, match
from mikolicd.refserver.db import Capture, Database, FeatureRow, LicenseRow, Owner, ProductRow
from mikolicd.refserver.signing import Signer

log = logging.getLogger("mikolicd.refserver")

ISSUER = "mikolic-server"
TRIAL_DAYS = 30
PRODUCT_NAMES = {11: "MikoPBX"}
FEATURE_NAMES = {33: "MikoPBX"}
SEAT_FEATURES = {11: 33}
_ALPHABET = string.ascii_uppercase + string.digits


class ProtocolError(Exception):
    """An answer the client must not retry; `code` is the protocol's error code, None for a malformed request."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refusal(code: int, detail: str = "") -> ProtocolError:
    """The server's usual text for `code`, with what exactly went wrong."""
    return ProtocolError(code, f"{SERVER_TEXT[code]}: {detail}" if detail else SERVER_TEXT[code])


class AdminError(Exception):
    """An admin command that cannot be carried out (unknown number or coupon)."""


@dataclass(frozen=True)
class TrialForm:
    companyname: str
    email: str
    contact: str
    tel: str = ""
    inn: str = ""
    description: str = ""


def product_name(product: int) -> str:
    return PRODUCT_NAMES.get(product, f"Module {product}")


def feature_name(feature: int) -> str:
    return FEATURE_NAMES.get(feature, f"Feature {feature}")


def seat_feature(product: int) -> int:
    """The feature an activation captures; a module's seat feature shares the module's id."""
    return SEAT_FEATURES.get(product, product)


def _random(prefix: str) -> str:
    return "-".join([prefix] + ["".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(4)])


def new_number() -> str:
    return _random("MIKO")


def new_coupon() -> str:
    return _random("MIKOUPD")


def holder(captures: tuple[Capture, ...], feature: int, host: Components) -> Capture | None:
    """The capture of `feature` that this host already holds, by the fingerprint binding rule."""
    return next((c for c in captures if c.feature == feature and match(c.host, host).holds), None)


def expired(product: ProductRow, today: dt.date) -> bool:
    """A product is usable through its `expires` day."""
    return product.expires is not None and today > product.expires


def extended(expires: dt.date | None, days: int | None, today: dt.date) -> dt.date | None:
    """A termless coupon (days None) removes the end date; otherwise add days to what is left, or to today."""
    if days is None or expires is None:
        return None
    return max(expires, today) + dt.timedelta(days=days)


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def claims(lic: LicenseRow, host: Components, iat: int, ttl: int) -> dict:
    captured: dict[int, int] = {}
    for c in lic.captures:
        captured[c.feature] = captured.get(c.feature, 0) + 1
    return {
        "iss": ISSUER,
        "registration_number": lic.number,
        "license_id": lic.license_id,
        "owner": {"companyname": lic.owner.companyname, "contact": lic.owner.contact,
                  "email": lic.owner.email, "tel": lic.owner.tel},
        "binding": {"components": host},
        "iat": iat,
        "exp": iat + ttl,
        "products": [{"id": p.id, "name": product_name(p.id), "trial": p.trial,
                      "expires": p.expires.isoformat() if p.expires else None,
                      "features": [{"id": f.id, "name": feature_name(f.id), "count": f.count, "counteach": 0,
                                    "captured": captured.get(f.id, 0)} for f in p.features]}
                     for p in lic.products],
    }


class Licensing:
    def __init__(self, db: Database, signer: Signer, document_ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.signer = signer
        self.document_ttl = document_ttl
        self.clock = clock
        self.echo: dict = {}  # the request's nonce and installation, signed into its document

    def _now(self) -> int:
        return int(self.clock())

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).date()

    def _license(self, number: object) -> LicenseRow:
        try:
            normal = regnum.registration_number(number)
        except regnum.FormatError as exc:
            raise refusal(INVALID_NUMBER, str(exc)) from None
        lic = self.db.license(normal)
        if lic is None:
            raise refusal(INVALID_NUMBER, "no such license")
        if lic.revoked:
            raise refusal(KEY_ERROR, "this registration number has been revoked")
        return lic

    def _document(self, number: str, host: Components) -> str:
        lic = self.db.license(number)
        assert lic is not None, "the license was read in the same transaction"
        return self.signer.sign(dict(claims(lic, host, self._now(), self.document_ttl), **self.echo))

    def _touch(self, lic: LicenseRow, capture: Capture, host: Components) -> None:
        """Remember the host as it looks now, so a binding follows parts replaced one at a time."""
        self.db.refresh_capture(capture.session, host, self._now())
        if lic.trial_host is not None and match(lic.trial_host, host).holds:
            self.db.set_trial_host(lic.number, host)

    def _hold(self, lic: LicenseRow, feature: int, host: Components) -> str:
        """Give this host a seat of `feature` (the one it has, if any) and return the session."""
        product = next((p for p in lic.products if any(f.id == feature for f in p.features)), None)
        if product is None:
            raise refusal(NO_FREE_SEAT, f"feature {feature} is not part of this license")
        if expired(product, self._today()):
            raise refusal(FEATURE_EXPIRED, f"product {product.id} ended on {product.expires}")
        if (mine := holder(lic.captures, feature, host)) is not None:
            self._touch(lic, mine, host)
            return mine.session
        count = next(f.count for f in product.features if f.id == feature)
        if sum(c.feature == feature for c in lic.captures) >= count:
            raise refusal(NO_FREE_SEAT, f"all {count} seat(s) are bound to another host; release the seat there "
                                        "or reset the binding on the licensing server to move it here")
        session = secrets.token_hex(16)
        self.db.add_capture(session, lic.number, feature, host, self._now())
        log.info("%s: feature %d captured by a new host", regnum.mask(lic.number), feature)
        return session

    def _activated(self, lic: LicenseRow, host: Components, code: int, what: str) -> Capture:
        capture = holder(lic.captures, lic.seat_feature, host)
        if capture is None:
            raise refusal(code, f"{what} needs the registration number activated on this host; activate it first")
        return capture

    def trial(self, form: TrialForm, product: int, host: Components) -> dict:
        with self.db.transaction():
            for number, trial_host, email, company in self.db.trials():
                if match(trial_host, host).holds:
                    if not (_same(email, form.email) and _same(company, form.companyname)):
                        raise refusal(TRIAL_TAKEN)
                    lic = self._license(number)
                    self._hold(lic, lic.seat_feature, host)
                    return {"registration_number": number, "document": self._document(number, host)}
            if any(not _same(c, form.companyname) for c in self.db.companies_for_email(form.email)):
                raise refusal(TRIAL_EMAIL_TAKEN)
            owner = Owner(form.companyname.strip(), form.contact.strip(), form.email.strip(), form.tel.strip(),
                          form.inn.strip(), form.description.strip())
            number = self._create(owner, product, seat_feature(product), 1,
                                  self._today() + dt.timedelta(days=TRIAL_DAYS), True, host)
            lic = self._license(number)
            self._hold(lic, lic.seat_feature, host)
            log.info("%s: trial of product %d issued", regnum.mask(number), product)
            return {"registration_number": number, "document": self._document(number, host)}

    def activate(self, number: object, host: Components) -> dict:
        """Activation and validation alike: hold the seat, refresh the binding, answer a fresh document."""
        with self.db.transaction():
            lic = self._license(number)
            self._hold(lic, lic.seat_feature, host)
            return {"document": self._document(lic.number, host)}

    def release(self, number: object, host: Components) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            mine = [c.session for c in lic.captures if match(c.host, host).holds]
            if mine:
                self.db.delete_captures(lic.number, mine)
                log.info("%s: host released %d capture(s)", regnum.mask(lic.number), len(mine))
            return {"released": True}

    def redeem(self, number: object, coupon: object, host: Components) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            capture = self._activated(lic, host, COUPON_ERROR, "a coupon")
            try:
                code = regnum.coupon(coupon)
            except regnum.FormatError as exc:
                raise refusal(COUPON_UNKNOWN, str(exc)) from None
            row = self.db.coupon(code)
            if row is None:
                raise refusal(COUPON_UNKNOWN)
            if row.blocked:
                raise refusal(COUPON_BLOCKED)
            if row.used_by is not None:
                raise refusal(COUPON_USED)
            product = next((p for p in lic.products if p.id == row.product), None)
            if product is None:
                raise refusal(COUPON_ERROR, f"the coupon is for product {row.product}, "
                                            "which this license does not include")
            self.db.put_product(lic.number, replace(product, trial=False,
                                                    expires=extended(product.expires, row.days, self._today())))
            self.db.use_coupon(code, lic.number, self._now())
            self._touch(lic, capture, host)
            log.info("%s: coupon %s redeemed", regnum.mask(lic.number), regnum.mask(code))
            return {"document": self._document(lic.number, host)}

    def product_trial(self, number: object, product: int, host: Components) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            capture = self._activated(lic, host, NO_FREE_SEAT, "a product trial")
            if all(p.id != product for p in lic.products):
                feature = seat_feature(product)
                if any(f.id == feature for p in lic.products for f in p.features):
                    raise ProtocolError(None, f"feature {feature} of product {product} is already part of this "
                                              "license under another product")
                self.db.put_product(lic.number, ProductRow(product, True, self._today() + dt.timedelta(
                    days=TRIAL_DAYS), (FeatureRow(feature, 1),)))
                log.info("%s: trial of product %d added", regnum.mask(lic.number), product)
            self._touch(lic, capture, host)
            return {"document": self._document(lic.number, host)}

    def capture(self, number: object, feature: int, host: Components) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            if feature != lic.seat_feature:
                self._activated(lic, host, NO_FREE_SEAT, "capturing a feature")
            session = self._hold(lic, feature, host)
            return {"session": session, "document": self._document(lic.number, host)}

    def release_feature(self, number: object, feature: int, session: str) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            if not any(c.session == session and c.feature == feature for c in lic.captures):
                raise refusal(KEY_ERROR, "unknown capture session")
            self.db.delete_captures(lic.number, [session])
            return {"released": True}

    def metrics(self, number: object, host: Components, fields: dict[str, str]) -> dict:
        with self.db.transaction():
            lic = self._license(number)
            self.db.add_metrics(lic.number, host, fields, self._now())
            return {"accepted": True}

    def _create(self, owner: Owner, product: int, feature: int, seats: int, expires: dt.date | None, trial: bool,
                trial_host: Components | None) -> str:
        number = new_number()
        self.db.add_license(number, f"lic-{secrets.token_hex(8)}", owner, feature, trial_host, self._now())
        self.db.put_product(number, ProductRow(product, trial, expires, (FeatureRow(feature, seats),)))
        return number

    def issue(self, owner: Owner, product: int, feature: int | None, seats: int, days: int | None,
              trial: bool) -> str:
        """A new number, not bound to any host; `days` None means termless."""
        expires = None if days is None else self._today() + dt.timedelta(days=days)
        with self.db.transaction():
            return self._create(owner, product, seat_feature(product) if feature is None else feature, seats,
                                expires, trial, None)

    def new_coupon(self, product: int, days: int | None) -> str:
        coupon = new_coupon()
        with self.db.transaction():
            self.db.add_coupon(coupon, product, days, self._now())
        return coupon

    def _admin_license(self, number: str) -> str:
        try:
            normal = regnum.registration_number(number)
        except regnum.FormatError as exc:
            raise AdminError(str(exc)) from None
        if self.db.license(normal) is None:
            raise AdminError(f"no license with number {regnum.mask(normal)}")
        return normal

    def reset(self, number: str) -> int:
        """Drop every host capture of the number; returns how many there were."""
        with self.db.transaction():
            return self.db.delete_captures(self._admin_license(number))

    def revoke(self, number: str) -> None:
        with self.db.transaction():
            self.db.set_revoked(self._admin_license(number))

    def block(self, coupon: str) -> None:
        try:
            code = regnum.coupon(coupon)
        except regnum.FormatError as exc:
            raise AdminError(str(exc)) from None
        with self.db.transaction():
            if not self.db.block_coupon(code):
                raise AdminError(f"no coupon {regnum.mask(code)}")
