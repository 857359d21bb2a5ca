"""The server's SQLite database: licenses, products and features, host captures with their token chains,
coupons, the trial-host index and used release receipts.

Only storage lives here; what the rows mean is decided in `licensing`. Every lookup a request makes is
by primary key or index, so a request costs the same at 100,000 licenses as at 1,000.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mikolicd.fingerprint import Components
from mikolicd.refserver import schema
from mikolicd.refserver.chain import Chain
from mikolicd.refserver.drift import Bound
from mikolicd.refserver.hostindex import indexed, wanted
from mikolicd.refserver.schema import fold

CANDIDATES_PER_PART = 64  # trials compared per component value: a value shared by more identifies nobody


@dataclass(frozen=True)
class Owner:
    companyname: str = ""
    contact: str = ""
    email: str = ""
    tel: str = ""
    inn: str = ""
    description: str = ""


@dataclass(frozen=True)
class FeatureRow:
    id: int
    count: int


@dataclass(frozen=True)
class ProductRow:
    id: int
    trial: bool
    expires: dt.date | None
    features: tuple[FeatureRow, ...]


@dataclass(frozen=True)
class Capture:
    """A host's hold on a feature; for the seat feature also the installation holding it (`chain`)."""

    session: str
    feature: int
    bound: Bound
    chain: Chain | None = None

    @property
    def host(self) -> Components:
        return self.bound.host


@dataclass(frozen=True)
class LicenseRow:
    number: str
    license_id: str
    owner: Owner
    seat_feature: int
    trial_host: Components | None
    revoked: bool
    products: tuple[ProductRow, ...]
    captures: tuple[Capture, ...]


@dataclass(frozen=True)
class TrialRow:
    number: str
    host: Components
    email: str
    companyname: str


@dataclass(frozen=True)
class CouponRow:
    coupon: str
    product: int
    days: int | None
    blocked: bool
    used_by: str | None


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _chain(install_id: str | None, key: str | None, token: str | None, parent: str | None) -> Chain | None:
    return Chain(install_id, key or "", token or "", parent) if install_id else None


def _chain_columns(chain: Chain | None) -> tuple[str | None, str | None, str | None, str | None]:
    return (chain.install_id, chain.key, chain.current, chain.parent) if chain else (None, None, None, None)


