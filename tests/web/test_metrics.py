"""The Prometheus registry renders valid text format 0.0.4, and /metrics serves it."""

from __future__ import annotations

import math
from importlib.metadata import version

import aiohttp
import pytest

from bot.hooks import hook_url
from bot.metrics import BotMetrics, Registry
from bot.web.server import WebServer
from tests.web.conftest import MemorySink
from tests.web.promtext import Family, parse, sample


async def test_counter_gauge_histogram_render_and_parse() -> None:
    registry = Registry()
    counter = registry.counter("demo_events_total", 'Events with "quotes" and a back\\slash\nand a newline.', ["kind"])
    gauge = registry.gauge("demo_level", "A level.")
    histogram = registry.histogram("demo_seconds", "Latency.", ["op"], buckets=[0.1, 1.0])
    counter.inc(kind='we"ird\\va\nlue')
    counter.inc(2, kind="plain")
    gauge.set(-3.5)
    for value in (0.05, 0.5, 0.7, 5.0):
        histogram.observe(value, op="refresh")

    families = parse(await registry.render())
    assert families["demo_events_total"].kind == "counter"
    assert families["demo_events_total"].help == 'Events with "quotes" and a back\\slash\nand a newline.'
    assert sample(families, "demo_events_total", kind='we"ird\\va\nlue') == 1
    assert sample(families, "demo_events_total", kind="plain") == 2
    assert sample(families, "demo_level") == -3.5
    assert families["demo_seconds"].kind == "histogram"
    assert sample(families, "demo_seconds_bucket", op="refresh", le="0.1") == 1
    assert sample(families, "demo_seconds_bucket", op="refresh", le="1.0") == 3
    assert sample(families, "demo_seconds_bucket", op="refresh", le="+Inf") == 4
    assert sample(families, "demo_seconds_count", op="refresh") == 4
    assert math.isclose(sample(families, "demo_seconds_sum", op="refresh"), 6.25)


async def test_unlabelled_counter_starts_at_zero_and_labelled_appear_on_use() -> None:
    registry = Registry()
    registry.counter("a_total", "A.")
    registry.counter("b_total", "B.", ["reason"])
    families = parse(await registry.render())
    assert sample(families, "a_total") == 0
    assert families["b_total"].samples == []


async def test_gauge_source_is_read_at_scrape_time_and_a_failing_one_is_left_out() -> None:
    registry = Registry()
    jobs = registry.gauge("jobs", "Jobs.", ["status"])
    counts = {("running",): 2.0, ("succeeded",): 5.0}

    async def from_store() -> dict[tuple[str, ...], float]:
        return counts

    jobs.set_source(from_store)
    assert sample(parse(await registry.render()), "jobs", status="running") == 2
    counts[("running",)] = 3.0
    assert sample(parse(await registry.render()), "jobs", status="running") == 3

    def broken() -> dict[tuple[str, ...], float]:
        raise RuntimeError("store closed")

    jobs.set_source(broken)
    assert parse(await registry.render())["jobs"].samples == []


def test_misuse_is_refused() -> None:
    registry = Registry()
    counter = registry.counter("x_total", "X.", ["reason"])
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, reason="a")
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc(kind="a")
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("x_total", "again")
    with pytest.raises(ValueError, match="invalid metric name"):
        registry.counter("bad-name", "no")
    with pytest.raises(ValueError, match="invalid label name"):
        registry.histogram("h", "H.", ["le"])


async def test_all_bot_metrics_render() -> None:
    metrics = BotMetrics()
    metrics.orchestrator_calls.inc(operation="submit")
    metrics.orchestrator_errors.inc(kind="http_429")
    metrics.discord_send_failures.inc(kind="forbidden")
    with metrics.refresh_seconds.time():
        pass
    families = parse(await metrics.registry.render())
    assert {"lorabot_jobs", "lorabot_callbacks_received_total", "lorabot_refresh_seconds"} <= set(families)
    assert sample(families, "lorabot_orchestrator_calls_total", operation="submit") == 1
    assert sample(families, "lorabot_refresh_seconds_count") == 1


async def test_metrics_endpoint_counts_callbacks(
    server: WebServer, sink: MemorySink, client: aiohttp.ClientSession
) -> None:
    async def scrape() -> dict[str, Family]:
        async with client.get(f"{server.base_url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return parse(await response.text())

    before = await scrape()
    assert sample(before, "lorabot_callbacks_received_total") == 0
    secret = sink.add_job("9")
    async with client.post(hook_url(server.base_url, "9", secret), json={"status": "succeeded"}) as response:
        assert response.status == 200
    async with client.post(hook_url(server.base_url, "9", "x" * 43), json={}) as response:
        assert response.status == 404
    after = await scrape()
    assert sample(after, "lorabot_callbacks_received_total") == 2
    assert sample(after, "lorabot_callbacks_rejected_total", reason="unknown_hook") == 1


# The names dashboards and alerts use: renaming one breaks them silently.
BOT_METRICS = {
    "lorabot_jobs",
    "lorabot_callbacks_received_total",
    "lorabot_callbacks_rejected_total",
    "lorabot_orchestrator_calls_total",
    "lorabot_orchestrator_errors_total",
    "lorabot_discord_send_failures_total",
    "lorabot_refresh_seconds",
    "lorabot_dataset_downloads_total",
    "lorabot_retention_removed_total",
}


async def test_the_standard_client_adds_runtime_metrics_and_build_info_and_keeps_the_names() -> None:
    families = parse(await BotMetrics().registry.render())
    assert {name for name in families if name.startswith("lorabot_")} == BOT_METRICS | {"lorabot_build_info"}
    runtime = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "python_info"}
    assert runtime <= set(families)
    assert any(name.startswith("python_gc_") for name in families)
    ((_, labels, value),) = families["lorabot_build_info"].samples
    assert value == 1 and labels["version"] == version("lora-trainer-bot") and labels["python"].startswith("3.")
    assert not [name for name in families if name.endswith("_created")]
