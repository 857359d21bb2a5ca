"""The server's database: a schema-1 database is upgraded in place, and every lookup of a request goes
through an index (docs/refserver.md, "The database")."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mikolicd.refserver.db import Database
from mikolicd.forms import TrialForm
from mikolicd.refserver.licensing import Licensing, ProtocolError
from mikolicd.refserver.schema import VERSION, SchemaError
from mikolicd.refserver.signing import ensure_key

from conftest import RefServer
from refclient import Agent, Box, Connection, FakeClock, caller, new_host

TRIAL_NUMBER = "MIKO-TRIAL-AAAAA-BBBBB-CCCCC"
ISSUED_NUMBER = "MIKO-ISSUE-AAAAA-BBBBB-CCCCC"
TRIAL_HOST = new_host("schema-1 trial")
ISSUED_HOST = new_host("schema-1 issued")

# A database as the first server version wrote it: its schema, and a trial and an issued number, each
# activated on a host.
SCHEMA_1 = """
CREATE TABLE licenses (number TEXT PRIMARY KEY, license_id TEXT NOT NULL UNIQUE,
    companyname TEXT NOT NULL DEFAULT '', contact TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '',
    tel TEXT NOT NULL DEFAULT '', inn TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    seat_feature INTEGER NOT NULL, trial_host TEXT, revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL);
CREATE INDEX licenses_email ON licenses(email);
CREATE TABLE products (number TEXT NOT NULL REFERENCES licenses(number), product INTEGER NOT NULL,
    trial INTEGER NOT NULL, expires TEXT, PRIMARY KEY (number, product));
CREATE TABLE features (number TEXT NOT NULL, product INTEGER NOT NULL, feature INTEGER NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (number, feature),
    FOREIGN KEY (number, product) REFERENCES products(number, product));
CREATE TABLE captures (session TEXT PRIMARY KEY, number TEXT NOT NULL REFERENCES licenses(number),
    feature INTEGER NOT NULL, host TEXT NOT NULL, created_at INTEGER NOT NULL, seen_at INTEGER NOT NULL);
CREATE INDEX captures_number ON captures(number);
CREATE TABLE coupons (coupon TEXT PRIMARY KEY, product INTEGER NOT NULL, days INTEGER,
    blocked INTEGER NOT NULL DEFAULT 0, used_by TEXT REFERENCES licenses(number), used_at INTEGER,
    created_at INTEGER NOT NULL);
CREATE TABLE metrics (number TEXT NOT NULL REFERENCES licenses(number), received_at INTEGER NOT NULL,
    host TEXT NOT NULL, fields TEXT NOT NULL);
PRAGMA user_version = 1;
"""


def schema_1_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    for number, host, trial, email in ((TRIAL_NUMBER, TRIAL_HOST, 1, "Ann@Example.TEST"),
                                       (ISSUED_NUMBER, ISSUED_HOST, 0, "")):
        conn.execute("INSERT INTO licenses (number, license_id, companyname, email, seat_feature, trial_host,"
                     " created_at) VALUES (?, ?, 'Old LLC', ?, 33, ?, 1)",
                     (number, f"lic-{number[5:10]}", email, json.dumps(host["components"]) if trial else None))
        conn.execute("INSERT INTO products VALUES (?, 11, ?, '2099-01-01')", (number, trial))
        conn.execute("INSERT INTO features VALUES (?, 11, 33, 1)", (number,))
        conn.execute("INSERT INTO captures VALUES (?, ?, 33, ?, 1, 1)",
                     (f"session-{number[5:10]}", number, json.dumps(host["components"])))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def upgraded(tmp_path):
    signer = ensure_key(tmp_path / "signing-key.pem", tmp_path / "trusted_keys.pem")
    licensing = Licensing(Database(schema_1_database(tmp_path / "licenses.db")), signer, 86400, clock=FakeClock())
    yield licensing
    licensing.db.close()


def form(email: str = "ann@example.test", company: str = "Old LLC") -> TrialForm:
    return TrialForm(company, email, "Ann Admin")


def test_a_schema_1_database_is_upgraded_when_opened(upgraded):
    assert upgraded.db.conn.execute("PRAGMA user_version").fetchone() == (VERSION,)
    assert upgraded.db.conn.execute("SELECT count(*) FROM trial_parts WHERE number = ?", (TRIAL_NUMBER,)).fetchone()[0]


def test_an_upgraded_trial_is_found_again_by_its_host(upgraded):
    assert upgraded.trial(form(), 11, caller(Agent(), TRIAL_HOST))["registration_number"] == TRIAL_NUMBER


def test_an_upgraded_email_is_found_by_its_index_whatever_its_case(upgraded):
    with pytest.raises(ProtocolError, match="another company"):
        upgraded.trial(form(company="New LLC"), 11, caller(Agent(), new_host()))


def test_an_upgraded_seat_is_adopted_by_the_first_installation_that_asks(upgraded):
    first, second = Agent(), Agent()
    assert "document" in upgraded.validate(ISSUED_NUMBER, caller(first, ISSUED_HOST))
    with pytest.raises(ProtocolError, match="another installation") as refused:
        upgraded.validate(ISSUED_NUMBER, caller(second, ISSUED_HOST))
    assert refused.value.code == 2008 and refused.value.refusal


def test_opening_an_upgraded_database_again_changes_nothing(tmp_path):
    path = schema_1_database(tmp_path / "licenses.db")
    Database(path).close()
    before = path.read_bytes()
    Database(path).close()
    assert path.read_bytes() == before


def test_a_database_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "licenses.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {VERSION + 1}").connection.close()
    with pytest.raises(SchemaError, match=str(VERSION + 1)):
        Database(path)


def test_a_schema_1_server_directory_serves_the_second_protocol(refserver_factory):
    server: RefServer = refserver_factory()
    (server.dir / "licenses.db").unlink()
    schema_1_database(server.dir / "licenses.db")
    server.start()
    box = Box(Connection(server.port, server.ca), ISSUED_HOST)
    assert box.call("validation", registration_number=ISSUED_NUMBER)[0] == 200
    assert box.call("validation", registration_number=ISSUED_NUMBER)[0] == 200


# every request's lookups go through an index

def statements_of(licensing: Licensing, run) -> list[str]:
    seen: list[str] = []
    licensing.db.conn.set_trace_callback(seen.append)
    try:
        run()
    finally:
        licensing.db.conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))]


def scans(licensing: Licensing, statements: list[str]) -> list[str]:
    """The statements SQLite would answer by reading a whole table."""
    return [s for s in statements if any(
        row[-1].startswith("SCAN") for row in licensing.db.conn.execute(f"EXPLAIN QUERY PLAN {s}"))]


def test_every_statement_of_a_trial_and_a_validation_searches_an_index(upgraded):
    agent = Agent()
    statements = statements_of(upgraded, lambda: upgraded.trial(form("new@example.test", "New LLC"), 11,
                                                                caller(agent, new_host())))
    statements += statements_of(upgraded, lambda: upgraded.validate(ISSUED_NUMBER, caller(agent, ISSUED_HOST)))
    assert any("trial_parts" in s for s in statements) and any("email_key" in s for s in statements)
    assert scans(upgraded, statements) == []
