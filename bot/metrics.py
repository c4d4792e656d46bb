"""A small Prometheus registry (text exposition format 0.0.4) and the bot's metrics.

Counters, gauges and histograms with labels are all the bot needs, so this avoids a dependency.
Every metric the project exports is declared in ``BotMetrics`` below, in one place, so the
``/metrics`` page and the code that counts agree on names and labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Event-loop lag: most samples are well under a millisecond; anything near 3 s loses interactions.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOP_LAG_INTERVAL_SECONDS = 0.05

LabelValues = tuple[str, ...]
# A gauge's values computed at scrape time (e.g. jobs by status, counted in the store).
GaugeSource = Callable[[], Mapping[LabelValues, float] | Awaitable[Mapping[LabelValues, float]]]


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _sample_line(name: str, labels: Sequence[tuple[str, str]], value: float) -> str:
    if not labels:
        return f"{name} {format_value(value)}"
    inner = ",".join(f'{key}="{_escape_label_value(val)}"' for key, val in labels)
    return f"{name}{{{inner}}} {format_value(value)}"


class Metric:
    kind = "untyped"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()  # counting may happen in worker threads (dataset intake)

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    async def sample_lines(self) -> list[str]:
        raise NotImplementedError

    async def render(self) -> str:
        header = [f"# HELP {self.name} {_escape_help(self.documentation)}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join(header + await self.sample_lines()) + "\n"


class _ValueMetric(Metric):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        # An unlabelled metric shows 0 from the start; labelled ones appear on first use.
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def _add(self, amount: float, labels: Mapping[str, str]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def _lines(self, values: Mapping[LabelValues, float]) -> list[str]:
        return [_sample_line(self.name, list(zip(self.labelnames, key, strict=True)), v) for key, v in values.items()]

    async def sample_lines(self) -> list[str]:
        with self._lock:
            values = dict(self._values)
        return self._lines(values)


class Counter(_ValueMetric):
    kind = "counter"

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self._add(amount, labels)


class Gauge(_ValueMetric):
    kind = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        self._source: GaugeSource | None = None

    def set(self, value: float, /, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, /, **labels: str) -> None:
        self._add(-amount, labels)

    def set_source(self, source: GaugeSource | None) -> None:
        """Compute the values at scrape time instead of keeping them (replaces set values)."""
        self._source = source

    async def sample_lines(self) -> list[str]:
        if self._source is None:
            return await super().sample_lines()
        try:
            produced = self._source()
            values = await produced if inspect.isawaitable(produced) else produced
        except Exception:
            # A failing source must not take the whole page down: the metric is left out.
            log.warning("Could not collect metric %s", self.name, exc_info=True)
            return []
        for key in values:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name} source gave labels {key} for {self.labelnames}")
        return self._lines(values)


class Histogram(Metric):
    kind = "histogram"

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be distinct and not empty")
        self.buckets = (*bounds, math.inf)
        # Per label set: non-cumulative bucket counts, sum, count.
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, /, **labels: str) -> None:
        key = self._key(labels)
        index = next(i for i, bound in enumerate(self.buckets) if value <= bound)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            counts[index] += 1
            total[0] += value

    @contextmanager
    def time(self, **labels: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start, **labels)

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(self._key(labels))
            return sum(series[0]) if series else 0

    async def sample_lines(self) -> list[str]:
        with self._lock:
            snapshot = {key: (list(counts), total[0]) for key, (counts, total) in self._series.items()}
        lines: list[str] = []
        for key, (counts, total) in snapshot.items():
            labels = list(zip(self.labelnames, key, strict=True))
            cumulative = 0
            for bound, count in zip(self.buckets, counts, strict=True):
                cumulative += count
                lines.append(_sample_line(f"{self.name}_bucket", [*labels, ("le", format_value(bound))], cumulative))
            lines.append(_sample_line(f"{self.name}_sum", labels, total))
            lines.append(_sample_line(f"{self.name}_count", labels, cumulative))
        return lines


_M = TypeVar("_M", bound=Metric)


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, metric: _M) -> _M:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        return self.register(Counter(name, documentation, labelnames))

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self.register(Gauge(name, documentation, labelnames))

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        return self.register(Histogram(name, documentation, labelnames, buckets))

    async def render(self) -> str:
        return "".join([await metric.render() for metric in self._metrics.values()])


class BotMetrics:
    """Every metric the bot exports. Other parts count through these attributes."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = r = registry or Registry()
        self.jobs = r.gauge("lorabot_jobs", "Training jobs by status (collected from the store).", ["status"])
        self.callbacks_received = r.counter("lorabot_callbacks_received_total", "Orchestrator callbacks received.")
        self.callbacks_rejected = r.counter(
            "lorabot_callbacks_rejected_total", "Orchestrator callbacks not acted on, by reason.", ["reason"]
        )
        self.orchestrator_calls = r.counter(
            "lorabot_orchestrator_calls_total", "Calls made to the Civitai orchestrator, by operation.", ["operation"]
        )
        self.orchestrator_errors = r.counter(
            "lorabot_orchestrator_errors_total", "Failed orchestrator calls, by kind of failure.", ["kind"]
        )
        self.discord_send_failures = r.counter(
            "lorabot_discord_send_failures_total", "Discord messages or edits that could not be sent.", ["kind"]
        )
        self.connections_closed = r.counter(
            "lorabot_web_connections_closed_total",
            "Connections the web server closed early, by reason (peer_limit, body_timeout).",
            ["reason"],
        )
        self.refresh_seconds = r.histogram(
            "lorabot_refresh_seconds", "Time to refresh one job from the orchestrator and act on the changes."
        )
        self.dataset_downloads = r.counter(
            "lorabot_dataset_downloads_total", "Requests for signed dataset URLs, by outcome.", ["outcome"]
        )
        self.loop_lag = r.histogram(
            "lorabot_event_loop_lag_seconds",
            "How late the event loop woke a timer (sampled every 50 ms): time it spent on CPU work "
            "that held up every other command, callback and Discord event.",
            buckets=LOOP_LAG_BUCKETS,
        )
        self.retention_removed = r.counter(
            "lorabot_retention_removed_total", "Expired things the periodic cleanup removed, by kind.", ["kind"]
        )

    def count_orchestrator_call(self, operation: str, error_kind: str | None) -> None:
        """The orchestrator client's ``metrics`` callback: one call per HTTP attempt."""
        self.orchestrator_calls.inc(operation=operation)
        if error_kind is not None:
            self.orchestrator_errors.inc(kind=error_kind)


class LoopLagMonitor:
    """Samples the running loop's lag into ``lorabot_event_loop_lag_seconds``.

    A timer asked for in ``interval`` seconds that fires later than that was held up by whatever
    ran on the loop meanwhile (hashing, JSON of large bodies, image work): the same wait a slash
    command or a callback would have had. ``start``/``stop`` run it as a background task.
    """

    def __init__(self, histogram: Histogram, interval: float = LOOP_LAG_INTERVAL_SECONDS) -> None:
        self.histogram = histogram
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sample(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            self.histogram.observe(max(0.0, loop.time() - asked - self.interval))
