"""mikolicctl against the real daemon: what the admin at a terminal sees, and exit codes for scripts."""
from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentproc import AgentProcess, box_agent, stopped_at_end
from cliproc import Terminal, one_line
from conftest import RefServer
from mikolicd import exits
from mikolicd.ctl import cli, render

SEEDS = iter(range(6200, 6300))
TRIAL = ("--company", "Ctl LLC", "--email", "ctl@example.test", "--contact", "Ctl Contact")


@pytest.fixture(scope="module")
def agents(tmp_path_factory, refserver: RefServer) -> Iterator[Callable[[], AgentProcess]]:
    """A fresh, started agent on a host of its own, for a test that needs a known state."""
    base = tmp_path_factory.mktemp("ctl")

    def start() -> AgentProcess:
        seed = next(SEEDS)
        return box_agent(base, refserver, seed, name=f"agent-{seed}").start()

    yield from stopped_at_end(start)


@pytest.fixture
def agent(agents) -> AgentProcess:
    return agents()


def ctl(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mikolicctl", "--socket", str(agent.sock), *args], capture_output=True, text=True,
                          timeout=60)


def activated(agent: AgentProcess, refserver: RefServer, *issue: str) -> str:
    number = refserver.issue(*issue)
    assert ctl(agent, "activate", number).returncode == 0
    return number


def test_status_reads_as_words_for_the_admin(agent):
    done = ctl(agent, "status")
    assert done.returncode == 0 and done.stdout.startswith("state:          unlicensed")


def test_json_output_is_the_api_answer(agent):
    done = ctl(agent, "--json", "fingerprint")
    assert done.returncode == 0
    assert {c["name"] for c in json.loads(done.stdout)["components"]} >= {"system_uuid", "nic", "machine_id"}


def test_json_after_the_command_works_as_before_it(agent):
    before, after = ctl(agent, "--json", "status"), ctl(agent, "status", "--json")
    assert after.returncode == 0
    assert json.loads(after.stdout)["state"] == json.loads(before.stdout)["state"] == "unlicensed"


