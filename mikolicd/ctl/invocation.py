"""One mikolicctl run: which agent it talks to, how it prints, and how the agent's refusals end it."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import regnum
from ..agentclient import AgentUnreachable, call
from ..exits import FAILED, UNREACHABLE, USAGE, Failure, emit, say
from .render import error_line

PROG = "mikolicctl"
T = TypeVar("T")
# Advice the agent cannot give, since it does not know how it was called.
HINTS = {"forbidden": "run it as root (sudo mikolicctl …) or as a member of a group in [api] admin_groups"}


def checked(normalise: Callable[[str], T], text: str) -> T:
    """Input that can never be valid is refused here, with the format hint printed as it is."""
    try:
        return normalise(text)
    except regnum.FormatError as exc:
        raise Failure(f"{exc}; nothing was sent", USAGE, "invalid_input") from None


@dataclass(frozen=True)
class Invocation:
    socket: Path
    json: bool

    def ask(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        try:
            return call(self.socket, method, path, body)
        except AgentUnreachable as exc:
            raise Failure(str(exc), UNREACHABLE, "agent_unreachable") from None

    def require(self, method: str, path: str, body: dict | None = None,
                hints: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The answer of a call that must succeed; a refusal ends the command with the agent's words and,
        where one helps, what to type next."""
        code, answer = self.ask(method, path, body)
        if code < 400:
            return answer
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        kind = str(error.get("code") or "failed")
        hint = {**HINTS, **(hints or {})}.get(kind)
        raise Failure(error_line(answer) + (f"; {hint}" if hint else ""), FAILED, kind, answer)

    def show(self, answer: Any, text: str) -> None:
        """The API's JSON with --json, else the words for the admin."""
        emit(json.dumps(answer, indent=2, ensure_ascii=False) if self.json else text)

    @staticmethod
    def note(message: str) -> None:
        """A line on standard error, beside the answer on standard output."""
        say(PROG, message)
