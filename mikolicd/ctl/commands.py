"""The commands that read or change the license through the agent; each returns its exit code."""
from __future__ import annotations

import argparse
import sys

from .. import regnum
from ..exits import FAILED, INTERRUPTED, OK, USAGE, Failure
from . import render
from .invocation import Invocation, checked

CONFIRMED = frozenset({"active", "trial"})  # states a validation ends in when the server confirmed the license
# (option, request field, prompt) of the trial form's required fields.
REQUIRED = (("company", "companyname", "Company name"), ("email", "email", "E-mail address"),
            ("contact", "contact", "Contact person"))


def status(ctl: Invocation, args: argparse.Namespace) -> int:
    answer = ctl.require("GET", "/v1/status")
    ctl.show(answer, render.status_text(answer))
    return OK


def license_info(ctl: Invocation, args: argparse.Namespace) -> int:
    answer = ctl.require("GET", "/v1/license")
    ctl.show(answer, render.license_text(answer))
    return OK


def fingerprint(ctl: Invocation, args: argparse.Namespace) -> int:
    answer = ctl.require("GET", "/v1/fingerprint")
    ctl.show(answer, render.fingerprint_text(answer))
    return OK


def _prompt(label: str) -> str:
    """Asks again until answered; Ctrl-C or Ctrl-D ends the command before anything is sent."""
    while True:
        try:
            sys.stderr.write(f"{label}: ")
            sys.stderr.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            line = ""
        if not line:
            sys.stderr.write("\n")
            raise Failure("register cancelled at the prompt: nothing was sent", INTERRUPTED, "interrupted")
        if line.strip():
            return line.strip()
        sys.stderr.write(f"{label} is required for a trial\n")


def trial_form(args: argparse.Namespace, interactive: bool) -> dict[str, str]:
    """Every missing required field at once: asked for on a terminal, listed otherwise."""
    form = {field: getattr(args, option) for option, field, _ in REQUIRED}
    missing = [(option, field, label) for option, field, label in REQUIRED if not form[field]]
    if missing and not interactive:
        names = ", ".join(f"--{option}" for option, _, _ in missing)
        raise Failure(f"register needs {names}: give them as options (mikolicctl register --company \"Example "
                      "LLC\" --email admin@example.com --contact \"Ann Admin\"), or run it on a terminal to be "
                      "asked; nothing was sent", USAGE, "invalid_input")
    for _, field, label in missing:
        form[field] = _prompt(label)
    extra = {"tel": args.tel, "inn": args.inn}
    return {**form, **{k: v for k, v in extra.items() if v}}


def register(ctl: Invocation, args: argparse.Namespace) -> int:
    form = trial_form(args, sys.stdin.isatty())
    answer = ctl.require("POST", "/v1/registration", form, hints={
        "already_licensed": "see mikolicctl status; to use another number: mikolicctl activate --replace NUMBER"})
    ctl.show(answer, f"trial registered for {form['companyname']}\n{render.status_text(answer)}")
    return OK


def activate(ctl: Invocation, args: argparse.Namespace) -> int:
    number = checked(regnum.registration_number, args.number)
    before = ctl.require("GET", "/v1/status") if args.replace else {}
    body = {"registration_number": number, **({"replace": True} if args.replace else {})}
    answer = ctl.require("POST", "/v1/activation", body, hints={
        "number_active": f"that is: mikolicctl activate --replace {number}"})
    lines = [f"activated {regnum.mask(number)} on this host"]
    previous = before.get("registration_number")
    if previous and previous != regnum.mask(number) and before.get("state") not in ("unlicensed", "pending"):
        lines.append(f"the seat of the previous number {previous} on this host was released first")
    ctl.show(answer, "\n".join(lines + [render.status_text(answer)]))
    return OK


def coupon(ctl: Invocation, args: argparse.Namespace) -> int:
    code = checked(regnum.coupon, args.coupon)
    answer = ctl.require("POST", "/v1/coupons", {"coupon": code}, hints={
        "not_activated": "a coupon extends an activated number: mikolicctl activate NUMBER first"})
    ctl.show(answer, f"{render.changes_text(answer['changed'])}\n{render.status_text(answer)}")
    return OK


def validate(ctl: Invocation, args: argparse.Namespace) -> int:
    answer = ctl.require("POST", "/v1/validation", hints={
        "not_activated": "activate a number first (mikolicctl activate NUMBER)"})
    ctl.show(answer, render.status_text(answer))
    # an offline license stays active without a server: only an answer counts as a confirmation
    if answer.get("state") in CONFIRMED and (answer.get("last_validation") or {}).get("outcome") == "ok":
        return OK
    ctl.note(f"the license was not confirmed: state {answer.get('state')} — {answer.get('reason')}")
    return FAILED


def release(ctl: Invocation, args: argparse.Namespace) -> int:
    nothing = "nothing to release: no seat is bound on this host (see mikolicctl status)"
    answer = ctl.require("DELETE", "/v1/activation", hints={"not_activated": nothing})
    if answer.get("released") is False:
        raise Failure(nothing, FAILED, "not_bound", answer)
    number = answer.get("registration_number") or "the registration number"
    ctl.show(answer, f"released: this host's seat of {number} was given back to the licensing server; the "
                 f"number stays here (state {answer.get('state')}).\n"
                 "next: activate it on the host that should hold it (mikolicctl activate NUMBER there), "
                 "or here again (mikolicctl activate NUMBER)")
    return OK