def test_socket_after_the_command_works_as_before_it(agent):
    done = subprocess.run(["mikolicctl", "status", "--socket", str(agent.sock)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("state:")


def test_a_malformed_number_is_refused_locally_with_the_format_hint_unmasked(tmp_path):
    done = subprocess.run(["mikolicctl", "--socket", str(tmp_path / "none.sock"), "activate", "MIKO-123"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == exits.USAGE  # 2, not 3: refused before the (missing) agent was asked
    assert one_line(done.stderr) == ("mikolicctl: that is not a registration number: expected "
                                     "MIKO-XXXXX-XXXXX-XXXXX-XXXXX (letters A-Z and digits); nothing was sent")


def test_a_malformed_coupon_is_refused_locally_with_the_format_hint_unmasked(tmp_path):
    done = subprocess.run(["mikolicctl", "--socket", str(tmp_path / "none.sock"), "coupon", "MIKOUPD-1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == exits.USAGE
    assert "expected MIKOUPD-XXXXX-XXXXX-XXXXX-XXXXX" in one_line(done.stderr)


def test_a_server_code_reads_error_2026_not_like_a_year(agent):
    done = ctl(agent, "activate", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD")
    assert done.returncode == exits.FAILED
    line = one_line(done.stderr)
    assert line.startswith("mikolicctl: error 2026: ") and "(2026)" not in line


def test_the_json_of_a_refusal_keeps_the_server_code(agent):
    done = ctl(agent, "activate", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "--json")
    assert done.returncode == exits.FAILED
    assert json.loads(done.stdout)["error"]["server_code"] == 2026


def test_no_agent_on_the_socket_exits_3_with_a_hint(tmp_path):
    done = subprocess.run(["mikolicctl", "--socket", str(tmp_path / "none.sock"), "status"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == exits.UNREACHABLE and "is mikolicd running?" in done.stderr


def test_register_then_license_shows_the_owner_and_the_trial(agent):
    done = ctl(agent, "register", *TRIAL)
    assert done.returncode == 0 and "trial" in done.stdout
    shown = ctl(agent, "license").stdout
    assert "Ctl LLC, Ctl Contact <ctl@example.test>" in shown and "product 11 MikoPBX: trial" in shown


def test_register_without_a_terminal_lists_every_missing_field_at_once(agent):
    done = subprocess.run(["mikolicctl", "--socket", str(agent.sock), "register", "--email", "a@example.test"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == exits.USAGE
    assert one_line(done.stderr).startswith("mikolicctl: register needs --company, --contact: give them as options")


def test_register_on_a_terminal_asks_for_each_missing_field(agent):
    with Terminal.start("mikolicctl", "--socket", agent.sock, "register", "--email", "pty@example.test") as term:
        term.expect("Company name: ")
        term.send(b"Pty LLC\n")
        term.expect("Contact person: ")
        term.send(b"\n")  # empty: asked again
        term.expect("Contact person is required for a trial")
        term.send(b"Pty Contact\n")
        assert term.wait() == exits.OK, term.output
    assert "trial registered for Pty LLC" in term.output


def test_license_after_a_plain_activation_shows_no_owner_as_a_dash(agent, refserver):
    activated(agent, refserver)
    shown = ctl(agent, "license").stdout
    assert "owner:          -\n" in shown and "<>" not in shown


def test_activating_another_number_while_one_is_active_is_refused_suggesting_replace(agent, refserver):
    activated(agent, refserver)
    other = refserver.issue()
    done = ctl(agent, "activate", other)
    assert done.returncode == exits.FAILED
    assert f"mikolicctl activate --replace {other}" in one_line(done.stderr)
    assert ctl(agent, "--json", "status").stdout.count(other[:10]) == 0


def test_activate_replace_releases_the_old_seat_and_says_so(agent, refserver):
    first = activated(agent, refserver)
    done = ctl(agent, "activate", "--replace", refserver.issue())
    assert done.returncode == exits.OK, done.stderr
    assert f"the seat of the previous number {first[:10]}" in done.stdout and "was released first" in done.stdout


def test_after_replace_the_old_number_activates_on_another_host(agents, refserver):
    first_host, second_host = agents(), agents()
    first = activated(first_host, refserver)
    assert ctl(first_host, "activate", "--replace", refserver.issue()).returncode == exits.OK
    done = ctl(second_host, "activate", first)
    assert done.returncode == exits.OK, done.stderr


def test_coupon_says_the_product_is_termless_now(agent, refserver):
    activated(agent, refserver, "--days", "30")
    done = ctl(agent, "coupon", refserver.coupon("--termless"))
    assert done.returncode == exits.OK, done.stderr
    assert done.stdout.startswith("coupon redeemed: product 11 MikoPBX is termless now (it ran until ")


def test_release_says_the_seat_went_back_and_what_to_do_next(agent, refserver):
    activated(agent, refserver)
    done = ctl(agent, "release")
    assert done.returncode == exits.OK, done.stderr
    assert "released: this host's seat of MIKO-" in done.stdout and "was given back" in done.stdout
    assert "next: activate it on the host that should hold it" in done.stdout


def test_release_with_nothing_bound_exits_1(agent):
    done = ctl(agent, "release")
    assert done.returncode == exits.FAILED
    assert "nothing to release" in one_line(done.stderr)


def test_validate_of_an_active_license_exits_0(agent, refserver):
    activated(agent, refserver)
    assert ctl(agent, "validate").returncode == exits.OK


def test_validate_that_ends_invalid_exits_1_saying_so(agent, refserver):
    number = activated(agent, refserver)
    refserver.admin("revoke", number)
    done = ctl(agent, "validate")
    assert done.returncode == exits.FAILED
    assert done.stdout.startswith("state:          invalid")
    assert one_line(done.stderr).startswith("mikolicctl: the license was not confirmed: state invalid")


def test_validate_with_nothing_activated_exits_1(agent):
    assert ctl(agent, "validate").returncode == exits.FAILED


# ---------------------------------------------------------------------------------- rendering, pure


def test_owner_leaves_out_the_parts_the_license_does_not_carry():
    assert render.owner({"companyname": "Example LLC", "contact": "", "email": "", "tel": None}) == "Example LLC"
    assert render.owner({}) == "-"


def test_warnings_come_first_in_the_status():
    status = {"state": "trial", "reason": "trial until 2026-12-28", "warnings": [
        {"code": "expires_soon", "days": 5, "product": 11}],
        "products": [{"id": 11, "name": "MikoPBX", "trial": True, "expires": "2026-12-28", "features": []}]}
    assert render.status_text(status).splitlines()[0] == "warning:        product 11 MikoPBX ends in 5 days"


def test_a_coupon_that_extends_names_the_new_end_date():
    text = render.changes_text([{"product": 11, "name": "MikoPBX", "before": "2026-12-28", "after": "2027-12-28"}])
    assert text == "coupon redeemed: product 11 MikoPBX now runs until 2027-12-28 (until 2026-12-28 before)"


def test_a_server_code_inside_a_reason_reads_error_and_number():
    assert render.readable("no confirmation from the licensing server ((2009) License key error)") == (
        "no confirmation from the licensing server (error 2009: License key error)")


def test_a_refusal_without_the_code_in_its_message_still_shows_it():
    assert render.error_line({"error": {"message": "No free seat", "server_code": 2008}}) == "error 2008: No free seat"


# ------------------------------------------------------------------------------------- help and docs


def parsers(parser: argparse.ArgumentParser, name: str = "mikolicctl") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from parsers(child, f"{name} {sub}")


def test_every_option_and_argument_has_help_text():
    for name, parser in parsers(cli.parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):  # its commands have help of their own
                assert action.help, f"{name}: {action.dest} has no help text"


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda c: c.name)
def test_every_command_answers_help_with_an_example_and_its_exit_codes(command):
    shown = subprocess.run(["mikolicctl", *command.name.split(), "--help"], capture_output=True, text=True,
                           timeout=30).stdout
    assert "examples:\n  mikolicctl" in shown
    assert [int(line.split()[0]) for line in shown.split("exit codes:\n")[1].splitlines()
            if line[:3].strip().isdigit()] == [code for code, _ in cli.exit_rows(command)]


def test_the_top_level_help_describes_every_command():
    shown = subprocess.run(["mikolicctl", "--help"], capture_output=True, text=True, timeout=30).stdout
    listed = {line.split()[0] for line in shown.split("commands:")[1].split("examples:")[0].splitlines()[2:]
              if line.startswith("    ") and not line.startswith("     ")}
    assert listed == {command.name.split()[0] for command in cli.COMMANDS}


def test_docs_describe_every_command_with_its_exit_codes():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "mikolicctl.md").read_text()
    for command in cli.COMMANDS:
        heading = f"### `mikolicctl {command.name}"
        assert heading in docs, f"docs/mikolicctl.md has no section {heading}`"
        section = docs.split(heading, 1)[1].split("\n### ", 1)[0]
        for code, _ in cli.exit_rows(command):
            assert f"\n| {code} |" in section, f"{command.name}: exit code {code} is not documented"
