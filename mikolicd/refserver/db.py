"""The server's SQLite database: licenses, their products and features, host captures and coupons.

Only storage lives here; what the rows mean is decided in `licensing`.
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

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS licenses (
    number       TEXT PRIMARY KEY,
    license_id   TEXT NOT NULL UNIQUE,
    companyname  TEXT NOT NULL DEFAULT '',
    contact      TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    tel          TEXT NOT NULL DEFAULT '',
    inn          TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    seat_feature INTEGER NOT NULL,
    trial_host   TEXT,
    revoked      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_email ON licenses(email);
CREATE TABLE IF NOT EXISTS products (
    number  TEXT NOT NULL REFERENCES licenses(number),
    product INTEGER NOT NULL,
    trial   INTEGER NOT NULL,
    expires TEXT,
    PRIMARY KEY (number, product)
);
CREATE TABLE IF NOT EXISTS features (
    number  TEXT NOT NULL,
    product INTEGER NOT NULL,
    feature INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (number, feature),
    FOREIGN KEY (number, product) REFERENCES products(number, product)
);
CREATE TABLE IF NOT EXISTS captures (
    session    TEXT PRIMARY KEY,
    number     TEXT NOT NULL REFERENCES licenses(number),
    feature    INTEGER NOT NULL,
    host       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_number ON captures(number);
CREATE TABLE IF NOT EXISTS coupons (
    coupon     TEXT PRIMARY KEY,
    product    INTEGER NOT NULL,
    days       INTEGER,
    blocked    INTEGER NOT NULL DEFAULT 0,
    used_by    TEXT REFERENCES licenses(number),
    used_at    INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    number      TEXT NOT NULL REFERENCES licenses(number),
    received_at INTEGER NOT NULL,
    host        TEXT NOT NULL,
    fields      TEXT NOT NULL
);
"""


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
    session: str
    feature: int
    host: Components


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
class CouponRow:
    coupon: str
    product: int
    days: int | None
    blocked: bool
    used_by: str | None


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


class Database:
    """One connection; callers group related statements with `transaction()`."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise FileNotFoundError(f"{path}: no database (sqlite3 would silently create an empty one)")
        if create and not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # it holds every number
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if create:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.executescript(SCHEMA)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
        captures = tuple(Capture(session, feature, json.loads(host)) for session, feature, host in self.conn.execute(
            "SELECT session, feature, host FROM captures WHERE number = ? ORDER BY created_at, session", (number,)))
        return LicenseRow(row[0], row[1], Owner(*row[2:8]), row[8], json.loads(row[9]) if row[9] else None,
                          bool(row[10]), products, captures)

    def trials(self) -> list[tuple[str, Components, str, str]]:
        """(number, host, email, companyname) of every trial that was registered from a host."""
        return [(n, json.loads(h), e, c) for n, h, e, c in self.conn.execute(
            "SELECT number, trial_host, email, companyname FROM licenses WHERE trial_host IS NOT NULL")]

    def companies_for_email(self, email: str) -> set[str]:
        rows = self.conn.execute("SELECT companyname FROM licenses WHERE lower(email) = lower(?)", (email,))
        return {c for (c,) in rows}

    def add_license(self, number: str, license_id: str, owner: Owner, seat_feature: int,
                    trial_host: Components | None, now: int) -> None:
        self.conn.execute(
            "INSERT INTO licenses (number, license_id, companyname, contact, email, tel, inn, description,"
            " seat_feature, trial_host, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (number, license_id, owner.companyname, owner.contact, owner.email, owner.tel, owner.inn,
             owner.description, seat_feature, json.dumps(trial_host) if trial_host else None, now))

    def put_product(self, number: str, product: ProductRow) -> None:
        self.conn.execute("INSERT OR REPLACE INTO products (number, product, trial, expires) VALUES (?, ?, ?, ?)",
                          (number, product.id, int(product.trial),
                           product.expires.isoformat() if product.expires else None))
        self.conn.executemany("INSERT OR REPLACE INTO features (number, product, feature, count) VALUES (?, ?, ?, ?)",
                              [(number, product.id, f.id, f.count) for f in product.features])

    def set_trial_host(self, number: str, host: Components) -> None:
        self.conn.execute("UPDATE licenses SET trial_host = ? WHERE number = ?", (json.dumps(host), number))

    def set_revoked(self, number: str) -> None:
        self.conn.execute("UPDATE licenses SET revoked = 1 WHERE number = ?", (number,))

    def add_capture(self, session: str, number: str, feature: int, host: Components, now: int) -> None:
        self.conn.execute("INSERT INTO captures (session, number, feature, host, created_at, seen_at)"
                          " VALUES (?, ?, ?, ?, ?, ?)", (session, number, feature, json.dumps(host), now, now))

    def refresh_capture(self, session: str, host: Components, now: int) -> None:
        self.conn.execute("UPDATE captures SET host = ?, seen_at = ? WHERE session = ?",
                          (json.dumps(host), now, session))

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
