"""`GET /metrics` as rendered: OpenMetrics that Prometheus's own parser reads, and nothing secret in it."""
from __future__ import annotations

import math
import statistics
import subprocess
import sys

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_format_families

from mikolicd import __version__
from mikolicd.metrics import (CONTENT_TYPE, OUTCOMES, STATES, TEXT_CONTENT_TYPE, LatencyHistogram, MetricsView,
                              ProductTerm, Validations, render, wants_openmetrics)

NOW = 1_760_000_000.0
VIEW = MetricsView(
    state="active",
    products=(ProductTerm(11, "MikoPBX", 42), ProductTerm(1042, "Call center", None)),
    offline_window_left=5 * 86400.0,
    last_validation=NOW - 600,
    next_validation=NOW + 6 * 3600,
    validations=Validations(ok=5, refused=1, unreachable=3, unconfirmed=2),
)
SECRETS = {
    "registration number": "MIKO-AB12C-34DEF-5GH67-IJ8KL",
    "coupon": "MIKOUPD-Q1W2E-R3T4Y-U5I6O-P7A8S",
    "e-mail address": "ann.admin@example.com",
    "MAC address": "52:54:00:ab:cd:ef",
    "bare MAC address": "525400ABCDEF",
    "DMI UUID": "4c4c4544-0042-3510-8052-b3c04f4e3132",
    "machine id": "0123456789abcdef0123456789abcdef",
}


def families(view: MetricsView) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(render(view).decode())}


def samples(view: MetricsView, name: str) -> list[tuple[str, dict[str, str], float]]:
    return [(sample.name, sample.labels, sample.value) for sample in families(view)[name].samples]


def test_output_is_openmetrics_ending_with_eof():
    text = render(VIEW).decode()
    assert text.endswith("\n# EOF\n")
    assert list(families(VIEW)) == [
        "mikolicd_license_state", "mikolicd_license_remaining_seconds", "mikolicd_offline_window_remaining_seconds",
        "mikolicd_last_validation_timestamp_seconds", "mikolicd_next_validation_timestamp_seconds",
        "mikolicd_validations", "mikolicd_server_request_duration_seconds", "mikolicd_build"]


def test_every_family_has_help_and_a_type():
    for family in families(VIEW).values():
        assert family.documentation and family.type in {"gauge", "counter", "histogram", "info"}, family.name


def test_content_type_names_openmetrics_1_0_0():
    assert CONTENT_TYPE == "application/openmetrics-text; version=1.0.0; charset=utf-8"


def test_text_format_parses_with_the_prometheus_text_parser():
    kinds = {family.name: family.type for family in text_format_families(render(VIEW, openmetrics=False).decode())}
    assert kinds == {"mikolicd_license_state": "gauge", "mikolicd_license_remaining_seconds": "gauge",
                     "mikolicd_offline_window_remaining_seconds": "gauge",
                     "mikolicd_last_validation_timestamp_seconds": "gauge",
                     "mikolicd_next_validation_timestamp_seconds": "gauge", "mikolicd_validations": "counter",
                     "mikolicd_server_request_duration_seconds": "histogram", "mikolicd_build_info": "gauge"}
    assert TEXT_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_text_format_carries_the_same_samples():
    def values(families):
        return sorted((s.name, sorted(s.labels.items()), s.value) for family in families for s in family.samples)
    assert values(text_format_families(render(VIEW, openmetrics=False).decode())) == values(families(VIEW).values())


def test_text_format_has_no_openmetrics_only_lines():
    text = render(VIEW, openmetrics=False).decode()
    assert "# EOF" not in text and "# UNIT" not in text and " info\n" not in text


@pytest.mark.parametrize("accept, openmetrics", [
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True),  # what Prometheus sends
    ("*/*", True),
    (None, True),
    ("text/plain; version=0.0.4", False),
    ("text/plain", False),
])
def test_openmetrics_unless_only_the_text_format_is_accepted(accept, openmetrics):
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize("state", STATES)
def test_state_is_one_hot_over_every_state(state):
    values = {labels["state"]: value for _, labels, value in samples(VIEW._replace(state=state),
                                                                        "mikolicd_license_state")}
    assert values == {name: int(name == state) for name in STATES}


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="unknown license state"):
        render(MetricsView(state="licensed"))


def test_days_left_are_given_per_product_in_seconds():
    assert samples(VIEW, "mikolicd_license_remaining_seconds")[0] == (
        "mikolicd_license_remaining_seconds", {"product": "11", "name": "MikoPBX"}, 42 * 86400)


def test_a_termless_product_has_infinite_time_left():
    _, labels, value = samples(VIEW, "mikolicd_license_remaining_seconds")[1]
    assert labels == {"product": "1042", "name": "Call center"} and value == math.inf


def test_products_are_listed_by_id():
    view = VIEW._replace(products=(ProductTerm(2000, "B", 1), ProductTerm(12, "A", 2)))
    listed = [labels["product"] for _, labels, _ in samples(view, "mikolicd_license_remaining_seconds")]
    assert listed == ["12", "2000"]


