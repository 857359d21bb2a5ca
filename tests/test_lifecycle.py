"""The license state machine, judged on plain values."""
import datetime as dt

import pytest

from mikolicd.fingerprint import match
from mikolicd.license import Feature, License, Product
from mikolicd.lifecycle import Facts, LicenseState, Validation, boundaries, evaluate, feature_status
from mikolicd.trust import Outcome

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc).timestamp()
DAY = 86400
NUMBER = "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"
HOST = {"system_uuid": "u", "system_serial": "s", "board_serial": "b", "nic": ["n"]}
OK = Validation(NOW - DAY, Outcome.OK)


def lic(*, trial=False, expires=None, iat=NOW - DAY, exp=NOW + 13 * DAY, number=NUMBER, offline=False):
    product = Product(11, "MikoPBX", trial, expires, (Feature(33, "MikoPBX", 1, 0, 1),))
    return License(number, "lic-1", {}, HOST, int(iat), int(exp), (product,), offline=offline)


def facts(license=None, *, number=NUMBER, error=None, host=HOST, validation=OK, at=NOW, released=False):
    binding = match(license.binding, host) if license else None
    return Facts(number, license, error, binding, validation, at, released)


def test_no_registration_number_is_unlicensed():
    assert evaluate(facts(None, number=None)).state is LicenseState.UNLICENSED


def test_number_without_document_is_pending():
    assert evaluate(facts(None)).state is LicenseState.PENDING


def test_a_released_seat_is_pending_and_says_so():
    verdict = evaluate(facts(None, released=True))
    assert verdict.state is LicenseState.PENDING and "given back" in verdict.reason


def test_document_for_another_number_leaves_the_new_number_pending():
    assert evaluate(facts(lic(number="MIKO-ZZZZZ-BBBBB-CCCCC-DDDDD"))).state is LicenseState.PENDING


def test_confirmed_license_is_active():
    assert evaluate(facts(lic())).state is LicenseState.ACTIVE


def test_trial_product_gives_trial_state():
    verdict = evaluate(facts(lic(trial=True, expires=dt.date(2026, 12, 28))))
    assert verdict.state is LicenseState.TRIAL and "2026-12-28" in verdict.reason


@pytest.mark.parametrize("outcome", [Outcome.UNREACHABLE, Outcome.UNCONFIRMED, Outcome.REFUSED])
def test_a_validation_without_confirmation_inside_exp_is_grace_until_exp(outcome):
    verdict = evaluate(facts(lic(), validation=Validation(NOW, outcome, None, "connection refused")))
    assert verdict.state is LicenseState.GRACE and verdict.grace_until == int(NOW + 13 * DAY)


def test_past_exp_is_expired_even_offline():
    verdict = evaluate(facts(lic(exp=NOW - 1), validation=Validation(NOW, Outcome.UNREACHABLE)))
    assert verdict.state is LicenseState.EXPIRED


def test_an_offline_license_is_active_without_any_server_until_its_exp():
    offline = lic(exp=NOW + 300 * DAY, offline=True)
    assert evaluate(facts(offline, validation=Validation(NOW, Outcome.UNREACHABLE))).state is LicenseState.ACTIVE
    assert evaluate(facts(offline, at=NOW + 301 * DAY)).state is LicenseState.EXPIRED


def test_trial_past_its_end_date_is_expired():
    assert evaluate(facts(lic(trial=True, expires=dt.date(2026, 11, 27)))).state is LicenseState.EXPIRED


def test_a_trial_is_usable_through_its_last_day():
    assert evaluate(facts(lic(trial=True, expires=dt.date(2026, 11, 28)))).state is LicenseState.TRIAL


def test_a_signed_refusal_that_ended_trust_is_invalid():
    ended = Validation(NOW, Outcome.ENDED, 2009, "(2009) License key error")
    verdict = evaluate(facts(None, validation=ended))
    assert verdict.state is LicenseState.INVALID and "2009" in verdict.reason


def test_an_ended_license_stays_ended_even_with_a_document_put_back():
    ended = Validation(NOW, Outcome.ENDED, 2009, "(2009) License key error")
    assert evaluate(facts(lic(), validation=ended)).state is LicenseState.INVALID


def test_a_signed_expiry_refusal_is_expired():
    ended = Validation(NOW, Outcome.ENDED, 2011, "(2011) License feature expired")
    assert evaluate(facts(None, validation=ended)).state is LicenseState.EXPIRED


def test_untrusted_stored_document_is_invalid():
    assert evaluate(facts(None, error="document signature does not verify")).state is LicenseState.INVALID


def test_binding_to_other_hardware_is_invalid():
    other = {"system_uuid": "x", "system_serial": "y", "board_serial": "z", "nic": ["w"]}
    verdict = evaluate(facts(lic(), host=other))
    assert verdict.state is LicenseState.INVALID and "binding" in verdict.reason


def test_feature_available_while_in_grace():
    grace = evaluate(facts(lic(), validation=Validation(NOW, Outcome.UNREACHABLE)))
    assert feature_status(grace, lic(), 33).available


def test_feature_unavailable_when_expired_with_reason():
    expired = evaluate(facts(lic(exp=NOW - 1)))
    status = feature_status(expired, lic(exp=NOW - 1), 33)
    assert not status.available and "expired" in status.reason


def test_feature_not_in_license_is_unavailable():
    status = feature_status(evaluate(facts(lic())), lic(), 77)
    assert not status.available and "not in the license" in status.reason


def test_the_boundaries_are_the_offline_limit_and_the_day_after_each_end_date():
    ends = boundaries(lic(trial=True, expires=dt.date(2026, 12, 1)), NOW)
    assert ends == [dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc).timestamp(), int(NOW + 13 * DAY)]
