"""The agent's rules, in process: a fake clock, a fake licensing client, a temporary store. Milliseconds each."""
from __future__ import annotations

import json
import logging

import pytest

from fakes import (DAY, HOST, NUMBER, OTHER, OTHER_HOST, TTL, Box, FakeServer, make_box, product, raising,
                   unreachable)
from mikolicd import journal, protocol, regnum
from mikolicd.client import Answer
from mikolicd.errors import Conflict, InputError, Kind, NotFound, ServerRefused, UntrustedAnswer
from mikolicd.fingerprint.binding import components
from mikolicd.jws import verify_self_signed
from mikolicd.store import CLOCK, STATE
from mikolicd.trust import Outcome


@pytest.fixture
def box(tmp_path) -> Box:
    return make_box(tmp_path / "state")


@pytest.fixture
def active(box: Box) -> Box:
    box.run(box.agent.activate(NUMBER))
    return box


def state_file(box: Box) -> dict:
    return json.loads((box.state_dir / STATE).read_text())


def entries(caplog, message_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "MESSAGE_ID", None) == message_id]


# ------------------------------------------------------------------------------------------ activation
def test_activation_stores_the_document_and_the_box_is_active(active):
    status = active.agent.status()
    assert status["state"] == "active" and status["last_validation"]["outcome"] == "ok"
    assert state_file(active)["document"].count(".") == 2
    assert json.loads((active.state_dir / CLOCK).read_text())["trusted"] == int(active.clock.true)


def test_every_request_carries_a_new_nonce_and_this_installation(active):
    active.run(active.agent.validate())
    (_, first), (_, second) = active.server.calls
    assert first["nonce"] != second["nonce"]
    assert first["installation"]["id"] == second["installation"]["id"] == active.agent.installation.id
    assert first["installation"]["token"] is None and second["installation"]["token"]


def test_the_next_request_presents_the_token_of_the_last_document(active):
    token = active.agent.loaded.license.token
    active.run(active.agent.validate())
    assert active.server.calls[-1][1]["installation"]["token"] == token


def test_a_malformed_number_is_refused_without_asking_the_server(box):
    with pytest.raises(InputError) as err:
        box.run(box.agent.activate("MIKO-123"))
    assert err.value.kind is Kind.INVALID_REGISTRATION_NUMBER and box.server.calls == []


@pytest.mark.parametrize("forge, why", [
    (lambda s, b: FakeServer().document(b), "unknown key"),
    (lambda s, b: s.document(b, registration_number=OTHER), "another registration number"),
    (lambda s, b: s.document(b, binding={"components": components(OTHER_HOST)}), "different hardware"),
    (lambda s, b: s.document(b, install_id="0" * 32), "another installation"),
    (lambda s, b: s.document(b, exp=int(s.clock.true) - 1), "past its offline limit"),
    (lambda s, b: s.document(b)[:-4], "signature does not verify"),
])
def test_an_untrustworthy_document_is_rejected_and_nothing_is_stored(box, forge, why):
    box.server.on[protocol.ACTIVATION] = lambda path, body: Answer({"document": forge(box.server, body)}, None)
    with pytest.raises(UntrustedAnswer) as err:
        box.run(box.agent.activate(NUMBER))
    assert err.value.kind is Kind.DOCUMENT_REJECTED and why in err.value.message
    assert not (box.state_dir / STATE).exists()


def replay_of(document: str):
    return lambda path, body: Answer({"document": document}, None)


def test_a_replayed_document_does_not_confirm_a_validation(active, caplog):
    stored = state_file(active)["document"]
    active.clock.advance(DAY)
    active.server.on[protocol.VALIDATION] = replay_of(stored)
    status = active.run(active.agent.validate())
    assert status["state"] == "grace" and status["last_validation"]["outcome"] == "unconfirmed"
    assert "nonce" in status["last_validation"]["message"]
    assert state_file(active)["document"] == stored
    assert entries(caplog, journal.INTERCEPTION)


