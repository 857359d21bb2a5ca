"""`mikolicctl support-bundle`: everything support needs in one private file, and no secret or raw id."""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from agentproc import box_agent, running
from cliproc import run
from hosts import pbx_box
from mikolicd import exits
from mikolicd.ctl.bundle import scrub

SEED = 6500
TRIAL = {"companyname": "Bundle LLC", "email": "owner@bundle.example", "contact": "Bundle Contact",
         "tel": "+7 900 1234567"}
SECRETS = {
    "registration number": re.compile(r"MIKO-[A-Z0-9*]{5}"),
    "coupon": re.compile(r"MIKOUPD"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "MAC address": re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b", re.IGNORECASE),
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, refserver) -> tuple[str, Path, object]:
    base = tmp_path_factory.mktemp("bundle")
    with running(box_agent(base, refserver, SEED)) as agent:
        assert agent.call("POST", "/v1/registration", TRIAL)[0] == 200
        assert agent.call("POST", "/v1/coupons", {"coupon": refserver.coupon()})[0] == 200
        target = base / "bundle.txt"
        done = run("mikolicctl", "--socket", agent.sock, "support-bundle", "--config", agent.config,
                   "--output", target)
    assert done.returncode == exits.OK, done.stderr
    return target.read_text(), target, done


@pytest.mark.parametrize("kind", SECRETS)
def test_the_bundle_holds_no(bundle, kind):
    text = bundle[0]
    assert not SECRETS[kind].search(text), SECRETS[kind].search(text)


def test_the_bundle_holds_none_of_the_hosts_raw_hardware_ids(bundle):
    raw = [f"PBX{SEED:07d}", f"BRD{SEED:07d}", f"CHS{SEED:07d}", f"{SEED:032x}",  # as tests/hosts.py's pbx_box
           f"4c4c4544-00{SEED:02x}-3510-8052-b7c04f{SEED:06x}"]
    assert [value for value in raw if value.lower() in bundle[0].lower()] == []


def test_the_bundle_names_no_owner(bundle):
    assert not any(part in bundle[0] for part in ("Bundle LLC", "Bundle Contact", "1234567"))


def test_the_bundle_is_private(bundle):
    assert stat.S_IMODE(bundle[1].stat().st_mode) == 0o600


def test_the_bundle_has_every_section_support_reads(bundle):
    for section in ("versions", "doctor", "status", "license", "fingerprint", "configuration"):
        assert f"\n===== {section} =====\n" in bundle[0]
    assert '"python": "3.' in bundle[0] and "\n[server]\nurl = " in bundle[0]


def test_the_command_says_where_the_bundle_is(bundle):
    assert bundle[2].stdout.startswith(f"support bundle written to {bundle[1]} (mode 0600)")


def test_a_bundle_is_written_when_no_agent_answers(tmp_path):
    target = tmp_path / "bundle.txt"
    config = tmp_path / "mikolicd.toml"
    config.write_text(f'[api]\nsocket = "{tmp_path / "none.sock"}"\n[hardware]\ndmidecode = ""\n'
                      f'root = "{pbx_box(tmp_path / "hw", 3).root}"\n[server]\nurl = "https://127.0.0.1:9"\n')
    done = run("mikolicctl", "support-bundle", "--config", config, "--output", target)
    assert done.returncode == exits.OK, done.stderr
    assert "===== status =====\nnot available: no agent socket at" in target.read_text()


def test_a_proxy_password_in_the_configuration_is_masked(tmp_path):
    target = tmp_path / "bundle.txt"
    config = tmp_path / "mikolicd.toml"
    config.write_text(f'[api]\nsocket = "{tmp_path / "none.sock"}"\n[hardware]\ndmidecode = ""\n'
                      f'root = "{tmp_path}"\n[server]\nurl = "https://127.0.0.1:9"\n'
                      'proxy = "http://ops:hunter2@proxy.example:3128"\n')
    assert run("mikolicctl", "support-bundle", "--config", config, "--output", target).returncode == exits.OK
    assert "hunter2" not in target.read_text() and 'proxy = "http://ops:***@proxy.example:3128"' in target.read_text()


def test_scrubbing_replaces_what_a_message_may_quote():
    assert scrub("(2008) MIKO-7KQ2P-*****-*****-***** of ann@example.com on 00:1b:21:00:01:00, "
                 "MIKOUPD-3QX7A-LM2KD-9PZTW-HC4RB") == ("(2008) <registration number> of <e-mail address> on "
                                                        "<MAC address>, <coupon>")
