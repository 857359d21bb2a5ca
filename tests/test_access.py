"""Who may do what over the socket, checked with real local users and their real peer credentials.

The PBX web UI runs as an unprivileged user in the socket group: it reads status freely, changes the
license only when its user is in `[api] admin_groups`, and nobody outside the group can connect at all.
Secrets (registration numbers, coupons, e-mail addresses, hardware serials) stay out of the log and out
of error bodies sent to non-admin peers.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentproc import AgentProcess
from hosts import pbx_box
from mikolicd import legacy
from mikolicd.store import Store

SEED = 9303
SOCKET_MODE = 0o660

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("curl") or not shutil.which("setpriv"),
                                reason="needs root (to add users), curl and setpriv")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Accounts:
    socket_group: str
    admin_group: str
    web: Account  # in the socket group only
    admin: Account  # in the socket group and the admin group
    outsider: Account  # in neither


def _account(name: str) -> Account:
    ids = subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout.strip()
    gid = subprocess.run(["id", "-g", name], capture_output=True, text=True, check=True).stdout.strip()
    return Account(name, int(ids), int(gid))


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    """Throw-away groups and system users, removed afterwards."""
    tag = secrets.token_hex(3)
    groups, users = [f"mlsock{tag}", f"mladm{tag}"], [f"mlweb{tag}", f"mladmin{tag}"]
    try:
        for group in groups:
            subprocess.run(["groupadd", "--system", group], check=True, timeout=30)
        for user, extra in zip(users, ([], ["-G", groups[1]])):
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            "-g", groups[0], *extra, user], check=True, timeout=30)
        yield Accounts(groups[0], groups[1], _account(users[0]), _account(users[1]), _account("nobody"))
    finally:
        for user in users:
            subprocess.run(["userdel", user], capture_output=True, timeout=30)
        for group in groups:
            subprocess.run(["groupdel", group], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def agent(accounts: Accounts, refserver) -> Iterator[AgentProcess]:
    """A daemon whose socket sits in a directory other users can traverse (pytest's own is private)."""
    base = Path(tempfile.mkdtemp(prefix="mikolicd-access-"))
    base.chmod(0o711)
    agent = AgentProcess(base, "agent", refserver.url, refserver.trusted_keys, refserver.ca,
                         pbx_box(base / "hw", SEED).root)
    agent.config.write_text(agent.config.read_text().replace(
        "[api]\n", f'[api]\nsocket_mode = "{SOCKET_MODE:04o}"\nsocket_group = "{accounts.socket_group}"\n'
                   f'admin_groups = ["{accounts.admin_group}"]\n'))
    try:
        yield agent.start()
    finally:
        agent.stop()
        shutil.rmtree(base)


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no connection
    body: str


def curl_as(account: Account, agent: AgentProcess, method: str, path: str, body: object = None,
            form: dict | None = None) -> Reply:
    """A real client (the PBX web UI uses curl) under the account's uid and groups, as a login gets them."""
    cmd = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups",
           "curl", "-sS", "--max-time", "20", "--unix-socket", str(agent.sock), "-X", method,
           "-o", "-", "-w", "\n%{http_code}", f"http://localhost{path}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    if form is not None:
        cmd += ["-H", f"Content-Type: {legacy.FORM}", "--data-binary", "&".join(f"{k}={v}" for k, v in form.items())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    text, _, code = done.stdout.rpartition("\n")
    return Reply(int(code or 0), text)


@dataclass(frozen=True)
class Secrets:
    number: str
    values: tuple[str, ...]  # everything that must stay out of logs and non-admin error bodies


@pytest.fixture(scope="module")
def known_secrets(agent: AgentProcess, refserver) -> Secrets:
    """Walk the daemon through trials, activation, coupons and refusals so each secret passes through it."""
    taken, trial_email = f"taken-{secrets.token_hex(3)}@example.test", f"owner-{secrets.token_hex(3)}@example.test"
    refserver.issue("--company", "Other Company", "--email", taken)
    trial = {"companyname": "Example LLC", "contact": "Ann Admin", "tel": "+7 495 000-00-00"}
    assert agent.call("POST", "/v1/registration", dict(trial, email=taken))[1]["error"]["server_code"] == 2022
    assert agent.call("POST", "/v1/registration", dict(trial, email=trial_email))[0] == 200
    trial_number = Store(agent.state).load().registration_number
    number, coupon = refserver.issue(), refserver.coupon()
    unknown_number, unknown_coupon = "MIKO-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZ9", "MIKOUPD-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZ9"
    assert agent.call("POST", "/v1/activation", {"registration_number": unknown_number})[0] >= 400
    assert agent.call("POST", "/v1/activation", {"registration_number": f" {number.lower()} ", "replace": True})[0] == 200
    assert agent.call("POST", "/v1/coupons", {"coupon": coupon})[0] == 200
    assert agent.call("POST", "/v1/coupons", {"coupon": coupon})[1]["error"]["server_code"] == 2041
    assert agent.call("POST", "/v1/coupons", {"coupon": unknown_coupon})[0] >= 400
    assert agent.call("POST", "/v1/validation")[0] == 200
    serials = [f"PBX{SEED:07d}", f"BRD{SEED:07d}", f"CHS{SEED:07d}",
               f"4c4c4544-00{SEED:02x}-3510-8052-b7c04f{SEED:06x}",
               f"{SEED:032x}", f"00:1b:21:{SEED >> 8 & 0xFF:02x}:{SEED & 0xFF:02x}:00"]
    return Secrets(number, (number, trial_number, coupon, unknown_number, unknown_coupon, taken, trial_email,
                            *serials))


WRITES = [("POST", "/v1/registration"), ("POST", "/v1/activation"), ("DELETE", "/v1/activation"),
          ("POST", "/v1/coupons"), ("POST", "/v1/validation")]
LEGACY_WRITES = sorted(name for name, method in legacy.METHODS.items() if method.changes)


def test_socket_has_the_configured_mode_and_group(agent, accounts):
    info = agent.sock.stat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == SOCKET_MODE
    assert info.st_gid == accounts.web.gid


def test_a_user_outside_the_socket_group_cannot_connect(agent, accounts):
    assert curl_as(accounts.outsider, agent, "GET", "/v1/health").status == 0


@pytest.mark.parametrize("path", ["/v1/status", "/v1/health", "/v1/license", "/v1/fingerprint",
                                  "/v1/features/33"])
def test_a_non_admin_can_read(path, agent, accounts, known_secrets):
    reply = curl_as(accounts.web, agent, "GET", path)
    assert reply.status == 200, reply


@pytest.mark.parametrize("method,path", WRITES)
def test_a_non_admin_gets_403_from_every_write_endpoint(method, path, agent, accounts):
    reply = curl_as(accounts.web, agent, method, path, body={})
    assert reply.status == 403
    assert json.loads(reply.body)["error"]["code"] == "forbidden"


@pytest.mark.parametrize("name", LEGACY_WRITES)
def test_a_non_admin_gets_403_from_every_changing_legacy_method(name, agent, accounts):
    assert curl_as(accounts.web, agent, "POST", legacy.PREFIX + name, form={"feature": "33"}).status == 403


def test_a_member_of_an_admin_group_may_write(agent, accounts, known_secrets):
    reply = curl_as(accounts.admin, agent, "POST", "/v1/validation", body={})
    assert reply.status == 200 and json.loads(reply.body)["state"] == "active"


def test_the_admin_group_counts_only_when_the_peer_itself_holds_it(agent, accounts, known_secrets):
    """/etc/group says the admin user is in the group; a process that dropped its groups is not."""
    cmd = ["setpriv", f"--reuid={accounts.admin.uid}", f"--regid={accounts.admin.gid}", "--clear-groups",
           "curl", "-sS", "--max-time", "20", "--unix-socket", str(agent.sock), "-X", "POST", "-o", "/dev/null",
           "-w", "%{http_code}", "-H", "Content-Type: application/json", "--data-binary", "{}",
           "http://localhost/v1/validation"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout == "403"


def test_leaving_the_admin_group_takes_effect_at_the_next_connection(agent, accounts, known_secrets):
    subprocess.run(["gpasswd", "-d", accounts.admin.name, accounts.admin_group], check=True, capture_output=True,
                   timeout=30)
    try:
        assert curl_as(accounts.admin, agent, "POST", "/v1/validation", body={}).status == 403
    finally:
        subprocess.run(["gpasswd", "-a", accounts.admin.name, accounts.admin_group], check=True,
                       capture_output=True, timeout=30)
    assert curl_as(accounts.admin, agent, "POST", "/v1/validation", body={}).status == 200


def test_no_secret_appears_in_the_daemon_log(agent, known_secrets):
    log = agent.log_text().lower()
    assert [s for s in known_secrets.values if s.lower() in log] == []


def test_no_secret_appears_in_error_bodies_sent_to_a_non_admin(agent, accounts, known_secrets):
    number = known_secrets.number
    replies = [
        *(curl_as(accounts.web, agent, method, path, body={"registration_number": number, "coupon": number})
          for method, path in WRITES),
        *(curl_as(accounts.web, agent, "POST", legacy.PREFIX + name, form={"key": number, "feature": "33"})
          for name in LEGACY_WRITES),
        curl_as(accounts.web, agent, "GET", f"/v1/features/{number}"),
        curl_as(accounts.web, agent, "GET", f"/v1/{number}"),
        curl_as(accounts.web, agent, "PATCH", "/v1/status"),
        curl_as(accounts.web, agent, "GET", legacy.PREFIX + "releasefeature?session=x&feature=33"),
        curl_as(accounts.web, agent, "GET", legacy.PREFIX + "nosuchmethod"),
    ]
    errors = [reply.body.lower() for reply in replies if reply.status >= 400]
    assert len(errors) == len(replies)
    assert [s for s in known_secrets.values if any(s.lower() in body for body in errors)] == []
