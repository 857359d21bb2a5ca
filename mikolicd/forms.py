"""The trial form: one set of rules for the agent, which refuses bad input before any network call, and
for the reference server, which must refuse the same input from anyone else."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

FIELDS = ("companyname", "email", "contact", "tel", "inn", "description")
REQUIRED = ("companyname", "email", "contact")
MAX_TEXT = 256
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
INN = re.compile(r"\d{10,12}")


class FormError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class TrialForm(NamedTuple):
    companyname: str
    email: str
    contact: str
    tel: str = ""
    inn: str = ""
    description: str = ""


def is_unicode(text: str) -> bool:
    """Python strings may hold lone surrogates (JSON's "\\ud800", a bad multipart part): no text does."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def problems(raw: Mapping[str, object]) -> list[FormError]:
    """Every problem at once, so an admin fixes the form in one go."""
    found = [FormError(name, f"unknown field {name[:40]!r}; the fields are {', '.join(FIELDS)}")
             for name in sorted(set(raw) - set(FIELDS))]
    for name in FIELDS:
        value = raw.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            found.append(FormError(name, f"{name} must be a string"))
        elif len(value) > MAX_TEXT:
            found.append(FormError(name, f"{name} is longer than {MAX_TEXT} characters"))
        elif not is_unicode(value):
            found.append(FormError(name, f"{name} is not valid Unicode text (a lone surrogate)"))
        elif name in REQUIRED and not value.strip():
            found.append(FormError(name, f"{name} is required for a trial"))
        elif name == "email" and not EMAIL.fullmatch(value.strip()):
            found.append(FormError(name, "email is not an e-mail address (name@example.com)"))
        elif name == "inn" and value.strip() and not INN.fullmatch(value.strip()):
            found.append(FormError(name, "inn must be 10 to 12 digits"))
    return found


def trial_form(raw: Mapping[str, object]) -> TrialForm:
    """The form with every field trimmed; FormError (the first problem, naming all) when it is not valid."""
    found = problems(raw)
    if found:
        first = found[0]
        raise FormError(first.field, "; ".join(str(p) for p in found))
    return TrialForm(**{name: str(raw.get(name) or "").strip() for name in FIELDS})


def small_number(raw: str) -> int | None:
    """A product, feature or similar id as a caller writes it: ASCII digits, at most nine; else None."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
