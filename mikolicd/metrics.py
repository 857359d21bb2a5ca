"""`GET /metrics`: the agent's state for Prometheus, as OpenMetrics text or in the older Prometheus text
format, which node exporter's textfile collector reads (`wants_openmetrics` picks by the Accept header).

A pure renderer: the agent fills a `MetricsView` with plain values and `render` turns it into bytes, so
the output is testable without a daemon and the agent decides what is exposed. Label values are only
state and outcome names from fixed lists, product ids, product names and version strings; text is
escaped, and anything in it that looks like a registration number, coupon, e-mail address, MAC address
or hardware id is replaced, so a secret that reaches a text field still never reaches a scrape.

Written by hand rather than with `prometheus_client`, by measurement: the resident memory that importing
and one render add in a fresh interpreter (median of 7 runs, Python 3.11) is 0.08 MiB for this module
and 1.17 MiB for `prometheus_client` 0.26 (a collector yielding the same families, rendered by its
OpenMetrics exposition) on top of the modules a started daemon has loaded; 1.9 and 12.0 MiB in a bare
interpreter. The daemon's whole budget is 27 MiB after start. `docs/operations.md` lists the metrics.
"""
from __future__ import annotations

import bisect
import itertools
import math
import re
import sys
import threading
from typing import NamedTuple

from . import __version__

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("unlicensed", "pending", "active", "trial", "grace", "expired", "invalid")
OUTCOMES = ("ok", "refused", "unreachable", "unconfirmed")
# Server calls answer within tens of milliseconds on a LAN and may take up to the 30 s timeout.
LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DAY = 86400
REDACTED = "redacted"
# Patterns as text: `re` compiles them at the first scrape (and keeps them), not in every start-up.
_SECRET = (
    r"(?i)MIKO(?:UPD)?-[A-Z0-9]{5}(?:-[A-Z0-9]{5}){3}"  # registration number, coupon
    r"|[^\s@\"]+@[^\s@\"]+"  # e-mail address
    r"|[0-9A-F]{2}(?:[:-][0-9A-F]{2}){5}"  # MAC address
    r"|[0-9A-F]{8}(?:-[0-9A-F]{4}){3}-[0-9A-F]{12}"  # DMI UUID
    r"|[0-9A-F]{12,}")  # bare MAC, machine id, component hash
_CONTROL = r"[\x00-\x09\x0b-\x1f\x7f]"  # OpenMetrics can escape only \n
_PYTHON = "{}.{}.{}".format(*sys.version_info[:3])


class ProductTerm(NamedTuple):
    """One product of the license and how long it still runs, as the agent judges it."""

    id: int
    name: str
    days_left: int | None  # None: termless


class Validations(NamedTuple):
    """How many validations ended each way since the agent started."""

    ok: int = 0
    refused: int = 0  # a refusal by the server, signed or not
    unreachable: int = 0  # no answer, or an answer that is not HTTP
    unconfirmed: int = 0  # an answer that did not confirm this request (unsigned, stale or wrong nonce)


class Histogram(NamedTuple):
    """A latency histogram frozen at one moment: counts are cumulative, the last one is +Inf."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int


class LatencyHistogram:
    """Durations of server calls, kept by the agent in memory; the worker threads observe, the API reads."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> None:
        self._bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()  # a scrape never sees a count without its sum

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
            self._sum += seconds

    def snapshot(self) -> Histogram:
        with self._lock:
            counts = tuple(itertools.accumulate(self._counts))
            return Histogram(self._bounds, counts, self._sum, counts[-1])


class MetricsView(NamedTuple):
    """Everything `/metrics` shows; None means "not known" and leaves that sample out."""

    state: str
    products: tuple[ProductTerm, ...] = ()
    offline_window_left: float | None = None  # seconds the document may still be used without a server
    last_validation: float | None = None  # Unix seconds
    next_validation: float | None = None  # Unix seconds
    validations: Validations = Validations()
    latency: Histogram = LatencyHistogram().snapshot()  # empty; immutable, so one default serves all
    version: str = __version__
    python_version: str = _PYTHON


Sample = tuple[str, dict[str, str], float]  # name suffix, labels, value


class _Family(NamedTuple):
    name: str
    kind: str  # OpenMetrics type: gauge, counter, histogram or info
    help: str
    samples: list[Sample]
    unit: str = ""


