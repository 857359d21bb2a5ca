"""Installations, token chains and signed refusals (docs/protocol.md, "Installations, tokens and clones")."""
from __future__ import annotations

import time
import uuid

import pytest

from mikolicd.jws import load_trusted_keys, verify
from mikolicd.license import REFUSAL_TYPE
from mikolicd.refserver.chain import Chain, Verdict, advance, judge
from mikolicd.refserver.db import Owner
from mikolicd.forms import TrialForm
from mikolicd.refserver.fields import Installation
from mikolicd.refserver.licensing import ProtocolError

from conftest import RefServer
from refclient import Agent, Answer, Box, activated, caller, new_host, trial_form
from refclient import box, clock, connection, licensing  # noqa: F401  (fixtures)

COPIED_MESSAGE = ('(2060) This installation was copied: another copy of it holds the seat. Keep it on one machine: '
                  'on the machine that should hold the seat run "mikolicctl activate" again, or ask for the binding '
                  'to be reset.')
HOLDER = Chain("a" * 32, "key", current="T1", parent="T0")


def asking(token: str | None, install_id: str = "a" * 32) -> Installation:
    return Installation(install_id, "key", token)


# the table, as plain values

def test_the_current_token_rotates():
    assert judge(HOLDER, asking("T1"), explicit=False) is Verdict.ROTATE


def test_the_parent_token_rotates_because_the_last_answer_was_lost():
    assert judge(HOLDER, asking("T0"), explicit=False) is Verdict.ROTATE


@pytest.mark.parametrize("token", ["T-older", "unknown", None])
def test_any_other_token_of_the_holder_is_a_copy(token):
    assert judge(HOLDER, asking(token), explicit=False) is Verdict.COPIED


@pytest.mark.parametrize("token", ["T-older", None])
def test_an_activation_with_any_other_token_restarts_the_chain(token):
    assert judge(HOLDER, asking(token), explicit=True) is Verdict.RESTART


def test_an_activation_by_another_installation_on_the_host_takes_the_seat_over():
    assert judge(HOLDER, asking("T1", "b" * 32), explicit=True) is Verdict.TAKEOVER


def test_any_other_call_by_another_installation_is_refused_as_not_the_holder():
    assert judge(HOLDER, asking("T1", "b" * 32), explicit=False) is Verdict.NOT_HOLDER


@pytest.mark.parametrize("explicit", [False, True])
def test_a_seat_without_an_installation_is_adopted_by_the_first_that_asks(explicit):
    assert judge(None, asking(None), explicit) is Verdict.ADOPT


def test_a_lost_first_answer_is_retried_with_no_token_and_passes():
    first = Chain("a" * 32, "key", current="T1", parent=None)
    assert judge(first, asking(None), explicit=False) is Verdict.ROTATE


def test_an_answer_makes_the_presented_token_the_parent_of_a_new_one():
    chain = advance(asking("T0"))
    assert (chain.parent, chain.install_id) == ("T0", "a" * 32) and chain.current not in ("T0", "T1")
    assert 22 <= len(chain.current) <= 64


# the rules applied to the database (in process, fake clock)

def seat_chain(licensing, number: str) -> Chain | None:
    (seat,) = [c for c in licensing.db.license(number).captures if c.feature == 33]
    return seat.chain


def test_a_validation_keeps_the_presented_token_as_parent(licensing):
    agent, host = Agent(), new_host()
    number = licensing.issue(Owner(), 11, None, 1, 30, False)
    licensing.activate(number, caller(agent, host))
    agent.token = seat_chain(licensing, number).current
    licensing.validate(number, caller(agent, host))
    assert seat_chain(licensing, number).parent == agent.token


def test_a_refused_copy_leaves_the_chain_as_it_was(licensing):
    agent, host = Agent(), new_host()
    number = licensing.issue(Owner(), 11, None, 1, 30, False)
    licensing.activate(number, caller(agent, host))
    before = seat_chain(licensing, number)
    agent.token = "stale"
    with pytest.raises(ProtocolError, match="2060"):
        licensing.validate(number, caller(agent, host))
    assert seat_chain(licensing, number) == before


def test_a_validation_writes_exactly_one_row(licensing):
    agent, host = Agent(), new_host()
    number = licensing.trial(TrialForm(**trial_form()), 11, caller(agent, host))["registration_number"]
    agent.token = seat_chain(licensing, number).current
    before = licensing.db.conn.total_changes
    licensing.validate(number, caller(agent, host))
    assert licensing.db.conn.total_changes - before == 1


# over HTTPS: copies, retries, takeover and signed refusals

def refusal_claims(refserver: RefServer, answer: Answer) -> dict:
    return verify(answer[1]["error"]["refusal"], load_trusted_keys(refserver.trusted_keys), REFUSAL_TYPE)


def code(answer: Answer) -> int | None:
    return answer[1]["error"]["code"] if answer[0] != 200 else None


def test_two_copies_validating_in_turn_get_2060_within_three_validations(refserver, box):
    number = activated(refserver, box)
    copy = box.clone()
    codes = [code(b.call("validation", registration_number=number)) for b in (box, copy, box)]
    assert codes == [None, None, 2060]


def test_retrying_with_the_parent_token_never_gets_2060(refserver, box):
    number = activated(refserver, box)
    for _ in range(20):
        assert box.call("validation", registration_number=number, keep=False)[0] == 200
    assert box.call("validation", registration_number=number)[0] == 200


def test_a_box_that_lost_the_answer_to_its_first_activation_retries_with_no_token(refserver, box):
    number = refserver.issue()
    assert box.call("activation", registration_number=number, keep=False)[0] == 200
    assert box.agent.token is None and box.call("validation", registration_number=number)[0] == 200


