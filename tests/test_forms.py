"""The input rules shared by the JSON API, license.api and the reference server."""
from __future__ import annotations

import pytest

from mikolicd.forms import small_number


@pytest.mark.parametrize("raw,number", [("33", 33), ("0011", 11), ("999999999", 999999999)])
def test_an_id_of_at_most_nine_ascii_digits_is_its_number(raw, number):
    assert small_number(raw) == number


@pytest.mark.parametrize("raw", ["", "-1", "1e3", " 33", "1234567890", "\u0663\u0663", "33\n"])
def test_anything_else_is_not_an_id(raw):
    assert small_number(raw) is None