def _text(value: str) -> str:
    """A label value from text: secrets replaced, then escaped as both formats require."""
    value = re.sub(_CONTROL, " ", re.sub(_SECRET, REDACTED, value))
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "NaN" if math.isnan(value) else repr(value)


def _sample_lines(name: str, samples: list[Sample]) -> str:
    lines = []
    for suffix, labels, value in samples:
        pairs = ",".join(f'{key}="{text}"' for key, text in labels.items())
        lines.append(f"{name}{suffix}{{{pairs}}} {_number(value)}\n" if pairs else f"{name}{suffix} {_number(value)}\n")
    return "".join(lines)


def _seconds_gauge(name: str, help_text: str, value: float | None) -> _Family:
    return _Family(name, "gauge", help_text, [] if value is None else [("", {}, value)], "seconds")


def _histogram(name: str, help_text: str, hist: Histogram) -> _Family:
    bounds = [repr(float(bound)) for bound in hist.bounds] + ["+Inf"]
    samples: list[Sample] = [("_bucket", {"le": le}, count) for le, count in zip(bounds, hist.counts)]
    samples += [("_count", {}, hist.count), ("_sum", {}, hist.sum)]
    return _Family(name, "histogram", help_text, samples, "seconds")


def _families(view: MetricsView) -> list[_Family]:
    if view.state not in STATES:
        raise ValueError(f"unknown license state {view.state!r}")
    products = sorted(view.products, key=lambda product: product.id)
    return [
        _Family("mikolicd_license_state", "gauge", "1 for the license state the agent is in, 0 for the others.",
                [("", {"state": state}, int(state == view.state)) for state in STATES]),
        _Family("mikolicd_license_remaining_seconds", "gauge",
                "Time each product's license still runs: whole days left as the agent counts them, times "
                "86400; +Inf for a termless product.",
                [("", {"product": str(product.id), "name": _text(product.name)},
                  math.inf if product.days_left is None else product.days_left * DAY) for product in products],
                "seconds"),
        _seconds_gauge("mikolicd_offline_window_remaining_seconds",
                       "Time the license document may still be used without an answer from the licensing server.",
                       view.offline_window_left),
        _seconds_gauge("mikolicd_last_validation_timestamp_seconds",
                       "When the agent last validated with the licensing server, whatever the outcome, in Unix "
                       "seconds.", view.last_validation),
        _seconds_gauge("mikolicd_next_validation_timestamp_seconds",
                       "When the agent validates next, in Unix seconds.", view.next_validation),
        _Family("mikolicd_validations", "counter", "Validations since the agent started, by outcome.",
                [("_total", {"outcome": outcome}, getattr(view.validations, outcome)) for outcome in OUTCOMES]),
        _histogram("mikolicd_server_request_duration_seconds", "Duration of calls to the licensing server.",
                   view.latency),
        _Family("mikolicd_build", "info", "The agent's version and the Python it runs on.",
                [("_info", {"version": _text(view.version), "python": _text(view.python_version)}, 1)]),
    ]


def _openmetrics(family: _Family) -> str:
    unit = f"# UNIT {family.name} {family.unit}\n" if family.unit else ""
    return (f"# TYPE {family.name} {family.kind}\n{unit}# HELP {family.name} {family.help}\n"
            + _sample_lines(family.name, family.samples))


def _classic(family: _Family) -> str:
    """The Prometheus text format names counters and info metrics by their samples, and has no info type."""
    name, kind = {"counter": (family.name + "_total", "counter"),
                  "info": (family.name + "_info", "gauge")}.get(family.kind, (family.name, family.kind))
    return f"# HELP {name} {family.help}\n# TYPE {name} {kind}\n" + _sample_lines(family.name, family.samples)


def wants_openmetrics(accept: str | None) -> bool:
    """Content negotiation for `GET /metrics`: OpenMetrics unless the client asks for the text format only."""
    return not accept or "application/openmetrics-text" in accept or "text/plain" not in accept


def render(view: MetricsView, openmetrics: bool = True) -> bytes:
    """The exposition of `view`: OpenMetrics (`CONTENT_TYPE`, ending with `# EOF`), else the Prometheus text
    format (`TEXT_CONTENT_TYPE`) that node exporter's textfile collector reads."""
    if openmetrics:
        return ("".join(map(_openmetrics, _families(view))) + "# EOF\n").encode()
    return "".join(map(_classic, _families(view))).encode()
