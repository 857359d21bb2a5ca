"""The command line: every command with its help, an example and its exit codes, in one table.

The same table builds `--help` and is what docs/mikolicctl.md describes, so the two cannot drift apart
without a test noticing.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import doctor
from ..agentclient import DEFAULT_SOCKET
from ..config import DEFAULT_PATH as DEFAULT_CONFIG
from ..exits import (FAILED, FILE_ERROR, INTERRUPTED, OK, PIPE_CLOSED, UNREACHABLE, USAGE, ArgumentParser, guarded,
                     help_table, merged)
from . import commands, offline
from .bundle import support_bundle
from .invocation import PROG, Invocation

Options = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str  # "status", or "offline request" for a command in a group
    summary: str  # one line, for the list of commands
    run: Callable[[Invocation, argparse.Namespace], int]
    examples: tuple[str, ...]
    exits: tuple[tuple[int, str], ...]  # what 0 and 1 (and any other own code) mean for this command
    options: Options = lambda parser: None
    agent: bool = True  # it needs the agent, so "unreachable" (3) applies


def exit_rows(command: Command) -> tuple[tuple[int, str], ...]:
    shared = ((USAGE, "a wrong option or argument; nothing was sent"),
              *(((UNREACHABLE, "no agent answers on the socket"),) if command.agent else ()),
              (INTERRUPTED, "interrupted (Ctrl-C)"),
              (PIPE_CLOSED, "standard output was closed early (e.g. | head -1)"))
    return merged(command.exits, shared)


def epilog(command: Command) -> str:
    examples = "\n".join(f"  {line}" for line in command.examples)
    return f"examples:\n{examples}\n\n{help_table(exit_rows(command))}"


def run_doctor(ctl: Invocation, args: argparse.Namespace) -> int:
    """Runs in this process, not in the agent: it must work when the agent is down or misconfigured."""
    checks = doctor.run(args.config, args.socket)
    ok = doctor.passed(checks)
    ctl.show({"ok": ok, "checks": [c.to_json() for c in checks]}, doctor.human(checks))
    return OK if ok else FAILED


def _register_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--company", default="", help="company name (required)")
    p.add_argument("--email", default="", help="the company's e-mail address (required)")
    p.add_argument("--contact", default="", help="contact person (required)")
    p.add_argument("--tel", default="", help="telephone number (optional)")
    p.add_argument("--inn", default="", help="taxpayer number, 10 to 12 digits (optional)")


def _activate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("number", help="the registration number, MIKO-XXXXX-XXXXX-XXXXX-XXXXX")
    p.add_argument("--replace", action="store_true",
                   help="when another number is active here, release its seat first and use this one instead")


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help=f"the agent's configuration (default: the file the agent on the socket names, else "
                        f"{DEFAULT_CONFIG})")


def _output_option(default: Path | None, what: str) -> Options:
    shown = default or "mikolicd-support-DATE-TIME.txt"
    return lambda p: p.add_argument("--output", type=Path, default=default, metavar="FILE",
                                    help=f"where to write {what} (mode 0600; default {shown})")


def _bundle_options(p: argparse.ArgumentParser) -> None:
    _output_option(None, "the bundle")(p)
    _config_option(p)


def _offline_request_options(p: argparse.ArgumentParser) -> None:
    _output_option(offline.DEFAULT_REQUEST, "the request")(p)
    p.add_argument("--number", metavar="NUMBER", help="the registration number to activate, for a box that "
                   "never reached the licensing server (default: the number this host already has)")


AGENT_ERROR = (FAILED, "the agent answered an error")
COMMANDS = (
    Command("status", "the license state, masked number, last and next check, host binding, products",
            commands.status, ("mikolicctl status", "mikolicctl status --json | jq -r .state"),
            ((OK, "the agent answered, whatever the state (scripts read .state from --json)"), AGENT_ERROR)),
    Command("license", "the license's owner, products and features", commands.license_info,
            ("mikolicctl license",), ((OK, "shown"), (FAILED, "no license on this host, or the agent refused"))),
    Command("fingerprint", "each hardware id (match, changed, missing) and whether the host binding holds",
            commands.fingerprint, ("mikolicctl fingerprint",), ((OK, "shown"), AGENT_ERROR)),
    Command("register", "a 30-day trial for this host; on a terminal it asks for missing fields",
            commands.register,
            ('mikolicctl register --company "Example LLC" --email admin@example.com --contact "Ann Admin"',
             "mikolicctl register        # on a terminal: asks for company, e-mail and contact"),
            ((OK, "the trial is registered"),
             (FAILED, "refused by the agent or the licensing server (e.g. error 2051: a trial was already "
                      "issued on this host)"),
             (USAGE, "required fields are missing and standard input is not a terminal; nothing was sent"),
             (INTERRUPTED, "cancelled at a prompt (Ctrl-C or Ctrl-D); nothing was sent")),
            _register_options),
    Command("activate", "activate a registration number on this host", commands.activate,
            ("mikolicctl activate MIKO-7KQ2P-4RT9M-X2C8V-ZD3HJ",
             "mikolicctl activate --replace MIKO-7KQ2P-4RT9M-X2C8V-ZD3HJ   # another number was active"),
            ((OK, "activated (with --replace: the previous number's seat was released first)"),
             (FAILED, "refused: another number is active (use --replace), the seat is bound to another host "
                      "(error 2008), the number is invalid (error 2026), …"),
             (USAGE, "NUMBER is not MIKO-XXXXX-XXXXX-XXXXX-XXXXX; nothing was sent")),
            _activate_options),
    Command("coupon", "redeem a coupon on the activated number, and say what it changed", commands.coupon,
            ("mikolicctl coupon MIKOUPD-3QX7A-LM2KD-9PZTW-HC4RB",),
            ((OK, "redeemed: the products it made termless or extended are named"),
             (FAILED, "refused: no number is activated, or error 2040 (no such coupon), 2041 (already used), "
                      "2057 (blocked)"),
             (USAGE, "COUPON is not MIKOUPD-XXXXX-XXXXX-XXXXX-XXXXX; nothing was sent")),
            lambda p: p.add_argument("coupon", help="the coupon, MIKOUPD-XXXXX-XXXXX-XXXXX-XXXXX")),
    Command("validate", "validate the license with the licensing server now", commands.validate,
            ("mikolicctl validate", "mikolicctl validate --json || alert 'license not confirmed'"),
            ((OK, "the server confirmed the license: state active or trial"),
             (FAILED, "it did not: the state is grace (server not reached), expired or invalid, or nothing is "
                      "activated"))),
    Command("release", "give this host's seat back to the licensing server; the number stays", commands.release,
            ("mikolicctl release",),
            ((OK, "the seat was given back; the state is pending"),
             (FAILED, "nothing was bound on this host, or the server refused"))),
    Command("doctor", "the diagnostics support asks for: configuration, socket, hardware ids, network, clock",
            run_doctor,
            ("mikolicctl doctor", "mikolicctl --socket .mikolicd-dev/mikolicd.sock doctor",
             "mikolicctl doctor --config /etc/mikolicd/mikolicd.toml --json"),
            ((OK, "no check failed"), (FAILED, "a check failed: its line says the fix")),
            _config_option, agent=False),
    Command("offline request", "write this host's offline activation request and print it as a code",
            offline.request, ("mikolicctl offline request --output /media/usb/request.txt",
                              "mikolicctl offline request --number MIKO-7KQ2P-4RT9M-X2C8V-ZD3HJ   # a new box"),
            ((OK, "the request is written and its code printed"), AGENT_ERROR,
             (FILE_ERROR, "the output file cannot be written; nothing was asked")),
            _offline_request_options),
    Command("offline apply", "install the answer to an offline request: a file, a code, or - for standard input",
            offline.apply,
            ("mikolicctl offline apply /media/usb/response.txt",
             "mikolicctl offline apply -        # paste the code, then Ctrl-D"),
            ((OK, "the offline license is installed"),
             (FAILED, "the agent refused it: not for this host or request, already applied, or a bad signature"),
             (USAGE, "the code is mistyped (the message names the block); nothing was sent"),
             (FILE_ERROR, "FILE cannot be read")),
            lambda p: p.add_argument("response", metavar="FILE|CODE|-",
                                     help="the response file, its code (quoted), or - to read either from standard "
                                          "input")),
    Command("offline release", "drop the license without a network and write the receipt that frees the seat",
            offline.release, ("mikolicctl offline release --output /media/usb/receipt.txt",),
            ((OK, "the license is dropped; the receipt is written and its code printed"),
             (FAILED, "nothing to release, or the agent refused"),
             (FILE_ERROR, "the output file cannot be written: nothing was changed (should writing fail after the "
                          "release, the receipt's code is printed: keep it)")),
            _output_option(offline.DEFAULT_RECEIPT, "the receipt")),
    Command("support-bundle", "write one file for Miko support: doctor, status, fingerprint, versions, "
            "configuration; no numbers, coupons, e-mail addresses or hardware ids",
            support_bundle, ("mikolicctl support-bundle", "mikolicctl support-bundle --output /tmp/ticket-4711.txt"),
            ((OK, "written (also when no agent answers: the bundle says so)"),
             (FILE_ERROR, "the bundle cannot be written")),
            _bundle_options, agent=False),
)
GROUPS = {"offline": "offline activation for a box without internet access: request, apply, release"}


def _shared(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--socket and --json, accepted before the command and after it."""
    keep = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("--socket", type=Path, metavar="PATH", **({"default": None} | keep),
                        help=f"the agent's socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--json", action="store_true", **({"default": False} | keep),
                        help="print the API's JSON, for scripts")


