"""The agent: owns the local state, talks to the licensing server, and keeps the verdict current.

Server calls run in worker threads under one lock, so a slow server delays only the caller that
asked for it; status is built from memory and never waits for the network.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from . import __version__, fingerprint, journal, protocol, regnum
from .client import LicensingClient, ServerRefused, Unreachable, check_ca_file
from .config import Config
from .httpserver import HTTPError
from .lifecycle import PLAUSIBLE_SINCE, Facts, Verdict, evaluate, feature_status
from .jws import load_trusted_keys
from .license import DocumentError, License, read_document
from .schedule import Policy, first_check, next_check, retry_delay
from .store import State, Store, StoreError, Validation

log = logging.getLogger("mikolicd.agent")

TRIAL_FIELDS = {"companyname", "email", "contact", "tel", "inn", "description"}
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HIGH_WATER_STEP = 3600.0
METRICS_EVERY = 86400.0


class AgentError(HTTPError):
    """An answer for the API caller: HTTP status, snake_case code, a message for the admin."""

    def __init__(self, status: int, code: str, message: str, server_code: int | None = None,
                 retry_after: float | None = None):
        super().__init__(status, message)
        self.code, self.server_code = code, server_code
        self.retry_after = retry_after  # the server's own Retry-After, for the schedule


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds") if ts else None


def _trial_form(form: dict) -> dict:
    unknown = set(form) - TRIAL_FIELDS
    if unknown:
        raise AgentError(400, "invalid_input", f"unknown fields: {', '.join(sorted(unknown))}")
    clean = {}
    for key in TRIAL_FIELDS:
        value = form.get(key, "")
        if not isinstance(value, str):
            raise AgentError(400, "invalid_input", f"{key} must be a string")
        clean[key] = value.strip()
    for key in ("companyname", "email", "contact"):
        if not clean[key]:
            raise AgentError(400, "invalid_input", f"{key} is required for a trial")
    if not EMAIL_RE.fullmatch(clean["email"]):
        raise AgentError(400, "invalid_input", f"{clean['email'][:60]!r} is not an e-mail address")
    if clean["inn"] and not re.fullmatch(r"\d{10,12}", clean["inn"]):
        raise AgentError(400, "invalid_input", "inn must be 10 to 12 digits")
    return clean


@dataclass
class Loaded:
    """The stored document as this host judges it."""

    license: License | None = None
    error: str | None = None
    binding: fingerprint.Match | None = None


class Agent:
    def __init__(self, config: Config, on_state: Callable[[Verdict], None] = lambda v: None):
        self.config = config
        self.on_state = on_state
        self.store = Store(config.storage.state_dir)
        self.write_lock = threading.Lock()  # held while a state file is being replaced
        self.server_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.hardware = fingerprint.collect(config.hardware.root, config.hardware.dmidecode,
                                            config.hardware.snapshot)
        self.components = fingerprint.components(self.hardware)
        self.keys = load_trusted_keys(config.server.trusted_keys)
        check_ca_file(config.server)
        self.client = self._client(config)
        self.state = self.store.load()
        self.loaded = self._judge(self.state.document)
        self.verdict = self._evaluate()
        self.failures = 0
        self.next_check: float | None = None
        self._status_cache: tuple[tuple, bytes] | None = None

    # ---------------------------------------------------------------- pure-ish views
    @property
    def sessions(self) -> dict[str, int]:
        """Capture sessions live in the state, so a seat can be given back after a restart."""
        return self.state.extra.get("sessions", {})

    @staticmethod
    def _client(config: Config) -> LicensingClient:
        return LicensingClient(config.server, retry_cap=min(5.0, config.schedule.retry_max_delay))

    @property
    def policy(self) -> Policy:
        s = self.config.schedule
        return Policy(s.check_interval, s.jitter, s.retry_max_delay)

    def _judge(self, document: str | None) -> Loaded:
        if not document:
            return Loaded()
        try:
            lic = read_document(document, self.keys)
        except DocumentError as exc:
            return Loaded(error=f"stored license not trusted: {exc}")
        return Loaded(lic, None, fingerprint.match(lic.binding, self.components))

    def _evaluate(self) -> Verdict:
        return evaluate(Facts(self.state.registration_number, self.loaded.license, self.loaded.error,
                              self.loaded.binding, self.state.validation, time.time(),
                              self.state.clock_high_water))

    def refresh(self) -> Verdict:
        """Re-judge against the clock; one journal entry per state change."""
        verdict = self._evaluate()
        if (verdict.state, verdict.reason) != (self.verdict.state, self.verdict.reason):
            previous, self.verdict = self.verdict, verdict
            if verdict.state != previous.state:
                journal.event(log, logging.WARNING if not verdict.usable else logging.INFO,
                              f"license state {previous.state.value} -> {verdict.state.value}: {verdict.reason}",
                              message_id=journal.STATE_CHANGED, state=verdict.state.value,
                              registration_number=self.state.registration_number)
            self.on_state(verdict)
        return verdict

    def status_body(self) -> bytes:
        """The status as JSON, rebuilt only when something it shows has changed: the web admin polls it."""
        verdict = self.refresh()
        key = (verdict.state, verdict.reason, verdict.grace_until, verdict.clock_unknown, self.state, self.loaded,
               self.next_check, int(time.time() // 86400))
        if self._status_cache is None or self._status_cache[0] != key:
            self._status_cache = (key, json.dumps(self._status_view(verdict), ensure_ascii=False).encode())
        return self._status_cache[1]

    def status(self) -> dict[str, Any]:
        return self._status_view(self.refresh())

    def _status_view(self, verdict: Verdict) -> dict[str, Any]:
        lic = self.loaded.license
        v = self.state.validation
        return {
            "state": verdict.state.value,
            "reason": verdict.reason,
            "registration_number": regnum.mask(self.state.registration_number or "") or None,
            "products": [
                {"id": p.id, "name": p.name, "trial": p.trial,
                 "expires": p.expires.isoformat() if p.expires else None,
                 "features": [{"id": f.id, "name": f.name, "count": f.count,
                               "available": feature_status(verdict, lic, f.id).available}
                              for f in p.features]}
                for p in (lic.products if lic else ())],
            "last_validation": {"at": _iso(v.at), "outcome": v.outcome, "server_code": v.server_code,
                                "message": v.message} if v else None,
            "next_validation": _iso(self.next_check),
            "grace_until": _iso(verdict.grace_until),
            "offline_until": _iso(lic.exp) if lic else None,
            "clock_unknown": verdict.clock_unknown,
            "fingerprint": self.fingerprint_summary(),
            "version": __version__,
        }

    def fingerprint_summary(self) -> dict[str, Any]:
        binding = self.loaded.binding
        summary = (binding or fingerprint.match({}, self.components)).summary()
        summary["bound"] = binding is not None
        if binding is None:
            summary["holds"] = None
        summary["strong_present"] = sum(1 for n in fingerprint.STRONG if n in self.components)
        return summary

    def fingerprint_report(self) -> dict[str, Any]:
        summary = self.fingerprint_summary()
        degraded = summary["degraded"] if summary["bound"] else summary["strong_present"] < 2
        return {
            "components": [{"name": name, "strength": "strong" if name in fingerprint.STRONG else "weak",
                            "status": summary["components"][name],
                            "reason": self.hardware.missing.get(name)}
                           for name in fingerprint.COMPONENTS],
            "holds": summary["holds"],
            "bound": summary["bound"],
            "degraded": degraded,
            "note": ("fewer than two strong hardware ids were found (container or board without DMI): "
                     "the binding rests on what this host has") if degraded else None,
        }

    def license_view(self) -> dict[str, Any]:
        lic = self.loaded.license
        if lic is None:
            raise AgentError(404, "no_license", "no license on this host: register a trial or activate a number")
        view = lic.to_json()
        view["registration_number"] = regnum.mask(lic.registration_number)
        view["state"] = self.refresh().state.value
        return view

    def feature(self, feature_id: int) -> dict[str, Any]:
        status = feature_status(self.refresh(), self.loaded.license, feature_id)
        return {"id": status.id, "available": status.available, "reason": status.reason,
                "expires": status.expires}

    # ---------------------------------------------------------------- state changes
    def _save(self, state: State) -> None:
        with self.write_lock:
            try:
                self.store.save(state)
            except StoreError as exc:
                log.error("%s; the previous state is kept", exc)
                raise AgentError(507, "storage_failed", f"{exc.strerror}; nothing was changed") from None
        self.state = state

    def _accept(self, document: object, number: str, server_date: float | None) -> None:
        """Store a document only when it verifies, belongs to this number and host, and is not stale."""
        now = time.time()
        try:
            if not isinstance(document, str):
                raise DocumentError("the server sent no document")
            lic = read_document(document, self.keys)
            if lic.registration_number != number:
                raise DocumentError("document is for another registration number")
            binding = fingerprint.match(lic.binding, self.components)
            if not binding.holds:
                raise DocumentError("document is bound to different hardware")
            if lic.exp <= max(now, lic.issued_at):
                raise DocumentError("document is already past its offline limit")
            old = self.loaded.license
            if old and old.registration_number == number and lic.issued_at < old.issued_at:
                raise DocumentError("document is older than the stored one (replay refused)")
        except DocumentError as exc:
            journal.event(log, logging.ERROR, f"licensing server document rejected: {exc}; previous license kept",
                          message_id=journal.SERVER_ERROR, registration_number=number)
            raise AgentError(502, "document_rejected", f"{exc}; the previous license is kept") from None
        high_water = max(self.state.clock_high_water, now if now >= PLAUSIBLE_SINCE else 0.0)
        if server_date and abs(server_date - now) < 300:
            high_water = now  # the server vouches for this clock: a deliberate correction is fine
        self._save(replace(self.state, registration_number=number, document=document,
                           validation=Validation(now, "ok"), clock_high_water=high_water))
        self.loaded = Loaded(lic, None, binding)
        self.failures = 0
        self.next_check = next_check(self.policy, now, random.random())

    async def _call(self, path: str, number: str, **fields: Any) -> Any:
        """One server call about `number` from this host; the caller holds server_lock."""
        return await self._server(lambda: self.client.call(
            path, dict(fields, registration_number=number, host={"components": self.components})))

    async def _fetch(self, path: str, number: str, **fields: Any) -> Any:
        """A server call answering a document for `number`, stored only if `_accept` trusts it."""
        answer = await self._call(path, number, **fields)
        self._accept(answer.body.get("document"), number, answer.server_date)
        return answer

    async def _server(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, fn)
        except ServerRefused as exc:
            journal.event(log, logging.WARNING, f"licensing server refused: {exc}", message_id=journal.SERVER_ERROR,
                          server_code=exc.code, registration_number=self.state.registration_number)
            raise AgentError(409 if exc.code == protocol.NO_FREE_SEAT else 422, "server_refused", str(exc),
                             exc.code) from None
        except Unreachable as exc:
            journal.event(log, logging.WARNING, f"licensing server unreachable: {exc}",
                          message_id=journal.SERVER_ERROR, registration_number=self.state.registration_number)
            raise AgentError(503, "server_unreachable", f"{exc}; nothing was changed, try again later",
                             retry_after=exc.retry_after) from None

    async def register_trial(self, form: dict) -> dict:
        clean = _trial_form(form)
        if self.refresh().usable:
            raise AgentError(409, "already_licensed", "this host already has a license; a trial is not needed")
        async with self.server_lock:
            answer = await self._server(lambda: self.client.call(
                protocol.TRIAL, dict(clean, product=11, host={"components": self.components})))
            try:
                number = regnum.registration_number(answer.body.get("registration_number"))
            except regnum.FormatError:
                raise AgentError(502, "bad_server_answer", "the server sent no valid registration number") from None
            self._accept(answer.body.get("document"), number, answer.server_date)
        return self.status()

    async def activate(self, raw_number: object) -> dict:
        number = self._number(raw_number)
        async with self.server_lock:
            await self._fetch(protocol.ACTIVATION, number)
        return self.status()

    @staticmethod
    def _number(raw: object) -> str:
        try:
            return regnum.registration_number(raw)
        except regnum.FormatError as exc:
            raise AgentError(400, "invalid_registration_number", str(exc)) from None

    def _require_number(self) -> str:
        if not self.state.registration_number:
            raise AgentError(409, "not_activated", "no registration number on this host: activate one first")
        return self.state.registration_number

    async def release(self) -> dict:
        number = self._require_number()
        async with self.server_lock:
            await self._call(protocol.RELEASE, number)
            self._save(replace(self.state, document=None, validation=None, extra={}))
            self.loaded, self.next_check = Loaded(), None
        return self.status()

    async def redeem(self, raw_coupon: object) -> dict:
        try:
            coupon = regnum.coupon(raw_coupon)
        except regnum.FormatError as exc:
            raise AgentError(400, "invalid_coupon", str(exc)) from None
        number = self._require_number()
        async with self.server_lock:
            await self._fetch(protocol.COUPON, number, coupon=coupon)
        return self.status()

    async def add_product_trial(self, product: int) -> dict:
        """A 30-day trial of another product (a PBX module) on the current number."""
        number = self._require_number()
        async with self.server_lock:
            await self._fetch(protocol.PRODUCT_TRIAL, number, product=product)
        return self.status()

    async def capture(self, feature: int) -> str:
        """Take a seat of a feature; the session id is kept so the seat can be given back after a restart."""
        number = self._require_number()
        async with self.server_lock:
            session = (await self._fetch(protocol.CAPTURE, number, feature=feature)).body.get("session")
            if not isinstance(session, str) or not session or len(session) > 128:
                raise AgentError(502, "bad_server_answer", "the server sent no capture session")
            self._save(replace(self.state, extra=dict(self.state.extra, sessions={**self.sessions, session: feature})))
        return session

    async def release_feature(self, session: str, feature: int) -> None:
        number = self._require_number()
        if self.sessions.get(session) != feature:
            raise AgentError(404, "unknown_session", f"no capture session {session[:64]!r} for feature {feature}")
        async with self.server_lock:
            await self._server(lambda: self.client.call(
                protocol.RELEASE_FEATURE, {"registration_number": number, "feature": feature, "session": session}))
            sessions = {k: v for k, v in self.sessions.items() if k != session}
            self._save(replace(self.state, extra=dict(self.state.extra, sessions=sessions)))

    async def change_number(self, raw: object) -> dict:
        """Switch to another registration number; an empty one returns the host to unlicensed."""
        if isinstance(raw, str) and not raw.strip():
            async with self.server_lock:
                self._save(State(clock_high_water=self.state.clock_high_water))
                self.loaded, self.next_check = Loaded(), None
            return self.status()
        return await self.activate(raw)

    def send_metrics(self, fields: dict[str, str]) -> bool:
        """Forward usage metrics in the background, at most once a day; never blocks the caller."""
        number = self.state.registration_number
        last = float(self.state.extra.get("metrics_at", 0))
        if not number or time.time() - last < METRICS_EVERY:
            return False
        self.state = replace(self.state, extra=dict(self.state.extra, metrics_at=time.time()))
        body = {"registration_number": number, "host": {"components": self.components}, "fields": fields}

        def send() -> None:
            try:
                self.client.call(protocol.METRICS, body)
            except (ServerRefused, Unreachable) as exc:
                log.info("metrics not delivered: %s", exc)
        asyncio.get_running_loop().run_in_executor(None, send)
        return True

    async def ping(self) -> tuple[bool, str]:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.client.ping)
            return True, "licensing server answers"
        except (ServerRefused, Unreachable) as exc:
            return False, str(exc)

    async def validate(self) -> dict:
        """One validation round (with the client's own short retries), then the new status."""
        number = self._require_number()
        if self.state.document is None:
            raise AgentError(409, "not_activated", "nothing to validate: activate the registration number first")
        async with self.server_lock:
            try:
                await self._fetch(protocol.VALIDATION, number)
                journal.event(log, logging.INFO, "license validated", message_id=journal.VALIDATED,
                              state=self.refresh().state.value, registration_number=number)
            except AgentError as exc:
                if exc.code == "storage_failed":
                    raise  # the server answered; this host could not keep the answer, and says so
                self._after_failed_validation(exc)
        return self.status()

    def _after_failed_validation(self, exc: AgentError) -> None:
        now = time.time()
        if exc.code == "server_refused":
            self.failures = 0
            self.next_check = next_check(self.policy, now, random.random())
            validation = Validation(now, "refused", exc.server_code, exc.message)
        else:
            self.failures += 1
            self.next_check = now + retry_delay(self.policy, self.failures, random.random(), exc.retry_after)
            validation = Validation(now, "unreachable", None, exc.message)
        try:
            self._save(replace(self.state, validation=validation))
        except AgentError:
            self.state = replace(self.state, validation=validation)  # judged in memory; disk told in the log

    # ---------------------------------------------------------------- background
    def schedule_start(self) -> None:
        v = self.state.validation
        last_ok = v.at if v and v.outcome == "ok" else None
        if self.state.document:
            self.next_check = first_check(self.policy, time.time(), last_ok, random.random())

    def _keep_high_water(self) -> None:
        now = time.time()
        if now >= PLAUSIBLE_SINCE and now > self.state.clock_high_water + HIGH_WATER_STEP:
            try:
                self._save(replace(self.state, clock_high_water=now))
            except AgentError:
                pass  # logged by _save; the mark is advisory and retried next hour

    async def run(self, stop: asyncio.Event) -> None:
        """The schedule: validate when due, re-judge at least once a minute for date boundaries."""
        self.schedule_start()
        while not stop.is_set():
            self.refresh()
            self._keep_high_water()
            now = time.time()
            if self.next_check is not None and now >= self.next_check and self.state.document:
                try:
                    await self.validate()
                except AgentError as exc:
                    log.warning("scheduled validation failed: %s", exc.message)
                    self.failures += 1
                    self.next_check = time.time() + retry_delay(self.policy, self.failures, random.random())
                continue
            timeout = min(60.0, max(0.05, (self.next_check or now + 60) - now))
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def reload(self, config: Config) -> None:
        """Apply what can change at run time; the socket and state directory need a restart."""
        self.keys = load_trusted_keys(config.server.trusted_keys)
        check_ca_file(config.server)
        old = self.client
        self.client = self._client(config)
        old.close()
        self.config = replace(self.config, server=config.server, schedule=config.schedule)
        self.loaded = self._judge(self.state.document)
        self.wake.set()
