"""The license state machine, judged on plain values."""
import datetime as dt

import pytest

from mikolicd.fingerprint import match
from mikolicd.license import Feature, License, Product
from mikolicd.lifecycle import (CLOCK_TOLERANCE, Facts, LicenseState, evaluate, feature_status)
from mikolicd.store import Validation

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc).timestamp()
DAY = 86400
NUMBER = "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"
HOST = {"system_uuid": "u", "system_serial": "s", "board_serial": "b", "nic": ["n"]}


def lic(*, trial=False, expires=None, iat=NOW - DAY, exp=NOW + 13 * DAY, number=NUMBER):
    product = Product(11, "MikoPBX", trial, expires, (Feature(33, "MikoPBX", 1, 0, 1),))
    return License(number, "lic-1", {}, HOST, int(iat), int(exp), (product,))


def facts(license=None, *, number=NUMBER, error=None, host=HOST, validation=None, now=NOW, high_water=0.0):
    binding = match(license.binding, host) if license else None
    return Facts(number, license, error, binding, validation or Validation(NOW - DAY, "ok"), now, high_water)


def test_no_registration_number_is_unlicensed():
    assert evaluate(facts(None, number=None)).state is LicenseState.UNLICENSED


def test_number_without_document_is_pending():
    assert evaluate(facts(None)).state is LicenseState.PENDING


def test_document_for_another_number_leaves_the_new_number_pending():
    other = lic(number="MIKO-ZZZZZ-BBBBB-CCCCC-DDDDD")
    assert evaluate(facts(other)).state is LicenseState.PENDING


def test_confirmed_license_is_active():
    assert evaluate(facts(lic())).state is LicenseState.ACTIVE


def test_trial_product_gives_trial_state():
    verdict = evaluate(facts(lic(trial=True, expires=dt.date(2026, 12, 28))))
    assert verdict.state is LicenseState.TRIAL and "2026-12-28" in verdict.reason


def test_unreachable_server_inside_exp_is_grace_until_exp():
    verdict = evaluate(facts(lic(), validation=Validation(NOW, "unreachable", None, "connection refused")))
    assert verdict.state is LicenseState.GRACE and verdict.grace_until == NOW + 13 * DAY


def test_past_exp_is_expired_even_offline():
    verdict = evaluate(facts(lic(exp=NOW - 1), validation=Validation(NOW, "unreachable")))
    assert verdict.state is LicenseState.EXPIRED


def test_trial_past_its_end_date_is_expired():
    assert evaluate(facts(lic(trial=True, expires=dt.date(2026, 11, 27)))).state is LicenseState.EXPIRED


def test_revocation_answer_is_invalid():
    verdict = evaluate(facts(lic(), validation=Validation(NOW, "refused", 2009, "(2009) License key error")))
    assert verdict.state is LicenseState.INVALID and "2009" in verdict.reason


def test_feature_expired_answer_is_expired():
    assert evaluate(facts(lic(), validation=Validation(NOW, "refused", 2011, "x"))).state is LicenseState.EXPIRED


def test_untrusted_stored_document_is_invalid():
    assert evaluate(facts(None, error="document signature does not verify")).state is LicenseState.INVALID


def test_binding_to_other_hardware_is_invalid():
    other = {"system_uuid": "x", "system_serial": "y", "board_serial": "z", "nic": ["w"]}
    verdict = evaluate(facts(lic(), host=other))
    assert verdict.state is LicenseState.INVALID and "binding" in verdict.reason


def test_clock_moved_back_by_days_is_invalid():
    verdict = evaluate(facts(lic(), now=NOW - 3 * DAY, high_water=NOW))
    assert verdict.state is LicenseState.INVALID and "clock" in verdict.reason


@pytest.mark.parametrize("step", [60, 3600, CLOCK_TOLERANCE - 1])
def test_small_clock_steps_back_raise_no_alarm(step):
    assert evaluate(facts(lic(), now=NOW - step, high_water=NOW)).state is LicenseState.ACTIVE


def test_clock_rolled_back_cannot_unlock_an_ended_trial():
    ended = lic(trial=True, expires=dt.date(2026, 11, 20), iat=NOW)
    assert evaluate(facts(ended, now=NOW - 10 * DAY)).state is LicenseState.EXPIRED


def test_clock_at_1970_is_unknown_time_not_tampering():
    verdict = evaluate(facts(lic(), now=1000.0, high_water=NOW))
    assert verdict.state is LicenseState.ACTIVE and verdict.clock_unknown


def test_feature_available_while_in_grace():
    grace = evaluate(facts(lic(), validation=Validation(NOW, "unreachable")))
    assert feature_status(grace, lic(), 33).available


def test_feature_unavailable_when_expired_with_reason():
    expired = evaluate(facts(lic(exp=NOW - 1)))
    status = feature_status(expired, lic(exp=NOW - 1), 33)
    assert not status.available and "expired" in status.reason


def test_feature_not_in_license_is_unavailable():
    status = feature_status(evaluate(facts(lic())), lic(), 77)
    assert not status.available and "not in the license" in status.reason