def top_epilog() -> str:
    exits = help_table((
        (OK, "done"), (FAILED, "the agent refused, or the outcome is not the one asked for (see each command)"),
        (USAGE, "a wrong option or input, refused before anything was sent"),
        (UNREACHABLE, "no agent answers on the socket"), (FILE_ERROR, "a file cannot be read or written"),
        (INTERRUPTED, "interrupted (Ctrl-C, or Ctrl-D at a prompt)"),
        (PIPE_CLOSED, "standard output was closed early (e.g. | head -1)")))
    return (f"examples:\n  mikolicctl status\n  mikolicctl --socket .mikolicd-dev/mikolicd.sock status --json\n\n"
            f"{exits}\n\n`mikolicctl COMMAND --help` shows a command's options, examples and exit codes.")


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    top = ArgumentParser(prog=PROG, formatter_class=formatter, epilog=top_epilog(),
                                  description="Read and change the license of this Miko PBX box through the "
                                              "licensing agent (mikolicd).")
    _shared(top, defaults=True)
    sub = top.add_subparsers(metavar="COMMAND", required=True, title="commands")
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        group, _, name = command.name.rpartition(" ")
        if group and group not in groups:
            examples = "\n".join(f"  {c.examples[0]}" for c in COMMANDS if c.name.startswith(f"{group} "))
            holder = sub.add_parser(group, help=GROUPS[group], description=GROUPS[group], formatter_class=formatter,
                                    epilog=f"examples:\n{examples}\n\n`mikolicctl {group} COMMAND --help` shows a "
                                           "command's options and exit codes.")
            groups[group] = holder.add_subparsers(metavar="COMMAND", required=True, title="commands")
        parent = groups[group] if group else sub
        cmd = parent.add_parser(name, help=command.summary, description=command.summary,
                                epilog=epilog(command), formatter_class=formatter)
        _shared(cmd, defaults=False)
        command.options(cmd)
        cmd.set_defaults(command=command)
    return top


def main(argv: list[str] | None = None) -> int:
    parsed: dict[str, bool] = {}

    def body() -> int:
        args = parser().parse_args(argv)
        parsed["json"] = args.json
        return args.command.run(Invocation(args.socket or DEFAULT_SOCKET, args.json), args)

    return guarded(PROG, body, lambda: parsed.get("json", False),
                   "interrupted; a change already sent to the agent may still complete: see mikolicctl status")
