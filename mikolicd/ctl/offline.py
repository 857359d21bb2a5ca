"""`mikolicctl offline …`: activation and release for a box without a network, by file or copy-paste code."""
from __future__ import annotations

import argparse
import re
from urllib.parse import quote
import sys
from pathlib import Path

from ..exits import OK, USAGE, Failure, emit, file_failure
from ..offlinecode import CodeError, decode
from . import render
from .outfile import PrivateFile
from .invocation import Invocation

DEFAULT_REQUEST = Path("mikolicd-offline-request.txt")
DEFAULT_RECEIPT = Path("mikolicd-offline-receipt.txt")
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PATHLIKE = re.compile(r"[./~]")  # never in a code, often in a file name


def request(ctl: Invocation, args: argparse.Namespace) -> int:
    with PrivateFile(args.output, "the offline request") as out:
        query = f"?registration_number={quote(args.number)}" if args.number else ""
        answer = ctl.require("GET", f"/v1/offline/request{query}")
        out.write(f"{answer['request']}\n")
    ctl.show({**answer, "file": str(args.output)}, answer["code"])
    if not ctl.json:
        ctl.note(f"offline request written to {args.output} (mode 0600). Take the file, or the code above, to "
                     "a machine with internet access and have Miko answer it (with the reference server: "
                     "mikolic-server offline answer FILE); then install the answer here with "
                     "mikolicctl offline apply FILE|CODE. Only the latest request can be applied.")
    return OK


def _is_file(given: str) -> bool:
    """A pasted code is no file name, and may be too long for one."""
    try:
        return Path(given).is_file()
    except OSError:
        return False


def response_text(given: str) -> str:
    """The signed response out of a file, standard input (`-`), or the argument itself: a JWS or a code. A
    code is checked here, block by block, so a typo is named before anything is sent."""
    if given == "-":
        text = sys.stdin.read()
    elif _JWS.fullmatch(given.strip()):
        text = given
    elif _is_file(given) or _PATHLIKE.search(given):
        try:
            text = Path(given).read_text(errors="replace")
        except OSError as exc:
            raise file_failure("cannot read the offline response", Path(given), exc) from None
    else:
        text = given
    text = text.strip()
    if _JWS.fullmatch(text):
        return text
    try:
        return decode(text)
    except CodeError as exc:
        raise Failure(f"the offline code is not right: {exc}; nothing was sent", USAGE, "invalid_code") from None


def apply(ctl: Invocation, args: argparse.Namespace) -> int:
    answer = ctl.require("POST", "/v1/offline/response", {"response": response_text(args.response)})
    ctl.show(answer, f"offline response applied\n{render.status_text(answer)}")
    return OK


def release(ctl: Invocation, args: argparse.Namespace) -> int:
    with PrivateFile(args.output, "the release receipt") as out:
        answer = ctl.require("POST", "/v1/offline/release", hints={
            "not_activated": "nothing to release: no license is held on this host (see mikolicctl status)"})
        try:
            out.write(f"{answer['receipt']}\n")
        except Failure as failure:
            emit(answer["code"])
            failure.message += "; the license is already dropped: keep the receipt's code printed above"
            raise
    ctl.show({**answer, "file": str(args.output)}, answer["code"])
    if not ctl.json:
        ctl.note(f"the license on this host is dropped; its release receipt is in {args.output} (mode 0600). "
                     "Give the file, or the code above, to Miko to free the seat (with the reference server: "
                     "mikolic-server offline release FILE); a receipt frees the seat once.")
    return OK
