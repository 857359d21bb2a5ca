"""The agent: applies the pure core's decisions to the local state and the licensing server.

Everything it touches is a parameter — the set-up (trusted keys, the licensing client, the policy, the
host's components), the store, the clocks, the randomness, the installation — so every rule runs in
process with a fake clock, a fake client and a temporary store (`build` makes the real ones). What to
believe is decided by `trust` and `lifecycle`; this module asks, stores, and tells the journal.
Server calls run in worker threads under one lock, so a slow server delays only the caller that asked;
state writes happen on the event loop, one at a time; status is built from memory.
"""
from __future__ import annotations

import asyncio
import json
import logging
import operator
import os
from collections import Counter
from typing import Any, Callable, NamedTuple, Protocol

from . import alerts, journal, metrics, offlinecode, protocol, regnum, trust, views
from .clock import Clock
from .config import Config
from .errors import (Conflict, InputError, Kind, MikolicdError, NotFound, ServerRefused, ServerUnreachable,
                     StorageFailed, UntrustedAnswer)
from .fingerprint.binding import Components, Hardware, Match, match
from .forms import FormError, trial_form
from .installation import Installation
from .jws import TrustedKeys
from .license import OFFLINE_REQUEST_TYPE, RELEASE_RECEIPT_TYPE, DocumentError, License, read_document
from .lifecycle import Facts, Validation, Verdict, boundaries, evaluate, feature_status
from .schedule import Policy
from .store import State, Store
from .trust import Accepted, Checkpoint, Outcome, Reading, Sent, Unconfirmed

log = logging.getLogger("mikolicd.agent")

CHECKPOINT_EVERY = 600.0  # seconds of boot time between clock checkpoints
METRICS_EVERY = 86400.0
PING_FRESH = 1.0  # GET /v1/server asks the server at most this often
STATUS_FRESH = 1.0  # seconds a status body is answered again unchanged
# A module's feature refused (no free seat of it, 2008; its product ended, 2011) leaves the license as it is;
# a revoked number or a copied installation does not. Unknown sessions are 2009 too, so releasing one ends
# nothing but a copy.
FEATURE_REFUSALS_ENDING = frozenset({protocol.KEY_ERROR, protocol.COPIED})


class Client(Protocol):
    """What the agent needs of `client.LicensingClient`; tests pass a fake."""

    def call(self, path: str, body: dict | None = None, method: str = "POST") -> Any: ...

    def ping(self) -> Any: ...

    def close(self) -> None: ...


class Entropy(Protocol):
    def random(self) -> float: ...

    def nonce(self) -> str: ...


class Setup(NamedTuple):
    """What a configuration reload replaces, as one piece: built whole first, then swapped in."""

    config: Config
    keys: TrustedKeys
    client: Client
    policy: Policy
    hardware: Hardware
    components: Components


class Loaded(NamedTuple):
    """The stored document as this host judges it."""

    license: License | None = None
    error: str | None = None
    binding: Match | None = None


def _same(now: tuple, then: tuple) -> bool:
    """The same objects, not equal ones: the state and the license are replaced, never changed in place."""
    return all(map(operator.is_, now, then))