def test_a_replay_does_not_move_the_trusted_time(active):
    before = json.loads((active.state_dir / CLOCK).read_text())
    active.server.on[protocol.VALIDATION] = replay_of(state_file(active)["document"])
    active.clock.advance(3600)
    active.run(active.agent.validate())
    assert json.loads((active.state_dir / CLOCK).read_text()) == before


def test_a_replayed_document_is_refused_as_an_activation(box):
    other = make_box(box.state_dir.with_name("other"), server=box.server)
    other.run(other.agent.activate(NUMBER))
    box.server.on[protocol.ACTIVATION] = replay_of(state_file(other)["document"])
    with pytest.raises(UntrustedAnswer) as err:
        box.run(box.agent.activate(NUMBER))
    assert err.value.kind in (Kind.BAD_SERVER_ANSWER, Kind.DOCUMENT_REJECTED)


# -------------------------------------------------------------------------------------- validations
def test_an_unreachable_server_leaves_the_box_in_grace_with_its_features(active):
    active.server.on[protocol.VALIDATION] = unreachable()
    status = active.run(active.agent.validate())
    assert status["state"] == "grace" and "connection refused" in status["reason"]
    assert active.agent.feature(33)["available"] is True


def test_grace_ends_in_expired_once_the_offline_window_has_passed(active):
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    active.clock.advance(TTL + 1)
    assert active.agent.status()["state"] == "expired"
    assert active.agent.feature(33)["available"] is False


def test_a_signed_revocation_ends_trust_and_drops_the_document(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2009, body))
    status = active.run(active.agent.validate())
    assert status["state"] == "invalid" and "(2009)" in status["reason"]
    assert state_file(active)["document"] is None
    assert active.agent.feature(33)["available"] is False


def test_editing_the_state_after_a_revocation_does_not_bring_the_license_back(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2009, body))
    active.run(active.agent.validate())
    data = state_file(active)
    data["validation"]["outcome"] = "ok"
    (active.state_dir / STATE).write_text(json.dumps(data))
    (active.state_dir / CLOCK).write_text(json.dumps({"trusted": 0, "boottime": 0, "boot_id": ""}))
    again = active.restart()
    assert again.agent.status()["state"] in ("pending", "invalid")
    assert again.agent.feature(33)["available"] is False


@pytest.mark.parametrize("code", [2008, 2009, 2011, 2060])
def test_an_unsigned_refusal_that_would_end_trust_counts_as_no_answer(active, caplog, code):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(code, body, signed=False))
    status = active.run(active.agent.validate())
    assert status["state"] == "grace" and status["last_validation"]["outcome"] == "unconfirmed"
    assert active.agent.feature(33)["available"] is True
    assert entries(caplog, journal.INTERCEPTION)


def test_a_signed_refusal_answering_another_request_counts_as_no_answer(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2009, body, nonce="old"))
    assert active.run(active.agent.validate())["state"] == "grace"


def test_a_signed_expiry_refusal_makes_the_license_expired(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2011, body))
    assert active.run(active.agent.validate())["state"] == "expired"


def test_a_copied_installation_is_told_what_to_do(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2060, body))
    status = active.run(active.agent.validate())
    assert status["state"] == "invalid" and "mikolicctl activate" in status["reason"]


def test_a_refusal_that_leaves_the_license_keeps_the_document_until_its_limit(active):
    active.server.on[protocol.VALIDATION] = raising(lambda body: active.server.refusal(2026, body, signed=False))
    status = active.run(active.agent.validate())
    assert status["state"] == "grace" and status["last_validation"]["outcome"] == "refused"
    assert state_file(active)["document"] is not None


# ------------------------------------------------------------------------------------------- time
def test_a_clock_set_to_1970_judges_dates_at_the_trusted_time_which_keeps_counting(active):
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    active.clock.wall = 0.0
    assert active.agent.status()["state"] == "grace"
    active.clock.advance(TTL + 1)  # real time passes; the wall clock runs on from 1970
    assert active.agent.status()["state"] == "expired"


