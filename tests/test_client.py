"""Pure parts of the licensing client: reading Retry-After."""
from email.utils import formatdate

import pytest

from mikolicd.client import MAX_RETRY_AFTER, retry_after

NOW = 1_795_000_000.0


@pytest.mark.parametrize("header,seconds", [("120", 120.0), ("0", 0.0), ("-5", 0.0), ("1e9", MAX_RETRY_AFTER),
                                            (None, None), ("", None), ("soon", None)])
def test_retry_after_in_seconds_is_read_and_capped(header, seconds):
    assert retry_after(header, NOW) == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    assert retry_after(formatdate(NOW + 90, usegmt=True), NOW) == 90.0


def test_retry_after_date_in_the_past_means_at_once():
    assert retry_after(formatdate(NOW - 90, usegmt=True), NOW) == 0.0