class Agent:
    def __init__(self, setup: Setup, store: Store, clock: Clock, entropy: Entropy, installation: Installation,
                 on_state: Callable[[Verdict], None] = lambda verdict: None):
        self.setup = setup
        self.store = store
        self.clock = clock
        self.entropy = entropy
        self.installation = installation
        self.on_state = on_state
        self.state = store.load()
        self.checkpoint: Checkpoint | None = store.load_checkpoint()
        self.loaded = self._judge(self.state.document)
        self.server_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.failures = 0
        self.next_check: float | None = None
        self.outcomes: Counter[str] = Counter()
        self.latency = metrics.LatencyHistogram()  # of every server call, for /metrics
        self.clock_view: trust.ClockView | None = None  # as the last refresh saw it
        self._ping: tuple[float, dict] | None = None
        self._ping_task: asyncio.Task | None = None
        self._status_cache: tuple[tuple, float, bytes] | None = None
        self.verdict = self._evaluate(self.clock.read())

    # ----------------------------------------------------------------------------------- judging
    def _judge(self, document: str | None) -> Loaded:
        if not document:
            return Loaded()
        try:
            lic = read_document(document, self.setup.keys)
        except DocumentError as exc:
            return Loaded(error=f"stored license not trusted: {exc}")
        return Loaded(lic, None, match(lic.binding, self.setup.components))

    def _floor(self) -> float:
        return float(self.loaded.license.issued_at) if self.loaded.license else 0.0

    def judged_at(self, now: Reading | None = None) -> float:
        return trust.judging_time(self.checkpoint, now or self.clock.read(), self._floor())

    def _evaluate(self, now: Reading) -> Verdict:
        return evaluate(Facts(self.state.registration_number, self.loaded.license, self.loaded.error,
                              self.loaded.binding, self.state.validation, self.judged_at(now),
                              self.state.released))

    def refresh(self) -> Verdict:
        """Re-judge against the clock: one journal entry per state change and per expiry threshold crossed."""
        now = self.clock.read()
        previous, verdict = self.verdict, self._evaluate(now)
        self.verdict = verdict
        if (verdict.state, verdict.reason) != (previous.state, previous.reason):
            if verdict.state != previous.state:
                journal.event(log, logging.WARNING if not verdict.usable else logging.INFO,
                              f"license state {previous.state.value} -> {verdict.state.value}: {verdict.reason}",
                              message_id=journal.STATE_CHANGED, state=verdict.state.value,
                              registration_number=self.state.registration_number)
            self.on_state(verdict)
        self._note_clock(now)
        self._announce(verdict)
        return verdict

    def _note_clock(self, now: Reading) -> None:
        view = trust.clock_view(self.checkpoint, now, self._floor())
        if view.behind and not (self.clock_view is not None and self.clock_view.behind):
            journal.event(log, logging.WARNING, f"the system clock is {view.wall_behind_by / 3600:.1f} h behind the "
                          "last trusted time; dates are judged at the trusted time, nothing is lost; fix the clock "
                          "(NTP)", message_id=journal.CLOCK_BEHIND)
        self.clock_view = view

    def _announce(self, verdict: Verdict) -> None:
        new = alerts.crossed(self.loaded.license, verdict.judged_at, frozenset(self.state.announced))
        if not new or not verdict.usable:
            return
        for _key, product, threshold in new:
            p = self.loaded.license.product(product) if self.loaded.license else None
            journal.event(log, logging.WARNING, f"{p.name if p else product} ends on "
                          f"{p.expires.isoformat() if p and p.expires else '?'}: {threshold} day(s) or less left; "
                          "renew it or redeem a coupon", message_id=journal.EXPIRES_SOON,
                          product=product, days_threshold=threshold,
                          registration_number=self.state.registration_number)
        self._save_quietly(self.state._replace(announced=self.state.announced + tuple(k for k, _, _ in new)))

    # ------------------------------------------------------------------------------------- views
    def _binding(self) -> views.Binding:
        return views.Binding(self.loaded.binding, self.setup.components)

    def status(self) -> dict[str, Any]:
        """Judged once: the verdict and the clock as this refresh saw them."""
        verdict, binding = self.refresh(), self._binding()
        clock = self.clock_view
        assert clock is not None, "refresh keeps the clock's view"
        warnings = alerts.alerts(verdict, self.loaded.license, clock, binding.degraded)
        return views.status(verdict, self.state.registration_number, self.loaded.license, self.state.validation,
                            self.next_check, clock, warnings, binding, self.installation.id)

    def status_body(self) -> bytes:
        """The status as JSON for pollers (the web admin), built at most once a second and again at once
        when anything it shows was replaced: the state, the license, the set-up, the schedule. Between
        builds time alone may have moved a date, so a poller sees that up to STATUS_FRESH late; the
        schedule itself acts on dates when they come, and feature checks always judge afresh."""
        boottime = self.clock.read().boottime
        key = (self.state, self.loaded, self.setup, self.checkpoint, self.next_check)
        cached = self._status_cache
        if cached is None or boottime >= cached[1] or not _same(key, cached[0]):
            self._status_cache = cached = (key, boottime + STATUS_FRESH,
                                           json.dumps(self.status(), ensure_ascii=False).encode())
        return cached[2]

    def license_view(self) -> dict[str, Any]:
        if self.loaded.license is None:
            raise NotFound(Kind.NO_LICENSE, "no license on this host: register a trial or activate a number")
        return views.license_view(self.loaded.license, self.refresh())

    def feature(self, feature_id: int) -> dict[str, Any]:
        sessions = [s for s, f in self.state.sessions.items() if f == feature_id]
        if feature_id == protocol.PBX_FEATURE and self.state.seat_session and self.state.document:
            sessions.append(self.state.seat_session)
        return dict(views.feature(feature_status(self.refresh(), self.loaded.license, feature_id)), sessions=sessions)

    def fingerprint_report(self) -> dict[str, Any]:
        return views.fingerprint(self._binding(), self.setup.hardware)

    def metrics_view(self) -> metrics.MetricsView:
        verdict, lic = self.refresh(), self.loaded.license
        terms = tuple(metrics.ProductTerm(p.id, p.name, alerts.days_left(p.expires, verdict.judged_at)
                                          if p.expires else None) for p in (lic.products if lic else ()))
        counted = self.outcomes
        v = self.state.validation
        return metrics.MetricsView(
            verdict.state.value, terms, max(0.0, lic.exp - verdict.judged_at) if lic else None,
            v.at if v else None, self.next_check,
            metrics.Validations(counted["ok"], counted["refused"] + counted["ended"], counted["unreachable"],
                                counted["unconfirmed"]), self.latency.snapshot())

    def health(self) -> dict[str, Any]:
        source = self.setup.config.source
        return {"ok": True, "state": self.verdict.state.value, "pid": os.getpid(),
                "config": source if source != Config().source else None}

    # ------------------------------------------------------------------------------ state writes
    def _save(self, state: State) -> None:
        try:
            self.store.save(state)
        except StorageFailed as exc:
            log.error("%s; the previous state is kept", exc.message)
            raise StorageFailed(f"{exc.message}; nothing was changed") from None
        self._adopt(state)

    def _save_quietly(self, state: State) -> None:
        """Bookkeeping that may wait for the next write: kept in memory when the disk refuses it."""
        try:
            self._save(state)
        except StorageFailed:
            self._adopt(state)

    def _adopt(self, state: State) -> None:
        self.state = state
        if state.document is None:  # the license is gone: nothing to judge, nothing to check
            self.loaded, self.next_check = Loaded(), None

    def _unlicensed(self, **changes: Any) -> State:
        """The state without its document and the sessions that came with it."""
        return self.state._replace(document=None, seat_session=None, sessions={}, **changes)

    def _checkpoint(self, checkpoint: Checkpoint) -> None:
        try:
            self.store.save_checkpoint(checkpoint)
        except StorageFailed as exc:
            log.warning("%s; the clock checkpoint is kept in memory", exc.message)
        self.checkpoint = checkpoint

    def keep_time(self, now: Reading | None = None, due_only: bool = True) -> None:
        """Checkpoint the trusted time when one is due (CHECKPOINT_EVERY), or now: a reboot then loses
        little. The schedule, the watchdog's pings and the daemon's stop call it."""
        now = now or self.clock.read()
        cp = self.checkpoint
        if not due_only or cp is None or cp.boot_id != now.boot_id or now.boottime - cp.boottime >= CHECKPOINT_EVERY:
            self._checkpoint(trust.advanced(cp, now, self._floor()))

    # ---------------------------------------------------------------------------- server calls
    def _body(self, sent: Sent, fields: dict[str, Any]) -> dict[str, Any]:
        lic = self.loaded.license
        token = lic.token if lic is not None and lic.install_id == self.installation.id else None
        body = dict(fields, host={"components": self.setup.components}, nonce=sent.nonce,
                    installation=self.installation.describe(token))
        if sent.number is not None:
            body["registration_number"] = sent.number
        return body

    async def _ask(self, path: str, number: str | None, ends_trust: frozenset[int] = trust.TRUST_ENDING,
                   **fields: Any) -> tuple[Sent, Any]:
        """One host-scoped call. A signed refusal of a code in `ends_trust` is applied before it is raised: a
        call about one module's feature may be refused for that feature without ending the license."""
        sent = trust.Sent(number, self.entropy.nonce(), self.installation.id)
        body = self._body(sent, fields)
        loop = asyncio.get_running_loop()
        started = self.clock.read().boottime
        try:
            return sent, await loop.run_in_executor(None, self.setup.client.call, path, body)
        except ServerRefused as exc:
            self._on_refusal(exc, sent, ends_trust)
            raise
        except ServerUnreachable as exc:
            journal.event(log, logging.WARNING, f"licensing server unreachable: {exc.message}",
                          message_id=journal.SERVER_ERROR, registration_number=number)
            raise
        finally:
            self.latency.observe(max(0.0, self.clock.read().boottime - started))

    def _on_refusal(self, exc: ServerRefused, sent: Sent, ends_trust: frozenset[int]) -> None:
        journal.event(log, logging.WARNING, f"licensing server refused: {exc.message}", message_id=journal.SERVER_ERROR,
                      server_code=exc.server_code, registration_number=sent.number)
        if sent.number is None or sent.number != self.state.registration_number or self.state.document is None \
                or exc.server_code not in ends_trust:
            return
        judged = trust.judge_refusal(exc.server_code, exc.refusal, sent, self.setup.keys)
        if isinstance(judged, trust.Refusal):
            self._end_trust(exc, judged)
        elif isinstance(judged, Unconfirmed):
            journal.event(log, logging.WARNING, judged.reason, message_id=journal.INTERCEPTION,
                          server_code=exc.server_code, registration_number=sent.number)

    def _end_trust(self, exc: ServerRefused, refusal: trust.Refusal) -> None:
        """The server's signed word: the document goes, so no edit of the state can bring it back."""
        now = self.clock.read()
        ended = Validation(now.wall, Outcome.ENDED, refusal.code, exc.message)
        self._save_quietly(self._unlicensed(validation=ended))
        self.refresh()

    async def _obtain(self, path: str, number: str | None, ends_trust: frozenset[int] = trust.TRUST_ENDING,
                      **fields: Any) -> tuple[Any, Accepted]:
        """A call answered by a document, and the document if it counts (trust.judge_document)."""
        sent, answer = await self._ask(path, number, ends_trust, **fields)
        body = answer.body
        judged = trust.judge_document(body.get("document"), sent, self.setup.keys, self.setup.components,
                                      self.clock.read().wall)
        if isinstance(judged, Accepted) and number is None:
            if body.get("registration_number") != judged.license.registration_number:
                judged = trust.Rejected("the trial answer names another registration number than its document")
        if not isinstance(judged, Accepted):
            kind = Kind.BAD_SERVER_ANSWER if isinstance(judged, Unconfirmed) else Kind.DOCUMENT_REJECTED
            journal.event(log, logging.ERROR, f"licensing server answer not trusted: {judged.reason}; previous "
                          "license kept", message_id=journal.INTERCEPTION if isinstance(judged, Unconfirmed)
                          else journal.SERVER_ERROR, registration_number=number)
            raise UntrustedAnswer(kind, f"{judged.reason}; the previous license is kept")
        return answer, judged

    def _store_fresh(self, accepted: Accepted, **changes: Any) -> None:
        """A confirmation: store the document, reset the offline window, and trust its `iat` as the time."""
        now = self.clock.read()
        lic = accepted.license
        state = self.state._replace(registration_number=lic.registration_number, document=accepted.document,
                                    validation=Validation(now.wall, Outcome.OK), released=False, **changes)
        self._save(state)
        self.loaded = Loaded(lic, None, accepted.binding)
        self._checkpoint(trust.confirmed(lic.issued_at, now))
        self.failures = 0
        self.next_check = self.setup.policy.next_check(now.wall, self.entropy.random())
        self.refresh()

    async def _fresh(self, path: str, number: str | None, **fields: Any) -> None:
        self._store_fresh((await self._obtain(path, number, **fields))[1])

    # ------------------------------------------------------------------------------- requests
    @staticmethod
    def _number(raw: object) -> str:
        try:
            return regnum.registration_number(raw)
        except regnum.FormatError as exc:
            raise InputError(str(exc), Kind.INVALID_REGISTRATION_NUMBER) from None

    def _require_number(self) -> str:
        if not self.state.registration_number:
            raise Conflict(Kind.NOT_ACTIVATED, "no registration number on this host: activate one first")
        return self.state.registration_number

    def _require_license(self) -> str:
        number = self._require_number()
        if self.state.document is None:
            raise Conflict(Kind.NOT_ACTIVATED, "the registration number is not activated on this host: "
                                               "activate it first")
        return number

    async def register_trial(self, form: dict) -> dict:
        try:
            clean = trial_form(form)
        except FormError as exc:
            raise InputError(str(exc)) from None
        if self.refresh().usable:
            raise Conflict(Kind.ALREADY_LICENSED, "this host already has a license; a trial is not needed")
        async with self.server_lock:
            await self._fresh(protocol.TRIAL, None, **clean._asdict(), product=protocol.PBX_PRODUCT)
        return dict(self.status(), registration_number=self.state.registration_number)  # the admin's new number

    async def activate(self, raw_number: object, replace_active: bool = False) -> dict:
        number = self._number(raw_number)
        if number == self.state.registration_number and self.state.document is not None and self.refresh().usable:
            return self.status()  # already active here: the PBX re-enters the key it has
        async with self.server_lock:
            current = self.state.registration_number
            if current and current != number and self.state.document is not None and self.refresh().usable:
                if not replace_active:
                    raise Conflict(Kind.NUMBER_ACTIVE, f"{regnum.mask(current)} is active on this host; to replace "
                                   "it, ask again with replace: its seat is released first")
                await self._replace(current, number)
            else:
                await self._fresh(protocol.ACTIVATION, number)
        return self.status()

    async def _replace(self, current: str, number: str) -> None:
        """The old seat is given back first (one host, one seat); when the new number is then refused or
        unreachable, the old one is activated again, so a mistyped key does not leave the host unlicensed."""
        await self._ask(protocol.RELEASE, current)
        self._save(self._unlicensed(released=True))
        log.info("released the seat of %s to activate %s", regnum.mask(current), regnum.mask(number))
        try:
            await self._fresh(protocol.ACTIVATION, number)
        except MikolicdError:
            try:
                await self._fresh(protocol.ACTIVATION, current)
            except MikolicdError as exc:
                log.error("could not take the seat of %s back: %s", regnum.mask(current), exc.message)
            raise

    async def release(self) -> dict:
        number = self._require_license()
        async with self.server_lock:
            await self._ask(protocol.RELEASE, number)
            self._save(self._unlicensed(released=True))
        return dict(self.status(), released=True)

    async def forget(self) -> dict:
        """Back to unlicensed; a seat still held is released first, so it can be used elsewhere."""
        async with self.server_lock:
            if self.state.registration_number and self.state.document is not None:
                await self._ask(protocol.RELEASE, self.state.registration_number)
            self._save(State(metrics_at=self.state.metrics_at))
        return self.status()

    async def redeem(self, raw_coupon: object) -> dict:
        try:
            coupon = regnum.coupon(raw_coupon)
        except regnum.FormatError as exc:
            raise InputError(str(exc), Kind.INVALID_COUPON) from None
        number = self._require_license()
        before = self.loaded.license
        async with self.server_lock:
            await self._fresh(protocol.COUPON, number, coupon=coupon)
        after = self.loaded.license
        return dict(self.status(), changed=views.changed_products(before, after) if after else [])

    async def add_product_trial(self, product: int) -> dict:
        """A 30-day trial of another product (a PBX module) on the current number."""
        number = self._require_license()
        async with self.server_lock:
            await self._fresh(protocol.PRODUCT_TRIAL, number, product=product)
        return self.status()

    async def capture(self, feature: int) -> dict:
        """Take a seat of a feature. The seat feature's session is the activation's: capturing it activates."""
        number = self._require_number() if feature == protocol.PBX_FEATURE else self._require_license()
        seat = feature == protocol.PBX_FEATURE
        async with self.server_lock:
            answer, accepted = await self._obtain(protocol.CAPTURE, number,
                                                  trust.TRUST_ENDING if seat else FEATURE_REFUSALS_ENDING, feature=feature)
            session = answer.body.get("session")
            if not isinstance(session, str) or not 0 < len(session) <= 128:
                raise UntrustedAnswer(Kind.BAD_SERVER_ANSWER, "the server sent no capture session")
            if seat:
                self._store_fresh(accepted, seat_session=session)
            else:
                self._store_fresh(accepted, sessions={**self.state.sessions, session: feature})
        return {"session": session, "feature": feature}

    async def release_capture(self, feature: int, session: str) -> dict:
        """Give one captured seat back; the seat feature's own session is the activation: a release."""
        if feature == protocol.PBX_FEATURE and session == self.state.seat_session:
            status = await self.release()
            return {"released": True, "feature": feature, "state": status["state"]}
        if self.state.sessions.get(session) != feature:
            raise NotFound(Kind.UNKNOWN_SESSION, f"no capture session {session[:64]!r} for feature {feature} on "
                                                 "this host")
        number = self._require_number()
        async with self.server_lock:
            await self._ask(protocol.RELEASE_FEATURE, number, FEATURE_REFUSALS_ENDING - {protocol.KEY_ERROR},
                            feature=feature, session=session)
            self._save(self.state._replace(sessions={k: v for k, v in self.state.sessions.items() if k != session}))
        return {"released": True, "feature": feature, "state": self.refresh().state.value}

    def send_metrics(self, fields: dict[str, str]) -> bool:
        """Forward usage metrics in the background, at most once a day; never blocks the caller."""
        number = self.state.registration_number
        now = self.clock.read().wall
        if not number or now - self.state.metrics_at < METRICS_EVERY:
            return False
        self._save_quietly(self.state._replace(metrics_at=now))
        sent = trust.Sent(number, self.entropy.nonce(), self.installation.id)
        body = self._body(sent, {"fields": fields})

        def send() -> None:
            try:
                self.setup.client.call(protocol.METRICS, body)
            except (ServerRefused, ServerUnreachable) as exc:
                log.info("metrics not delivered: %s", exc.message)
        asyncio.get_running_loop().run_in_executor(None, send)
        return True

    async def server_check(self) -> dict:
        """Does the licensing server answer now: asked afresh at most once a second, one check shared."""
        now = self.clock.read().boottime
        if self._ping is not None and now - self._ping[0] < PING_FRESH:
            return self._ping[1]
        if self._ping_task is None or self._ping_task.done():
            self._ping_task = asyncio.get_running_loop().create_task(self._ping_once())
        return await asyncio.shield(self._ping_task)

    async def _ping_once(self) -> dict:
        try:
            answer = await asyncio.get_running_loop().run_in_executor(None, self.setup.client.ping)
            server_time = answer.body.get("server_time")
            result = {"reachable": True, "message": "the licensing server answers",
                      "server_time": server_time if isinstance(server_time, str) else None}
        except (ServerRefused, ServerUnreachable) as exc:
            result = {"reachable": False, "message": exc.message, "server_time": None}
        self._ping = (self.clock.read().boottime, result)
        return result

    # ------------------------------------------------------------------------------ validation
    async def validate(self) -> dict:
        """One validation round (with the client's own short retries), then the new status."""
        self._require_license()
        async with self.server_lock:
            await self._validation_round()
        return self.status()

    async def _validation_round(self) -> Outcome:
        number = self._require_license()
        policy, now = self.setup.policy, self.clock.read().wall
        try:
            await self._fresh(protocol.VALIDATION, number)
            outcome = Outcome.OK
            journal.event(log, logging.INFO, "license validated", message_id=journal.VALIDATED,
                          state=self.verdict.state.value, registration_number=number)
        except ServerRefused as exc:
            if self.state.document is None:
                outcome = Outcome.ENDED
            elif exc.server_code in trust.TRUST_ENDING:
                outcome = self._unconfirmed(exc.message, None)
            else:
                outcome = Outcome.REFUSED
                self.next_check = policy.next_check(now, self.entropy.random())
                self._record(Validation(now, outcome, exc.server_code, exc.message))
        except ServerUnreachable as exc:
            outcome = self._unconfirmed(exc.message, exc.retry_after, Outcome.UNREACHABLE)
        except UntrustedAnswer as exc:
            outcome = self._unconfirmed(exc.message, None)
        self.outcomes[outcome.value] += 1
        return outcome

    def _unconfirmed(self, message: str, retry_after: float | None, outcome: Outcome = Outcome.UNCONFIRMED) -> Outcome:
        now = self.clock.read().wall
        self.failures += 1
        self.next_check = now + self.setup.policy.retry_delay(self.failures, self.entropy.random(), retry_after)
        self._record(Validation(now, outcome, None, message))
        return outcome

    def _record(self, validation: Validation) -> None:
        self._save_quietly(self.state._replace(validation=validation))
        self.refresh()

    # --------------------------------------------------------------------------------- offline
    def offline_request(self, raw_number: object = None) -> dict:
        """A request an air-gapped box's admin carries to the vendor; only the latest can be answered. A box
        that never reached a server names its number here; it is then known, not yet activated (pending)."""
        number = self._number(raw_number) if raw_number is not None else self._require_number()
        current = self.state.registration_number
        if current and number != current and self.state.document is not None and self.refresh().usable:
            raise Conflict(Kind.NUMBER_ACTIVE, f"{regnum.mask(current)} is active on this host: release it "
                           "before asking for another number offline")
        nonce, now = self.entropy.nonce(), self.clock.read()
        claims = {"registration_number": number, "host": {"components": self.setup.components}, "nonce": nonce,
                  "iat": int(self.judged_at(now)), "install_id": self.installation.id,
                  "description": os.uname().nodename[:64]}
        request = self.installation.sign(claims, OFFLINE_REQUEST_TYPE)
        if number != current:  # a new number: the old number's license, if any, had ended
            self._save(self._unlicensed(registration_number=number, offline_nonce=nonce))
        else:
            self._save(self.state._replace(offline_nonce=nonce))
        return {"request": request, "code": offlinecode.encode(request)}

    def apply_offline(self, response: object) -> dict:
        if not isinstance(response, str) or not response.strip():
            raise InputError("response must be the offline answer: its text or its code")
        text = response.strip()
        if offlinecode.looks_like_code(text):
            try:
                text = offlinecode.decode(text)
            except offlinecode.CodeError as exc:
                raise InputError(str(exc), Kind.INVALID_OFFLINE_CODE) from None
        number, nonce = self._require_number(), self.state.offline_nonce
        if nonce is None:
            raise Conflict(Kind.OFFLINE_NOT_REQUESTED, "no offline request is waiting for an answer: this answer was "
                           "applied already, or make a new request (mikolicctl offline request)")
        sent = trust.Sent(number, nonce, self.installation.id)
        judged = trust.judge_document(text, sent, self.setup.keys, self.setup.components, self.clock.read().wall)
        if isinstance(judged, Accepted) and not judged.license.offline:
            judged = trust.Rejected("this is not an answer to an offline request")
        if not isinstance(judged, Accepted):
            raise UntrustedAnswer(Kind.DOCUMENT_REJECTED, f"{judged.reason}; the answer is for another request, "
                                  "host or installation, or was applied already; nothing was changed")
        self._store_fresh(judged, offline_nonce=None)
        journal.event(log, logging.INFO, f"offline license applied, valid until {views.iso(judged.license.exp)}",
                      message_id=journal.VALIDATED, registration_number=number)
        return self.status()

    def offline_release(self) -> dict:
        """Drop the license here and sign a receipt with which the vendor frees the seat, once."""
        number = self._require_license()
        claims = {"registration_number": number, "install_id": self.installation.id, "nonce": self.entropy.nonce(),
                  "iat": int(self.judged_at())}
        receipt = self.installation.sign(claims, RELEASE_RECEIPT_TYPE)
        self._save(self._unlicensed(released=True, offline_nonce=None))
        self.refresh()
        return {"receipt": receipt, "code": offlinecode.encode(receipt)}

    # ------------------------------------------------------------------------------ background
    def schedule_start(self) -> None:
        v = self.state.validation
        last_ok = v.at if v and v.outcome is Outcome.OK else None
        if self.state.document:
            self.next_check = self.setup.policy.first_check(self.clock.read().wall, last_ok, self.entropy.random())

    def _sleep_for(self, now: Reading, checkpoints: bool = True) -> float | None:
        """Until the next thing to do: a check, a date boundary, or (unless someone else keeps the time) a
        checkpoint; None when there is nothing to do but be woken. Nothing else wakes the loop."""
        waits = []
        if checkpoints:
            waits.append(CHECKPOINT_EVERY - (now.boottime - self.checkpoint.boottime) if self.checkpoint else 0.0)
        if self.next_check is not None:
            waits.append(self.next_check - now.wall)
        judged = self.judged_at(now)
        waits += [t - judged for t in boundaries(self.loaded.license, judged)[:1]]
        return max(0.05, min(waits)) if waits else None

    async def run(self, stop: asyncio.Event, checkpoints: bool = True) -> None:
        """The schedule: validate when due, act on date boundaries, and checkpoint the trusted time unless
        `checkpoints` is off because the caller does (on the watchdog's pings, a wake-up it makes anyway)."""
        self.schedule_start()
        while not stop.is_set():
            now = self.clock.read()
            self.refresh()
            self.keep_time(now)
            if self.next_check is not None and now.wall >= self.next_check and self.state.document:
                async with self.server_lock:
                    await self._validation_round()
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self._sleep_for(now, checkpoints))
            except asyncio.TimeoutError:
                pass

    def reload(self, setup: Setup) -> None:
        """Swap in a whole new set-up (built and checked before); the socket and state directory need a restart."""
        old, self.setup = self.setup, setup
        old.client.close()
        self.loaded = self._judge(self.state.document)
        self.wake.set()
