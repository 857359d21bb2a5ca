"""What the licensing server decides: trials, seats and their token chains, coupons, offline answers,
and the signed documents and refusals it hands out.

The rules are small pure functions, here and in `chain`, `drift` and `hostindex`; `Licensing` applies them
to the database, one transaction per call.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from mikolicd import regnum
from mikolicd.fingerprint import Components, match
from mikolicd.protocol import (COPIED, COUPON_BLOCKED, COUPON_ERROR, COUPON_UNKNOWN, COUPON_USED, FEATURE_EXPIRED,
                               INVALID_NUMBER, KEY_ERROR, NO_FREE_SEAT, PBX_FEATURE, PBX_PRODUCT, SERVER_TEXT,
                               TRIAL_EMAIL_TAKEN, TRIAL_TAKEN)
from mikolicd.refserver.chain import Verdict, advance, judge
from mikolicd.refserver.db import Capture, Database, FeatureRow, LicenseRow, Owner, ProductRow
from mikolicd.refserver.drift import REBIND_INTERVAL, follow
from mikolicd.forms import TrialForm
from mikolicd.refserver.fields import Caller, FieldError
from mikolicd.refserver.offline import OfflineRequest, Receipt
from mikolicd.refserver.schema import fold
from mikolicd.refserver.signing import Signer

log = logging.getLogger("mikolicd.refserver")

ISSUER = "mikolic-server"
TRIAL_DAYS = 30
PRODUCT_NAMES = {PBX_PRODUCT: "MikoPBX"}
FEATURE_NAMES = {PBX_FEATURE: "MikoPBX"}
SEAT_FEATURES = {PBX_PRODUCT: PBX_FEATURE}
SIGNED = frozenset({NO_FREE_SEAT, KEY_ERROR, FEATURE_EXPIRED, COPIED})  # the refusals that end trust
TAKEN_OVER = ("the seat on this host is held by another installation (a reinstall took it over); run "
              '"mikolicctl activate" here to take it back')
_ALPHABET = string.ascii_uppercase + string.digits


class ProtocolError(Exception):
    """An answer the client must not retry: `code` is the protocol's error code, `number` the license it is
    about, and `refusal` the signed form of the codes that end trust (set when the call ends)."""

    def __init__(self, code: int, message: str, number: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.number = number
        self.refusal: str | None = None


def refusal(code: int, detail: str = "", number: str | None = None) -> ProtocolError:
    """The server's usual text for `code`, with what exactly went wrong."""
    return ProtocolError(code, f"{SERVER_TEXT[code]}: {detail}" if detail else SERVER_TEXT[code], number)


class AdminError(Exception):
    """An admin command that cannot be carried out (unknown number or coupon)."""


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


def expired(product: ProductRow, today: dt.date) -> bool:
    """A product is usable through its `expires` day."""
    return product.expires is not None and today > product.expires


def extended(expires: dt.date | None, days: int | None, today: dt.date) -> dt.date | None:
    """A termless coupon (days None) removes the end date; otherwise add days to what is left, or to today."""
    if days is None or expires is None:
        return None
    return max(expires, today) + dt.timedelta(days=days)


def _same(a: str, b: str) -> bool:
    return fold(a) == fold(b)


def claims(lic: LicenseRow, caller: Caller, token: str, iat: int, ttl: int, offline: bool = False) -> dict:
    """A document's claims: the license as it stands, bound to the caller's host, request and token."""
    captured: dict[int, int] = {}
    for c in lic.captures:
        captured[c.feature] = captured.get(c.feature, 0) + 1
    return {
        "iss": ISSUER,
        "registration_number": lic.number,
        "license_id": lic.license_id,
        "owner": {"companyname": lic.owner.companyname, "contact": lic.owner.contact,
                  "email": lic.owner.email, "tel": lic.owner.tel},
        "binding": {"components": caller.host},
        "nonce": caller.nonce,
        "install_id": caller.installation.id,
        "token": token,
        "iat": iat,
        "exp": iat + ttl,
        "products": [{"id": p.id, "name": product_name(p.id), "trial": p.trial,
                      "expires": p.expires.isoformat() if p.expires else None,
                      "features": [{"id": f.id, "name": feature_name(f.id), "count": f.count, "counteach": 0,
                                    "captured": captured.get(f.id, 0)} for f in p.features]}
                     for p in lic.products],
        **({"offline": True} if offline else {}),
    }