def test_a_clock_cycled_back_and_forth_gains_nothing(active):
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    for step in range(int(TTL // 3600) + 2):
        active.clock.advance(3600)
        active.clock.wall += 59 * 60 if step % 2 else -119 * 60  # the owner's clock games
        active.agent.keep_time(active.clock.read())
    assert active.agent.status()["state"] == "expired"


def test_a_clock_days_behind_stays_active_and_the_status_says_by_how_much(active, caplog):
    active.clock.wall -= 3 * DAY
    status = active.run(active.agent.validate())
    assert status["state"] == "active"
    assert status["clock"]["wall_behind_by_s"] == 3 * DAY
    assert [w["code"] for w in status["warnings"]] == ["clock_behind"]
    assert len(entries(caplog, journal.CLOCK_BEHIND)) == 1
    active.agent.status()
    assert len(entries(caplog, journal.CLOCK_BEHIND)) == 1


def test_a_fresh_answer_moves_the_trusted_time_back_when_the_clock_ran_ahead(active):
    active.clock.wall += 30 * DAY  # the box's clock ran a month ahead and the agent trusted it
    active.agent.keep_time(active.clock.read()._replace(boottime=active.clock.boottime + 600))
    active.clock.wall -= 30 * DAY
    active.run(active.agent.validate())
    assert active.agent.status()["clock"]["wall_behind_by_s"] == 0


def test_after_a_reboot_the_trusted_time_starts_from_the_checkpoint(active):
    checkpoint = json.loads((active.state_dir / CLOCK).read_text())["trusted"]
    active.clock.reboot()
    active.clock.wall = 0.0
    again = active.restart()
    assert again.agent.judged_at() == checkpoint


def test_the_trusted_time_is_checkpointed_every_ten_minutes(active):
    first = json.loads((active.state_dir / CLOCK).read_text())
    active.clock.advance(599)
    active.agent.keep_time(active.clock.read())
    assert json.loads((active.state_dir / CLOCK).read_text()) == first
    active.clock.advance(1)
    active.agent.keep_time(active.clock.read())
    assert json.loads((active.state_dir / CLOCK).read_text())["trusted"] == first["trusted"] + 600


# ---------------------------------------------------------------------------------- dates and trials
def test_a_trial_past_its_end_date_is_expired(tmp_path):
    box = make_box(tmp_path)
    box.server.products = [product(11, "MikoPBX", trial=True, expires="2027-01-20")]
    box.run(box.agent.register_trial({"companyname": "A", "email": "a@b.example", "contact": "C"}))
    assert box.agent.status()["state"] == "trial"
    box.clock.advance(6 * DAY)
    assert box.agent.status()["state"] == "expired" and box.agent.feature(33)["available"] is False


def test_a_trial_with_five_days_left_warns_and_journals_each_threshold_once(tmp_path, caplog):
    box = make_box(tmp_path)
    box.server.products = [product(11, "MikoPBX", trial=True, expires="2027-01-19")]
    box.run(box.agent.register_trial({"companyname": "A", "email": "a@b.example", "contact": "C"}))
    warning = next(w for w in box.agent.status()["warnings"] if w["code"] == "expires_soon")
    assert (warning["days"], warning["product"]) == (5, 11)
    assert sorted(r.DAYS_THRESHOLD for r in entries(caplog, journal.EXPIRES_SOON)) == ["30", "7"]
    box.restart().agent.status()
    assert len(entries(caplog, journal.EXPIRES_SOON)) == 2


def test_a_module_that_ended_is_unavailable_while_the_pbx_stays_active(tmp_path):
    box = make_box(tmp_path)
    box.server.products = [product(11, "MikoPBX", trial=False, expires=None),
                           product(1001, "Module 1001", trial=True, expires="2027-01-10")]
    box.run(box.agent.activate(NUMBER))
    assert box.agent.status()["state"] == "active"
    assert box.agent.feature(1001)["available"] is False and box.agent.feature(33)["available"] is True


def test_a_trial_form_missing_fields_names_them_all_without_a_server_call(box):
    with pytest.raises(InputError) as err:
        box.run(box.agent.register_trial({"companyname": ""}))
    assert "companyname" in err.value.message and "email" in err.value.message and "contact" in err.value.message
    assert box.server.calls == []


# ----------------------------------------------------------------------------- seats and sessions
def test_capturing_the_seat_feature_answers_the_activations_session(active):
    captured = active.run(active.agent.capture(33))
    assert state_file(active)["seat_session"] == captured["session"]


def test_releasing_the_seats_session_is_a_release_and_nothing_rebinds_it(active):
    session = active.run(active.agent.capture(33))["session"]
    released = active.run(active.agent.release_capture(33, session))
    assert released == {"released": True, "feature": 33, "state": "pending"}
    assert protocol.RELEASE in active.server.paths()
    with pytest.raises(Conflict):
        active.run(active.agent.validate())
    assert active.agent.feature(33)["available"] is False


@pytest.fixture
def with_module(tmp_path) -> tuple[Box, str]:
    """Active with a module (1001) whose seat this host captured: the box and the session."""
    box = make_box(tmp_path)
    box.server.products = [product(11, "MikoPBX", trial=False, expires=None),
                           product(1001, "Module 1001", trial=True, expires=None)]
    box.run(box.agent.activate(NUMBER))
    return box, box.run(box.agent.capture(1001))["session"]


def test_a_module_capture_survives_a_restart_and_is_given_back_once(with_module):
    box, session = with_module
    again = box.restart()
    assert again.run(again.agent.release_capture(1001, session))["released"] is True
    with pytest.raises(NotFound):
        again.run(again.agent.release_capture(1001, session))


def test_release_keeps_the_number_and_the_last_validation(active):
    status = active.run(active.agent.release())
    assert status["state"] == "pending" and "given back" in status["reason"]
    assert status["registration_number"].startswith("MIKO-AAAAA") and status["last_validation"]["outcome"] == "ok"


def test_forgetting_the_number_releases_the_seat_first(active):
    status = active.run(active.agent.forget())
    assert status["state"] == "unlicensed" and active.server.paths()[-1] == protocol.RELEASE


def test_another_number_while_one_is_active_needs_replace(active):
    with pytest.raises(Conflict) as err:
        active.run(active.agent.activate(OTHER))
    assert err.value.kind is Kind.NUMBER_ACTIVE and "replace" in err.value.message
    status = active.run(active.agent.activate(OTHER, replace_active=True))
    assert status["registration_number"].startswith("MIKO-EEEEE")
    released = [b for p, b in active.server.calls if p == protocol.RELEASE]
    assert released and released[0]["registration_number"] == NUMBER


def test_a_replacement_number_that_is_refused_leaves_the_old_number_active(active):
    def activate(path, body):
        if body["registration_number"] == OTHER:
            raise active.server.refusal(protocol.INVALID_NUMBER, body, signed=False)
        return Answer({"document": active.server.document(body)}, None)
    active.server.on[protocol.ACTIVATION] = activate
    with pytest.raises(ServerRefused):
        active.run(active.agent.activate(OTHER, replace_active=True))
    status = active.agent.status()
    assert status["state"] == "active" and status["registration_number"] == regnum.mask(NUMBER)


def test_a_coupon_says_what_it_changed(tmp_path):
    box = make_box(tmp_path)
    box.server.products = [product(11, "MikoPBX", trial=True, expires="2027-02-01")]
    box.run(box.agent.activate(NUMBER))
    box.server.products = [product(11, "MikoPBX", trial=False, expires=None)]
    status = box.run(box.agent.redeem("mikoupd-aaaaa-bbbbb-ccccc-ddddd"))
    assert status["changed"] == [{"product": 11, "name": "MikoPBX", "before": "2027-02-01", "after": None,
                                  "trial": False}]


# ---------------------------------------------------------------------------------------- offline
def offline_answer(box: Box, request: str, **changes) -> str:
    claims, _key = verify_self_signed(request, "mikolic-offline-request+jwt")
    body = {"registration_number": claims["registration_number"], "host": claims["host"], "nonce": claims["nonce"],
            "installation": {"id": claims["install_id"]}}
    return box.server.document(body, offline=True, exp=int(box.clock.true + 365 * DAY), **changes)


def test_an_offline_answer_makes_the_box_active_without_any_server(box):
    box.server.on = {path: unreachable() for path in (protocol.VALIDATION, protocol.ACTIVATION)}
    box.agent.state = box.agent.state._replace(registration_number=NUMBER)
    request = box.agent.offline_request()
    answer = offline_answer(box, request["request"])
    status = box.agent.apply_offline(answer)
    assert status["state"] == "active" and status["offline"] is True
    box.clock.advance(100 * DAY)
    assert box.run(box.agent.validate())["state"] == "active"
    with pytest.raises(Conflict) as err:
        box.agent.apply_offline(answer)
    assert err.value.kind is Kind.OFFLINE_NOT_REQUESTED


def test_an_offline_answer_for_another_host_is_refused(box):
    box.agent.state = box.agent.state._replace(registration_number=NUMBER)
    request = box.agent.offline_request()["request"]
    answer = offline_answer(box, request, binding={"components": components(OTHER_HOST)})
    with pytest.raises(UntrustedAnswer, match="different hardware"):
        box.agent.apply_offline(answer)


def test_an_offline_answer_can_be_pasted_as_its_code(box):
    from mikolicd import offlinecode
    box.agent.state = box.agent.state._replace(registration_number=NUMBER)
    request = box.agent.offline_request()["request"]
    assert box.agent.apply_offline(offlinecode.encode(offline_answer(box, request)))["state"] == "active"


def test_an_offline_release_drops_the_license_and_signs_a_receipt_with_the_installation_key(active):
    receipt = active.agent.offline_release()
    claims, key = verify_self_signed(receipt["receipt"], "mikolic-release-receipt+jwt")
    assert claims["registration_number"] == NUMBER and claims["install_id"] == active.agent.installation.id
    assert key == active.agent.installation.public and active.agent.status()["state"] == "pending"


# ----------------------------------------------------------------------------------------- storage
def test_a_first_version_state_loads_and_is_carried_over(tmp_path):
    seeded = make_box(tmp_path / "seed")
    seeded.run(seeded.agent.activate(NUMBER))
    old = {"registration_number": NUMBER, "document": state_file(seeded)["document"],
           "validation": {"at": seeded.clock.wall, "outcome": "ok", "server_code": None, "message": ""},
           "clock_high_water": seeded.clock.wall + 5, "extra": {"sessions": {"s-1": 1001}}}
    state_dir = tmp_path / "old"
    state_dir.mkdir(mode=0o700)
    (state_dir / STATE).write_text(json.dumps(old))
    box = make_box(state_dir, seeded.clock, seeded.server)
    assert box.agent.status()["state"] == "active" and box.agent.state.sessions == {"s-1": 1001}
    assert box.agent.judged_at() >= seeded.clock.wall + 5


def test_a_first_version_state_refused_with_2009_stays_invalid(tmp_path):
    state_dir = tmp_path / "old"
    state_dir.mkdir(mode=0o700)
    (state_dir / STATE).write_text(json.dumps({
        "registration_number": NUMBER, "document": "x.y.z", "clock_high_water": 0, "extra": {},
        "validation": {"at": 1.0, "outcome": "refused", "server_code": 2009, "message": "(2009) revoked"}}))
    assert make_box(state_dir).agent.status()["state"] == "invalid"


def test_the_installation_key_is_made_once_and_kept_private(box):
    key = box.state_dir / "installation.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert box.restart().agent.installation.id == box.agent.installation.id


# ------------------------------------------------------------------------------------------ reload
def test_reload_swaps_keys_and_client_together(active):
    new_server = FakeServer(clock=active.clock)
    active.agent.reload(active.agent.setup._replace(keys=new_server.keys, client=new_server))
    assert active.agent.status()["state"] == "invalid"  # the stored document is signed by a key no longer trusted
    active.run(active.agent.activate(NUMBER))
    assert active.agent.status()["state"] == "active" and new_server.calls


def test_the_schedule_validates_again_after_the_interval(active):
    assert active.agent.next_check == pytest.approx(active.clock.wall + 6 * 3600)
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    assert active.agent.next_check - active.clock.wall == pytest.approx(30 * 0.75)
    assert active.agent.outcomes[Outcome.UNREACHABLE.value] == 1


def test_the_agent_sleeps_until_the_next_thing_to_do(active):
    now = active.clock.read()
    assert active.agent._sleep_for(now) == pytest.approx(600)
    active.agent.next_check = now.wall + 30
    assert active.agent._sleep_for(now) == pytest.approx(30)


def test_when_the_watchdog_keeps_the_time_the_schedule_sleeps_until_its_next_check(active):
    now = active.clock.read()
    active.agent.next_check = now.wall + 3600
    assert active.agent._sleep_for(now, checkpoints=False) == pytest.approx(3600)


def test_with_nothing_planned_and_the_time_kept_elsewhere_the_agent_sleeps_until_woken(box):
    box.agent.keep_time()
    assert box.agent._sleep_for(box.clock.read(), checkpoints=False) is None
    assert box.agent._sleep_for(box.clock.read()) == pytest.approx(600)


def test_a_trial_answer_whose_number_differs_from_its_document_is_rejected(box):
    box.server.on[protocol.TRIAL] = lambda path, body: Answer(
        {"registration_number": OTHER, "document": box.server.document(body)}, None)
    with pytest.raises(UntrustedAnswer):
        box.run(box.agent.register_trial({"companyname": "A", "email": "a@b.example", "contact": "C"}))


def test_the_host_is_judged_by_the_components_it_has(tmp_path):
    box = make_box(tmp_path)
    box.run(box.agent.activate(NUMBER))
    moved = box.restart(hardware=OTHER_HOST)
    assert moved.agent.status()["state"] == "invalid"
    assert HOST.values != OTHER_HOST.values


def test_metrics_count_validations_by_outcome_and_time_each_server_call(active):
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    view = active.agent.metrics_view()
    assert view.state == "grace" and view.validations.unreachable == 1 and view.latency.count == 2
    assert view.offline_window_left == pytest.approx(TTL) and view.products[0].days_left is None


def test_a_module_feature_refused_for_its_own_reasons_leaves_the_license(active):
    for code in (2008, 2011):
        active.server.on[protocol.CAPTURE] = raising(lambda body: active.server.refusal(code, body))
        with pytest.raises(ServerRefused):
            active.run(active.agent.capture(1001))
        assert active.agent.status()["state"] == "active"


def test_releasing_an_unknown_module_session_leaves_the_license(with_module):
    box, session = with_module
    box.server.on[protocol.RELEASE_FEATURE] = raising(lambda body: box.server.refusal(2009, body))
    with pytest.raises(ServerRefused):
        box.run(box.agent.release_capture(1001, session))
    assert box.agent.status()["state"] == "active"


def test_activating_the_number_already_active_asks_no_server(active):
    calls = len(active.server.calls)
    assert active.run(active.agent.activate(NUMBER.lower()))["state"] == "active"
    assert len(active.server.calls) == calls


def test_the_trial_answer_tells_the_admin_the_new_number_in_full(box):
    status = box.run(box.agent.register_trial({"companyname": "A", "email": "a@b.example", "contact": "C"}))
    assert status["registration_number"] == NUMBER


def test_a_feature_lists_this_hosts_sessions_of_it(active):
    session = active.run(active.agent.capture(33))["session"]
    assert active.agent.feature(33)["sessions"] == [session]


def test_the_status_body_is_rebuilt_when_anything_it_shows_changes_or_a_second_later(active):
    first = active.agent.status_body()
    active.clock.advance(0.5)
    assert active.agent.status_body() is first
    active.server.on[protocol.VALIDATION] = unreachable()
    active.run(active.agent.validate())
    assert json.loads(active.agent.status_body())["state"] == "grace"
    cached = active.agent.status_body()
    active.clock.advance(TTL)  # time alone ends the license
    assert json.loads(active.agent.status_body())["state"] == "expired" and active.agent.status_body() is not cached


# ---------------------------------------------------------------------------------- fingerprint
def test_an_unlicensed_host_with_its_strong_ids_is_not_called_degraded(box):
    status = box.agent.status()
    assert status["fingerprint"]["degraded"] is False and status["fingerprint"]["bound"] is False
    assert status["fingerprint"]["degraded"] == box.agent.fingerprint_report()["degraded"]
    assert "fingerprint_degraded" not in [w["code"] for w in status["warnings"]]