def moved_on_by_a_copy(refserver: RefServer, box: Box) -> tuple[str, Box]:
    """(number, copy): `box` and its copy validated once each, so `box` holds a token the chain has left."""
    number = activated(refserver, box)
    copy = box.clone()
    box.call("validation", registration_number=number)
    copy.call("validation", registration_number=number)
    return number, copy


def test_a_copy_that_kept_the_newest_token_goes_on_and_the_other_is_refused_for_good(refserver, box):
    number, copy = moved_on_by_a_copy(refserver, box)
    assert code(box.call("validation", registration_number=number)) == 2060
    assert [code(copy.call("validation", registration_number=number)) for _ in range(3)] == [None] * 3
    assert code(box.call("validation", registration_number=number)) == 2060


def test_activation_after_2060_restarts_the_chain_and_the_other_copy_is_refused(refserver, box):
    number = activated(refserver, box)
    copy = box.clone()
    for b in (box, copy, box):
        b.call("validation", registration_number=number)
    assert box.call("activation", registration_number=number)[0] == 200
    assert code(copy.call("validation", registration_number=number)) == 2060
    assert box.call("validation", registration_number=number)[0] == 200


def test_2060_says_what_happened_and_what_to_do(refserver, box):
    number = activated(refserver, box)
    box.agent.token = "stale"
    assert box.call("validation", registration_number=number)[1]["error"]["message"] == COPIED_MESSAGE


def test_a_reinstall_on_the_same_host_takes_the_seat_over(refserver, box):
    number = activated(refserver, box)
    reinstall = Box(box.connection, box.host)
    assert reinstall.call("activation", registration_number=number)[0] == 200
    assert reinstall.call("validation", registration_number=number)[0] == 200


def test_the_installation_that_lost_the_seat_is_told_with_a_signed_2008(refserver, box):
    number = activated(refserver, box)
    Box(box.connection, box.host).call("activation", registration_number=number)
    answer = box.call("validation", registration_number=number)
    claims = refusal_claims(refserver, answer)
    assert (claims["code"], claims["nonce"], claims["install_id"]) == (2008, box.nonce, box.agent.id)
    assert "another installation" in claims["message"]


def test_a_trial_again_from_a_reinstall_takes_its_seat_over(box):
    form = trial_form()
    number = box.call("trial", **form)[1]["registration_number"]
    reinstall = Box(box.connection, box.host)
    assert reinstall.call("trial", **form)[1]["registration_number"] == number
    assert code(box.call("validation", registration_number=number)) == 2008


def test_other_calls_from_an_installation_without_the_seat_are_a_signed_2008(refserver, box):
    number = activated(refserver, box)
    stranger = Box(box.connection, box.host)
    answers = [stranger.call("validation", registration_number=number),
               stranger.call("release", registration_number=number),
               stranger.call("capture", registration_number=number, feature=33)]
    assert [refusal_claims(refserver, a)["code"] for a in answers] == [2008, 2008, 2008]
    assert box.call("validation", registration_number=number)[0] == 200


def test_a_copy_cannot_release_the_seat(refserver, box):
    number, copy = moved_on_by_a_copy(refserver, box)
    assert code(box.call("release", registration_number=number)) == 2060
    assert copy.call("validation", registration_number=number)[0] == 200


def _refused(refserver: RefServer, box: Box, wanted: int) -> tuple[str, Box, Answer]:
    """(number, the box refused, the answer) for a refusal with code `wanted`."""
    if wanted == 2011:
        number = refserver.issue("--days", "-1")
        return number, box, box.call("activation", registration_number=number)
    number = activated(refserver, box)
    if wanted == 2009:
        refserver.admin("revoke", number)
    elif wanted == 2008:
        box = Box(box.connection)
    else:
        box.agent.token = "stale"
    return number, box, box.call("validation", registration_number=number)


@pytest.mark.parametrize("wanted", [2008, 2009, 2011, 2060])
def test_refusals_that_end_trust_are_signed_for_this_request(refserver, box, wanted):
    number, refused, answer = _refused(refserver, box, wanted)
    claims = refusal_claims(refserver, answer)
    assert claims["registration_number"] == number and claims["code"] == wanted == answer[1]["error"]["code"]
    assert (claims["nonce"], claims["install_id"]) == (refused.nonce, refused.agent.id)
    assert claims["message"] == answer[1]["error"]["message"] and abs(claims["iat"] - time.time()) < 60


def test_other_codes_are_not_signed(refserver, box):
    number = activated(refserver, box)
    used, blocked = refserver.coupon(), refserver.coupon()
    refserver.admin("block", blocked)
    box.call("coupon", registration_number=number, coupon=used)
    trialist, email = Box(box.connection), f"{uuid.uuid4().hex}@example.test"
    trialist.call("trial", **trial_form(email, "First LLC"))
    answers = [box.call("activation", registration_number="MIKO-AAAAA-BBBBB-CCCCC-DDDDD"),
               box.call("coupon", registration_number=number, coupon=used),
               box.call("coupon", registration_number=number, coupon="MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD"),
               box.call("coupon", registration_number=number, coupon=blocked),
               Box(box.connection).call("coupon", registration_number=number, coupon=refserver.coupon()),
               Box(box.connection).call("trial", **trial_form(email, "Second LLC")),
               trialist.call("trial", **trial_form())]
    assert [code(a) for a in answers] == [2026, 2041, 2040, 2057, 2037, 2022, 2051]
    assert all("refusal" not in a[1]["error"] for a in answers)