def refusal_claims(error: ProtocolError, nonce: str, install_id: str, iat: int) -> dict:
    return {"registration_number": error.number, "code": error.code, "message": error.message, "nonce": nonce,
            "iat": iat, "install_id": install_id}


class Licensing:
    def __init__(self, db: Database, signer: Signer, document_ttl: int, clock: Callable[[], float] = time.time,
                 rebind_interval: int = REBIND_INTERVAL) -> None:
        self.db = db
        self.signer = signer
        self.document_ttl = document_ttl
        self.clock = clock
        self.rebind_interval = rebind_interval

    def _now(self) -> int:
        return int(self.clock())

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).date()

    @contextmanager
    def _call(self, asker: Caller | Receipt) -> Iterator[None]:
        """One transaction; a refusal that ends trust leaves it signed and bound to the asker's nonce."""
        try:
            with self.db.transaction():
                yield
        except ProtocolError as exc:
            if exc.code in SIGNED:
                exc.refusal = self.signer.sign_refusal(refusal_claims(exc, asker.nonce, asker.install_id,
                                                                      self._now()))
            raise

    def _license(self, number: object) -> LicenseRow:
        try:
            normal = regnum.registration_number(number)
        except regnum.FormatError as exc:
            raise refusal(INVALID_NUMBER, str(exc)) from None
        lic = self.db.license(normal)
        if lic is None:
            raise refusal(INVALID_NUMBER, "no such license")
        if lic.revoked:
            raise refusal(KEY_ERROR, "this registration number has been revoked", lic.number)
        return lic

    def _answer(self, lic: LicenseRow, session: str, caller: Caller, ttl: int | None = None,
                offline: bool = False, changed: bool = False) -> str:
        """A signed document for the caller, and the seat's chain moved on: the one write of a validation.
        A call that `changed` the license's products or captures reads it again for the document."""
        chain = advance(caller.installation)
        now = self._now()
        self.db.set_chain(session, chain, now)
        if changed:
            reread = self.db.license(lic.number)
            assert reread is not None, "the license was read in the same transaction"
            lic = reread
        return self.signer.sign(claims(lic, caller, chain.current, now, ttl or self.document_ttl, offline))

    def _bound(self, lic: LicenseRow, feature: int, host: Components) -> Capture | None:
        """The capture of `feature` this host holds, its record following the host as `drift` allows."""
        for capture in lic.captures:
            if capture.feature != feature:
                continue
            same, record = follow(capture.bound, host, self._now(), self.rebind_interval)
            if not same:
                continue
            if record is not None:
                self.db.rebind(capture.session, record)
                if feature == lic.seat_feature and lic.trial_host == capture.host:
                    self.db.set_trial_host(lic.number, capture.host, record.host)
                log.info("%s: the binding of a capture of feature %d follows a changed part",
                         regnum.mask(lic.number), feature)
            return capture
        return None

    def _usable(self, lic: LicenseRow, feature: int) -> ProductRow:
        product = next((p for p in lic.products if any(f.id == feature for f in p.features)), None)
        if product is None:
            raise refusal(NO_FREE_SEAT, f"feature {feature} is not part of this license", lic.number)
        if expired(product, self._today()):
            raise refusal(FEATURE_EXPIRED, f"product {product.id} ended on {product.expires}", lic.number)
        return product

    def _hold(self, lic: LicenseRow, feature: int, host: Components) -> tuple[str, Capture | None]:
        """(session, capture) of this host's hold on `feature`: the one it has, else a free one (capture None)."""
        product = self._usable(lic, feature)
        if (mine := self._bound(lic, feature, host)) is not None:
            return mine.session, mine
        count = next(f.count for f in product.features if f.id == feature)
        if sum(c.feature == feature for c in lic.captures) >= count:
            raise refusal(NO_FREE_SEAT, f"all {count} seat(s) are bound to another host; release the seat there "
                                        "or reset the binding on the licensing server to move it here", lic.number)
        session = secrets.token_hex(16)
        self.db.add_capture(session, lic.number, feature, host, self._now())
        log.info("%s: feature %d captured by a new host", regnum.mask(lic.number), feature)
        return session, None

    def _judged(self, lic: LicenseRow, capture: Capture, caller: Caller, explicit: bool) -> None:
        """Refuse what the token chain refuses (2060, 2008); say so when the seat changes hands."""
        verdict = judge(capture.chain, caller.installation, explicit)
        if verdict is Verdict.COPIED:
            log.warning("%s: a stale token for the seat: a copied installation", regnum.mask(lic.number))
            raise ProtocolError(COPIED, f"({COPIED}) {SERVER_TEXT[COPIED]}.", lic.number)
        if verdict is Verdict.NOT_HOLDER:
            raise refusal(NO_FREE_SEAT, TAKEN_OVER, lic.number)
        if verdict is not Verdict.ROTATE:
            log.info("%s: seat %s by installation %s", regnum.mask(lic.number), verdict.value,
                     caller.installation.id[:8])

    def _seat(self, lic: LicenseRow, caller: Caller, explicit: bool) -> tuple[str, bool]:
        """The session of the caller's seat, and whether it was taken now: a host without one takes a free one."""
        session, capture = self._hold(lic, lic.seat_feature, caller.host)
        if capture is not None:
            self._judged(lic, capture, caller, explicit)
        return session, capture is None

    def _activated(self, lic: LicenseRow, caller: Caller, code: int, what: str) -> str:
        """The session of the seat the caller must already hold for `what`."""
        capture = self._bound(lic, lic.seat_feature, caller.host)
        if capture is None:
            raise refusal(code, f"{what} needs the registration number activated on this host; activate it first",
                          lic.number)
        self._judged(lic, capture, caller, False)
        return capture.session

    def _free(self, lic: LicenseRow, host: Components) -> None:
        """Drop every capture this host holds."""
        mine = [c.session for c in lic.captures if match(c.host, host).holds]
        if mine:
            self.db.delete_captures(lic.number, mine)
            log.info("%s: host released %d capture(s)", regnum.mask(lic.number), len(mine))

    def trial(self, form: TrialForm, product: int, caller: Caller) -> dict:
        with self._call(caller):
            for row in self.db.trial_candidates(caller.host):
                if match(row.host, caller.host).holds:
                    if not (_same(row.email, form.email) and _same(row.companyname, form.companyname)):
                        raise refusal(TRIAL_TAKEN)
                    lic = self._license(row.number)
                    return {"registration_number": lic.number, "document": self._confirmed(lic, caller, True)}
            if self.db.email_used_by_another_company(form.email, form.companyname):
                raise refusal(TRIAL_EMAIL_TAKEN)
            owner = Owner(form.companyname.strip(), form.contact.strip(), form.email.strip(), form.tel.strip(),
                          form.inn.strip(), form.description.strip())
            number = self._create(owner, product, seat_feature(product), 1,
                                  self._today() + dt.timedelta(days=TRIAL_DAYS), True, caller.host)
            log.info("%s: trial of product %d issued", regnum.mask(number), product)
            return {"registration_number": number, "document": self._confirmed(self._license(number), caller, True)}

    def _confirmed(self, lic: LicenseRow, caller: Caller, explicit: bool, ttl: int | None = None,
                   offline: bool = False) -> str:
        """The document for the caller's seat, which it holds, takes, or (`explicit`) takes over."""
        session, taken = self._seat(lic, caller, explicit)
        return self._answer(lic, session, caller, ttl, offline, changed=taken)

    def activate(self, number: object, caller: Caller) -> dict:
        """An admin's "this machine holds the seat": takes a free seat, takes over from a reinstall's
        predecessor, and restarts a token chain a copy has moved on."""
        with self._call(caller):
            return {"document": self._confirmed(self._license(number), caller, True)}

    def validate(self, number: object, caller: Caller) -> dict:
        with self._call(caller):
            return {"document": self._confirmed(self._license(number), caller, False)}

    def offline_answer(self, request: OfflineRequest, ttl: int) -> str:
        """An activation carried by hand: the document lives `ttl` and says it is offline."""
        with self._call(request.caller):
            lic = self._license(request.registration_number)
            log.info("%s: offline answer for the host described as %r", regnum.mask(lic.number),
                     request.description[:80])
            return self._confirmed(lic, request.caller, True, ttl, True)

    def release(self, number: object, caller: Caller) -> dict:
        with self._call(caller):
            self._release(self._license(number), caller)
            return {"released": True}

    def _release(self, lic: LicenseRow, caller: Caller) -> None:
        seat = self._bound(lic, lic.seat_feature, caller.host)
        if seat is not None:
            self._judged(lic, seat, caller, False)
        self._free(lic, caller.host)

    def redeem(self, number: object, coupon: str, caller: Caller) -> dict:
        with self._call(caller):
            lic = self._license(number)
            session = self._activated(lic, caller, COUPON_ERROR, "a coupon")
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
            log.info("%s: coupon %s redeemed", regnum.mask(lic.number), regnum.mask(code))
            return {"document": self._answer(lic, session, caller, changed=True)}

    def product_trial(self, number: object, product: int, caller: Caller) -> dict:
        with self._call(caller):
            lic = self._license(number)
            session = self._activated(lic, caller, NO_FREE_SEAT, "a product trial")
            if all(p.id != product for p in lic.products):
                feature = seat_feature(product)
                if any(f.id == feature for p in lic.products for f in p.features):
                    raise FieldError("product", f"feature {feature} of product {product} is already part of this "
                                                "license under another product")
                self.db.put_product(lic.number, ProductRow(product, True, self._today() + dt.timedelta(
                    days=TRIAL_DAYS), (FeatureRow(feature, 1),)))
                log.info("%s: trial of product %d added", regnum.mask(lic.number), product)
            return {"document": self._answer(lic, session, caller, changed=True)}

    def capture(self, number: object, feature: int, caller: Caller) -> dict:
        """The seat feature's session is the activation's; any other feature needs the seat first."""
        with self._call(caller):
            lic = self._license(number)
            if feature == lic.seat_feature:
                seat, taken = self._seat(lic, caller, False)
                session = seat
            else:
                seat = self._activated(lic, caller, NO_FREE_SEAT, "capturing a feature")
                session, held = self._hold(lic, feature, caller.host)
                taken = held is None
            return {"session": session, "document": self._answer(lic, seat, caller, changed=taken)}

    def release_feature(self, number: object, feature: int, session: str, caller: Caller) -> dict:
        """Releasing the seat feature's session releases the seat, exactly like `release`."""
        with self._call(caller):
            lic = self._license(number)
            capture = next((c for c in lic.captures if c.session == session and c.feature == feature), None)
            if capture is None:
                raise refusal(KEY_ERROR, "unknown capture session", lic.number)
            if feature != lic.seat_feature:
                self.db.delete_captures(lic.number, [session])
            elif match(capture.host, caller.host).holds:
                self._release(lic, caller)
            else:
                raise refusal(NO_FREE_SEAT, "this session is the seat of another host", lic.number)
            return {"released": True}

    def metrics(self, number: object, caller: Caller, fields: dict[str, str]) -> dict:
        with self._call(caller):
            lic = self._license(number)
            self.db.add_metrics(lic.number, caller.host, fields, self._now())
            return {"accepted": True}

    def offline_release(self, receipt: Receipt) -> dict:
        """A seat given back without a network: accepted once, from the installation that holds it."""
        with self._call(receipt):
            lic = self._license(receipt.registration_number)
            if self.db.receipt_used(receipt.nonce):
                raise refusal(KEY_ERROR, "this release receipt was already used", lic.number)
            seat = next((c for c in lic.captures if c.feature == lic.seat_feature and c.chain is not None
                         and (c.chain.install_id, c.chain.key) == (receipt.install_id, receipt.key)), None)
            if seat is None:
                raise refusal(NO_FREE_SEAT, "the installation that signed this receipt holds no seat of this number",
                              lic.number)
            self._free(lic, seat.host)
            self.db.use_receipt(receipt.nonce, lic.number, receipt.install_id, self._now())
            return {"released": True}

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