def test_offline_window_and_validation_times_are_seconds():
    assert [samples(VIEW, name)[0][2] for name in ("mikolicd_offline_window_remaining_seconds",
                                                   "mikolicd_last_validation_timestamp_seconds",
                                                   "mikolicd_next_validation_timestamp_seconds")] == [
        5 * 86400.0, NOW - 600, NOW + 6 * 3600]
    assert {families(VIEW)[name].unit for name in ("mikolicd_offline_window_remaining_seconds",
                                                   "mikolicd_server_request_duration_seconds")} == {"seconds"}


def test_unknown_times_leave_their_samples_out():
    view = MetricsView(state="unlicensed")
    for name in ("mikolicd_offline_window_remaining_seconds", "mikolicd_last_validation_timestamp_seconds",
                 "mikolicd_next_validation_timestamp_seconds", "mikolicd_license_remaining_seconds"):
        assert samples(view, name) == [], name


def test_validations_are_counted_by_every_outcome():
    assert samples(VIEW, "mikolicd_validations") == [
        ("mikolicd_validations_total", {"outcome": outcome}, count)
        for outcome, count in zip(OUTCOMES, (5, 1, 3, 2))]


def test_outcomes_without_validations_count_zero():
    counts = [value for _, _, value in samples(MetricsView(state="pending"), "mikolicd_validations")]
    assert counts == [0, 0, 0, 0]


def test_latency_histogram_puts_each_call_in_its_bucket():
    latency = LatencyHistogram(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        latency.observe(seconds)
    assert samples(VIEW._replace(latency=latency.snapshot()), "mikolicd_server_request_duration_seconds") == [
        ("mikolicd_server_request_duration_seconds_bucket", {"le": "0.1"}, 2),
        ("mikolicd_server_request_duration_seconds_bucket", {"le": "1.0"}, 3),
        ("mikolicd_server_request_duration_seconds_bucket", {"le": "+Inf"}, 4),
        ("mikolicd_server_request_duration_seconds_count", {}, 4),
        ("mikolicd_server_request_duration_seconds_sum", {}, 3.65),
    ]


def test_a_snapshot_does_not_change_with_later_calls():
    latency = LatencyHistogram()
    latency.observe(0.2)
    before = latency.snapshot()
    latency.observe(0.3)
    assert (before.count, before.sum) == (1, 0.2)


def test_an_agent_without_server_calls_has_an_empty_histogram():
    values = [value for _, _, value in samples(MetricsView(state="unlicensed"),
                                               "mikolicd_server_request_duration_seconds")]
    assert values == [0] * len(values) and len(values) == 12  # 9 bounds, +Inf, count, sum


def test_build_info_names_the_agent_and_python_versions():
    python = "{}.{}.{}".format(*sys.version_info[:3])
    assert samples(VIEW, "mikolicd_build") == [("mikolicd_build_info", {"version": __version__, "python": python},
                                                1)]


def test_label_values_are_escaped():
    name = 'Module "Quotes" \\ and\nnewline'
    view = VIEW._replace(products=(ProductTerm(7, name, 3),))
    assert samples(view, "mikolicd_license_remaining_seconds")[0][1]["name"] == name


@pytest.mark.parametrize("openmetrics", [True, False])
@pytest.mark.parametrize("field", ["product name", "version", "python version"])
@pytest.mark.parametrize("kind", SECRETS)
def test_secrets_in_text_fields_never_reach_the_output(field, kind, openmetrics):
    text = f"x {SECRETS[kind]} y"
    view = {"product name": VIEW._replace(products=(ProductTerm(11, text, 3),)),
            "version": VIEW._replace(version=text),
            "python version": VIEW._replace(python_version=text)}[field]
    output = render(view, openmetrics).decode()
    assert SECRETS[kind].lower() not in output.lower()
    assert families(view)  # still parses


MEMORY_PROBE = """
import os, sys
import mikolicd.agent, mikolicd.api, mikolicd.daemon, mikolicd.legacy  # what a started daemon has loaded
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
if sys.argv[1] == "mikolicd":
    from mikolicd import metrics
    metrics.render(metrics.MetricsView(state="active", products=(metrics.ProductTerm(11, "MikoPBX", 30),)))
else:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.openmetrics.exposition import generate_latest
    class Collector:
        def collect(self):
            state = GaugeMetricFamily("mikolicd_license_state", "state", labels=["state"])
            state.add_metric(["active"], 1)
            yield state
            yield CounterMetricFamily("mikolicd_validations", "validations", value=1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    generate_latest(registry)
print(rss() - before)
"""


def rss_added(renderer: str) -> float:
    """Median RSS, in MiB, that importing a renderer and rendering once adds to a fresh daemon-like process."""
    runs = [subprocess.run([sys.executable, "-c", MEMORY_PROBE, renderer], capture_output=True, text=True,
                           timeout=30, check=True).stdout for _ in range(5)]
    return statistics.median(int(out) for out in runs) / 2**20


def test_rendering_by_hand_costs_a_fraction_of_the_client_library_in_memory():
    ours, library = rss_added("mikolicd"), rss_added("prometheus_client")
    assert ours <= 0.25 and ours * 4 <= library, (ours, library)