class Database:
    """One connection; callers group related statements with `transaction()`.

    `synchronous` stays FULL: a token chain whose last write was lost would make the box that holds the
    newer token look like a copy."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise FileNotFoundError(f"{path}: no database (sqlite3 would silently create an empty one)")
        new = create and not path.exists()
        if new:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # it holds every number
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if new:
            self.conn.execute("PRAGMA journal_mode = WAL")
            schema.create(self.conn)
        else:
            schema.upgrade(self.conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: admin commands and the server write the same file concurrently."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def license(self, number: str) -> LicenseRow | None:
        row = self.conn.execute(
            "SELECT number, license_id, companyname, contact, email, tel, inn, description, seat_feature,"
            " trial_host, revoked FROM licenses WHERE number = ?", (number,)).fetchone()
        if row is None:
            return None
        features: dict[int, list[FeatureRow]] = {}
        for product, feature, count in self.conn.execute(
                "SELECT product, feature, count FROM features WHERE number = ? ORDER BY feature", (number,)):
            features.setdefault(product, []).append(FeatureRow(feature, count))
        products = tuple(ProductRow(pid, bool(trial), _date(expires), tuple(features.get(pid, ())))
                         for pid, trial, expires in self.conn.execute(
                             "SELECT product, trial, expires FROM products WHERE number = ? ORDER BY product",
                             (number,)))
        captures = tuple(
            Capture(session, feature, Bound(json.loads(host), rebound_at), _chain(*chain))
            for session, feature, host, rebound_at, *chain in self.conn.execute(
                "SELECT session, feature, host, rebound_at, install_id, install_key, token, parent FROM captures"
                " WHERE number = ? ORDER BY created_at, session", (number,)))
        return LicenseRow(row[0], row[1], Owner(*row[2:8]), row[8], json.loads(row[9]) if row[9] else None,
                          bool(row[10]), products, captures)

    def trial_candidates(self, host: Components) -> list[TrialRow]:
        """Trials whose host shares an indexed component with `host`, oldest first; `match` decides."""
        numbers: set[str] = set()
        for name, value in wanted(host):
            numbers.update(n for (n,) in self.conn.execute(
                "SELECT number FROM trial_parts WHERE component = ? AND value = ? LIMIT ?",
                (name, value, CANDIDATES_PER_PART)))
        rows = sorted(self.conn.execute(
            "SELECT created_at, number, trial_host, email, companyname FROM licenses WHERE number = ?",
            (number,)).fetchone() for number in numbers)
        return [TrialRow(n, json.loads(h), e, c) for _, n, h, e, c in rows if h]

    def email_used_by_another_company(self, email: str, companyname: str) -> bool:
        """Two index probes, whatever the number of licenses with this e-mail."""
        email_key, company_key = fold(email), fold(companyname)
        return any(self.conn.execute(
            f"SELECT 1 FROM licenses WHERE email_key = ? AND company_key {op} ? LIMIT 1",
            (email_key, company_key)).fetchone() for op in ("<", ">"))

    def add_license(self, number: str, license_id: str, owner: Owner, seat_feature: int,
                    trial_host: Components | None, now: int) -> None:
        self.conn.execute(
            "INSERT INTO licenses (number, license_id, companyname, contact, email, tel, inn, description,"
            " seat_feature, trial_host, created_at, email_key, company_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, license_id, owner.companyname, owner.contact, owner.email, owner.tel, owner.inn,
             owner.description, seat_feature, json.dumps(trial_host) if trial_host else None, now,
             fold(owner.email), fold(owner.companyname)))
        if trial_host:
            self._index_trial(number, trial_host)

    def _index_trial(self, number: str, host: Components) -> None:
        self.conn.executemany("INSERT INTO trial_parts (component, value, number) VALUES (?, ?, ?)",
                              [(name, value, number) for name, value in indexed(host)])

    def set_trial_host(self, number: str, old: Components, new: Components) -> None:
        self.conn.executemany("DELETE FROM trial_parts WHERE component = ? AND value = ? AND number = ?",
                              [(name, value, number) for name, value in indexed(old)])
        self.conn.execute("UPDATE licenses SET trial_host = ? WHERE number = ?", (json.dumps(new), number))
        self._index_trial(number, new)

    def put_product(self, number: str, product: ProductRow) -> None:
        self.conn.execute("INSERT OR REPLACE INTO products (number, product, trial, expires) VALUES (?, ?, ?, ?)",
                          (number, product.id, int(product.trial),
                           product.expires.isoformat() if product.expires else None))
        self.conn.executemany("INSERT OR REPLACE INTO features (number, product, feature, count) VALUES (?, ?, ?, ?)",
                              [(number, product.id, f.id, f.count) for f in product.features])

    def set_revoked(self, number: str) -> None:
        self.conn.execute("UPDATE licenses SET revoked = 1 WHERE number = ?", (number,))

    def add_capture(self, session: str, number: str, feature: int, host: Components, now: int,
                    chain: Chain | None = None) -> None:
        self.conn.execute("INSERT INTO captures (session, number, feature, host, created_at, seen_at, install_id,"
                          " install_key, token, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (session, number, feature, json.dumps(host), now, now, *_chain_columns(chain)))

    def set_chain(self, session: str, chain: Chain, now: int) -> None:
        """The one write of a validation: the seat's next token, in the seat's own row."""
        self.conn.execute("UPDATE captures SET install_id = ?, install_key = ?, token = ?, parent = ?, seen_at = ?"
                          " WHERE session = ?", (*_chain_columns(chain), now, session))

    def rebind(self, session: str, bound: Bound) -> None:
        self.conn.execute("UPDATE captures SET host = ?, rebound_at = ? WHERE session = ?",
                          (json.dumps(bound.host), bound.rebound_at, session))

    def delete_captures(self, number: str, sessions: list[str] | None = None) -> int:
        """Drop the given sessions of a number, or all of them when `sessions` is None."""
        if sessions is None:
            return self.conn.execute("DELETE FROM captures WHERE number = ?", (number,)).rowcount
        return self.conn.executemany("DELETE FROM captures WHERE number = ? AND session = ?",
                                     [(number, s) for s in sessions]).rowcount

    def add_coupon(self, coupon: str, product: int, days: int | None, now: int) -> None:
        self.conn.execute("INSERT INTO coupons (coupon, product, days, created_at) VALUES (?, ?, ?, ?)",
                          (coupon, product, days, now))

    def coupon(self, coupon: str) -> CouponRow | None:
        row = self.conn.execute("SELECT coupon, product, days, blocked, used_by FROM coupons WHERE coupon = ?",
                                (coupon,)).fetchone()
        return CouponRow(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    def use_coupon(self, coupon: str, number: str, now: int) -> None:
        self.conn.execute("UPDATE coupons SET used_by = ?, used_at = ? WHERE coupon = ?", (number, now, coupon))

    def block_coupon(self, coupon: str) -> bool:
        return self.conn.execute("UPDATE coupons SET blocked = 1 WHERE coupon = ?", (coupon,)).rowcount == 1

    def add_metrics(self, number: str, host: Components, fields: dict[str, str], now: int) -> None:
        self.conn.execute("INSERT INTO metrics (number, received_at, host, fields) VALUES (?, ?, ?, ?)",
                          (number, now, json.dumps(host), json.dumps(fields)))

    def receipt_used(self, nonce: str) -> bool:
        return self.conn.execute("SELECT 1 FROM receipts WHERE nonce = ?", (nonce,)).fetchone() is not None

    def use_receipt(self, nonce: str, number: str, install_id: str, now: int) -> None:
        self.conn.execute("INSERT INTO receipts (nonce, number, install_id, used_at) VALUES (?, ?, ?, ?)",
                          (nonce, number, install_id, now))
