"""The database schema, and the upgrade of a database an older server wrote (`PRAGMA user_version`).

Version 1 had no installations or token chains, and found trials and e-mails by scanning; version 2
adds the chain to each capture, a normalised e-mail and company with an index, the trial-host index and
the used release receipts. The upgrade runs in one transaction when the database is opened.
"""
from __future__ import annotations

import json
import sqlite3

from mikolicd.refserver.hostindex import indexed

VERSION = 2
CORE = """
CREATE TABLE licenses (
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
    created_at   INTEGER NOT NULL,
    email_key    TEXT NOT NULL DEFAULT '',
    company_key  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX licenses_email_company ON licenses(email_key, company_key);
CREATE TABLE products (
    number  TEXT NOT NULL REFERENCES licenses(number),
    product INTEGER NOT NULL,
    trial   INTEGER NOT NULL,
    expires TEXT,
    PRIMARY KEY (number, product)
);
CREATE TABLE features (
    number  TEXT NOT NULL,
    product INTEGER NOT NULL,
    feature INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (number, feature),
    FOREIGN KEY (number, product) REFERENCES products(number, product)
);
CREATE TABLE captures (
    session     TEXT PRIMARY KEY,
    number      TEXT NOT NULL REFERENCES licenses(number),
    feature     INTEGER NOT NULL,
    host        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL,
    rebound_at  INTEGER,
    install_id  TEXT,
    install_key TEXT,
    token       TEXT,
    parent      TEXT
);
CREATE INDEX captures_number ON captures(number);
CREATE TABLE coupons (
    coupon     TEXT PRIMARY KEY,
    product    INTEGER NOT NULL,
    days       INTEGER,
    blocked    INTEGER NOT NULL DEFAULT 0,
    used_by    TEXT REFERENCES licenses(number),
    used_at    INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE metrics (
    number      TEXT NOT NULL REFERENCES licenses(number),
    received_at INTEGER NOT NULL,
    host        TEXT NOT NULL,
    fields      TEXT NOT NULL
);
"""
ADDED_IN_2 = """
CREATE TABLE trial_parts (
    component TEXT NOT NULL,
    value     TEXT NOT NULL,
    number    TEXT NOT NULL REFERENCES licenses(number),
    PRIMARY KEY (component, value, number)
) WITHOUT ROWID;
CREATE TABLE receipts (
    nonce      TEXT PRIMARY KEY,
    number     TEXT NOT NULL REFERENCES licenses(number),
    install_id TEXT NOT NULL,
    used_at    INTEGER NOT NULL
);
"""
SCHEMA = CORE + ADDED_IN_2

UPGRADE_FROM_1 = """
ALTER TABLE licenses ADD COLUMN email_key TEXT NOT NULL DEFAULT '';
ALTER TABLE licenses ADD COLUMN company_key TEXT NOT NULL DEFAULT '';
UPDATE licenses SET email_key = fold(email), company_key = fold(companyname);
DROP INDEX IF EXISTS licenses_email;
CREATE INDEX licenses_email_company ON licenses(email_key, company_key);
ALTER TABLE captures ADD COLUMN rebound_at INTEGER;
ALTER TABLE captures ADD COLUMN install_id TEXT;
ALTER TABLE captures ADD COLUMN install_key TEXT;
ALTER TABLE captures ADD COLUMN token TEXT;
ALTER TABLE captures ADD COLUMN parent TEXT;
"""


def fold(text: str) -> str:
    """How e-mails and company names compare: case and surrounding blanks do not count."""
    return text.strip().casefold()


class SchemaError(Exception):
    """A database this server cannot use."""


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version = {VERSION}")


def _index_trials(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT number, trial_host FROM licenses WHERE trial_host IS NOT NULL").fetchall()
    conn.executemany("INSERT INTO trial_parts (component, value, number) VALUES (?, ?, ?)",
                     [(name, value, number) for number, host in rows for name, value in indexed(json.loads(host))])


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring a database of an older version to this one, in one transaction; refuse a newer one.

    The version is read again inside the transaction: a second process opening the same file waits,
    then finds the work done."""
    if conn.execute("PRAGMA user_version").fetchone() == (VERSION,):
        return
    conn.create_function("fold", 1, fold, deterministic=True)
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version not in (1, VERSION):
            raise SchemaError(f"database schema version {version}: this server reads versions 1 and {VERSION}")
        if version == 1:
            for statement in _statements(UPGRADE_FROM_1) + _statements(ADDED_IN_2):
                conn.execute(statement)
            _index_trials(conn)
            conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
